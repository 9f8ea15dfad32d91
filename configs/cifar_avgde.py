"""AV-GDE on CIFAR-10 (papers/002 Table 1): the hierarchical VAE with a Gaussian decoder (no f_psi),
trained by maximum likelihood and adversarially.

  python -m adejax.main --config=configs/cifar_avgde.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

  variant        paper row                                          BPD    IS    FID
  (none)         Table 1: AV-GDE                                    4.4    5.1   58.6

Add `tiny` for the test-sized version.
"""
from configs.papers import p002

PAPER = {"": {"bpd": 4.4, "is": 5.1, "fid": 58.6}}


def get_config(variant: str = ""):
  return p002.variant_config("av-gde", variant, "configs/cifar_avgde.py", ())
