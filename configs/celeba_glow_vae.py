"""The VAE with a Glow decoder (papers/003) on CelebA 64x64 with the paper's settings.

  python -m adejax.main --config=configs/celeba_glow_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `celeb_a` prepared in TFDS. Paper (Table 3): FID 20.59, <= 2.50 bits/dim (Glow: 19.00, 2.25).
As configs/cifar_glow_vae.py, with 4 stages in the ResNet VAE; the same variants.
"""
from configs import cifar_glow_vae

PAPER = {"": {"fid": 20.59, "bpd": 2.50}}


def get_config(variant: str = ""):
  return cifar_glow_vae.get_config(variant, dataset="celeb_a", image_size=64, scales=4,
                                   config_file="configs/celeba_glow_vae.py")
