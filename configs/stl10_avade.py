"""AV-ADE on STL-10 at 48x48 (papers/002 section 5.3, Table 4).

  python -m adejax.main --config=configs/stl10_avade.py:wg,rd --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `stl10` prepared in TFDS. Trains on train+unlabelled (105k images), held-out numbers on the test
split; batch 32, otherwise the CIFAR-10 hyper-parameters (the paper did not tune them).

  variant        paper row                                          BPD    IS    FID
  wg,rd          Table 4: AV-ADE (wg, rd) -- the default            4.4    9.4   44.3
  iaf,rd         Table 4: AV-ADE (iaf, rd)                          4.0    8.6   52.7
  s2             Table 4: AV-ADE (s2)                               3.8    8.6   52.1

(Table 4 writes "wd"; section 5.3 and Table 5 name the same model (wg, rd).) Add `tiny` to any variant
for the test-sized version.
"""
from configs.papers import p002

PAPER = {
    "wg,rd": {"bpd": 4.4, "is": 9.4, "fid": 44.3},
    "iaf,rd": {"bpd": 4.0, "is": 8.6, "fid": 52.7},
    "s2": {"bpd": 3.8, "is": 8.6, "fid": 52.1},
}


def get_config(variant: str = ""):
  return p002.variant_config("av-ade", variant, "configs/stl10_avade.py", ("rd", "wg", "iaf", "s2"),
                              dataset="stl10", image_size=48, default="wg,rd")
