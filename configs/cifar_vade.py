"""V-ADE on CIFAR-10 (papers/002): the hierarchical VAE with f_psi, trained by maximum likelihood only.

  python -m adejax.main --config=configs/cifar_vade.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

As configs/cifar_avade.py without the adversarial loss (mode v-ade).

  variant        paper row                                          BPD    IS    FID
  (none)         Table 1: V-ADE                                     3.5    3.0   112.0
  flow1x2        Table 9b: residual archs, f_psi 1 scale x 2 blocks 3.52   3.0   112.0
  flow2x2        Table 9b: 2 scales x 2 blocks                      3.41   4.5   85.5
  flow3x2        Table 9b: 3 scales x 2 blocks                      3.45   4.4   78.7
  flow4x1        Table 9b: 4 scales x 1 block                       3.49   4.1   82.4

Table 1's V-ADE has 1.4% fewer generator weights than the VAE (experiments/ablation.py matches them).
Add `tiny` to any variant for the test-sized version.
"""
from configs.papers import p002

PAPER = {
    "": {"bpd": 3.5, "is": 3.0, "fid": 112.0},
    "flow1x2": {"bpd": 3.52, "is": 3.0, "fid": 112.0},
    "flow2x2": {"bpd": 3.41, "is": 4.5, "fid": 85.5},
    "flow3x2": {"bpd": 3.45, "is": 4.4, "fid": 78.7},
    "flow4x1": {"bpd": 3.49, "is": 4.1, "fid": 82.4},
}
NAMES = ("flow1x2", "flow2x2", "flow3x2", "flow4x1")


def get_config(variant: str = ""):
  return p002.variant_config("v-ade", variant, "configs/cifar_vade.py", NAMES)
