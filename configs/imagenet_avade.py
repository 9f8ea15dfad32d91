"""AV-ADE (wg, rd) on ImageNet 64x64 (papers/002 section 5.3, Table 4).

  python -m adejax.main --config=configs/imagenet_avade.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `downsampled_imagenet/64x64` prepared in TFDS; the training split is streamed (data.stream),
held-out numbers on the validation split. Batch 32, one more generator level at 64x64.

  variant        paper row                                          BPD    IS    FID
  wg,rd          Table 4: AV-ADE (wg, rd) -- the default            4.90   8.5   45.5

Other refinements (rd, wg, iaf, s2) can be named instead. Add `tiny` for the test-sized version.
"""
from configs.papers import p002

PAPER = {"wg,rd": {"bpd": 4.90, "is": 8.5, "fid": 45.5}}


def get_config(variant: str = ""):
  return p002.variant_config("av-ade", variant, "configs/imagenet_avade.py", ("rd", "wg", "iaf", "s2"),
                              dataset="downsampled_imagenet/64x64", image_size=64, default="wg,rd")
