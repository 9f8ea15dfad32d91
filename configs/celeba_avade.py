"""AV-ADE (wg, rd) on CelebA 64x64 (papers/002 section 5.3 models; the paper reports no CelebA number).

  python -m adejax.main --config=configs/celeba_avade.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `celeb_a` prepared in TFDS; centre-cropped to a square, resized to 64x64, the training split
streamed, held-out numbers on the test split. Add `tiny` for the test-sized version.
"""
from configs.papers import p002

PAPER = {"wg,rd": {}}


def get_config(variant: str = ""):
  return p002.variant_config("av-ade", variant, "configs/celeba_avade.py", ("rd", "wg", "iaf", "s2"),
                              dataset="celeb_a", image_size=64, default="wg,rd")
