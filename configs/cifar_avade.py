"""AV-ADE on CIFAR-10 with the paper's hyper-parameters (papers/002 section 5, appendix C), one variant
per paper row.

  python -m adejax.main --config=configs/cifar_avade.py:wg,rd --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS (e.g. `tfds build cifar10` on a networked machine, then copy the
data_dir). SNGAN-shaped VAE with a mirrored encoder, f_psi with 1 scale x 3 couplings x 2 residual
blocks, conv discriminator, Adamax 2e-3 (0.9, 0.999), batch 64, lambda_adv = lambda_gp = 100, one
discriminator update per generator update, 500k steps.

  variant        paper row                                          BPD    IS    FID
  (none)         Table 1 / 2: AV-ADE                                3.9    7.1   28.0
  rd             Table 2: residual discriminator                    3.8    7.5   26.0
  wg,rd          Table 2: + generator of twice the width            3.8    8.2   17.2
  iaf,rd         Table 2: residual IAF-VAE generator                3.7    8.1   18.6
  s2             Table 2: f_psi with two scales                     3.5    6.9   28.9
  cond           Table 8: class-conditional (GAN-test 76.9%, GAN-train 73.4%)
  flow1x2        Table 9a: residual archs, f_psi 1 scale x 2 blocks 3.77   7.9   20.1
  flow2x2        Table 9a: 2 scales x 2 blocks                      3.48   6.9   27.7
  flow2x4        Table 9a: 2 scales x 4 blocks                      3.46   6.9   28.9
  flow3x3        Table 9a: 3 scales x 3 blocks                      3.49   6.5   31.7

Table 1's AV-ADE has 1.4% fewer generator weights than the VAE to pay for f_psi; experiments/ablation.py
narrows the width to match (`p002.match_width`). The Table 9 rows use the residual architectures of
Table 6 and switch on the adversarial loss at 40% of training. Add `tiny` to any variant (e.g.
`:wg,rd,tiny`) for the test-sized version (mock data in tests).
"""
from configs.papers import p002

PAPER = {
    "": {"bpd": 3.9, "is": 7.1, "fid": 28.0},
    "rd": {"bpd": 3.8, "is": 7.5, "fid": 26.0},
    "wg,rd": {"bpd": 3.8, "is": 8.2, "fid": 17.2},
    "iaf,rd": {"bpd": 3.7, "is": 8.1, "fid": 18.6},
    "s2": {"bpd": 3.5, "is": 6.9, "fid": 28.9},
    "cond": {"gan_test": 0.769, "gan_train": 0.734},
    "flow1x2": {"bpd": 3.77, "is": 7.9, "fid": 20.1},
    "flow2x2": {"bpd": 3.48, "is": 6.9, "fid": 27.7},
    "flow2x4": {"bpd": 3.46, "is": 6.9, "fid": 28.9},
    "flow3x3": {"bpd": 3.49, "is": 6.5, "fid": 31.7},
}
NAMES = ("rd", "wg", "iaf", "s2", "cond", "flow1x2", "flow2x2", "flow2x4", "flow3x3")


def get_config(variant: str = ""):
  return p002.variant_config("av-ade", variant, "configs/cifar_avade.py", NAMES)
