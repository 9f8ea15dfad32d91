"""The standalone multi-scale Glow on CelebA 64x64: papers/003's baseline in Table 3.

  python -m adejax.main --config=configs/celeba_glow.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `celeb_a` prepared in TFDS. As configs/cifar_glow.py with 4 levels (64 -> 4).

  variant   paper row                     FID     BPD
  (none)    papers/003 Table 3: Glow      19.00   2.25

Add `:tiny` for the test-sized version on mock data.
"""
from configs import cifar_glow

PAPER = {"": {"fid": 19.00, "bpd": 2.25}}


def get_config(variant: str = ""):
  return cifar_glow.get_config(variant, dataset="celeb_a", image_size=64, levels=4,
                               config_file="configs/celeba_glow.py")
