"""The standalone multi-scale Glow (Kingma & Dhariwal 2018) on CIFAR-10: papers/003's baseline.

  python -m adejax.main --config=configs/cifar_glow.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. 3 levels of 32 steps (actnorm, LU 1x1 convolution, affine coupling of
width 512) with squeeze and split, learned top prior; Adam 1e-3 after a 10-epoch warm-up, batch 64,
2000 epochs
(`configs.papers.p003.glow_paper_config` lists what is the paper's and what is chosen here).

  variant   paper row                                   FID     BPD
  (none)    papers/003 Table 2: Glow (from Chen 2019)   46.90   3.35

Add `:tiny` for the test-sized version on mock data.
"""
from adejax import config_lib
from configs.papers import p003

PAPER = {"": {"fid": 46.90, "bpd": 3.35}}


def get_config(variant: str = "", dataset: str = "cifar10", image_size: int = 32, levels: int = 3,
               config_file: str = "configs/cifar_glow.py"):
  given = config_lib.parse_variant(variant, config_file, ())
  c = p003.glow_paper_config(dataset, image_size, levels)
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  return c
