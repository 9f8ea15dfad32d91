"""The GAN baseline on CIFAR-10 (papers/002 Table 1): the SNGAN generator (without spectral norm) from
one latent vector (section 5.1, footnote 2), the conv discriminator with the gradient penalty.

  python -m adejax.main --config=configs/cifar_gan.py:rd --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

  variant        paper row                                          BPD    IS    FID
  (none)         Table 1 / 2: GAN                                   [7.0]  6.8   31.4
  rd             Table 2: residual discriminator                    [6.9]  7.4   24.0
  cond           Table 8: class-conditional (GAN-test 71.8%, GAN-train 29.7%)

A GAN has no density: its [BPD] comes from configs/cifar_vae.py:gan_bpd trained around the frozen
generator. Add `tiny` to any variant for the test-sized version.
"""
from configs.papers import p002

PAPER = {
    "": {"bpd": 7.0, "is": 6.8, "fid": 31.4},
    "rd": {"bpd": 6.9, "is": 7.4, "fid": 24.0},
    "cond": {"gan_test": 0.718, "gan_train": 0.297},
}


def get_config(variant: str = ""):
  return p002.variant_config("gan", variant, "configs/cifar_gan.py", ("rd", "cond"))
