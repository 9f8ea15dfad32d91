"""The VAE with a Glow decoder (papers/003) on CelebA 64x64 with the paper's settings.

  python -m adejax.main --config=configs/celeba_glow_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `celeb_a` prepared in TFDS. Paper (Table 3): FID 20.59, <= 2.50 bits/dim (Glow: 19.00, 2.25).
As configs/cifar_glow_vae.py (its docstring lists what the paper gives and what is chosen here) with
4 stages in the ResNet VAE. `:tiny` is the test-sized variant on mock data.
"""
from configs.cifar_glow_vae import paper_config


def get_config(variant: str = ""):
  return paper_config("celeb_a", 64, 4, variant)
