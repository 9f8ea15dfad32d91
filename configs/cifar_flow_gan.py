"""Flow-GAN (Grover et al. 2018) on CIFAR-10: the invertible hybrid of papers/002's Table 3.

  python -m adejax.main --config=configs/cifar_flow_gan.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. The generator is papers/003's Glow baseline (configs/cifar_glow.py: 3
levels of 32 steps, width 512, Adam 1e-3 after a 10-epoch warm-up, batch 64, 2000 epochs) with additive
couplings (Glow's volume-preserving option; Grover et al. used Real-NVP's affine ones: with them the
Glow's samples overflowed to non-finite values within 150 adversarial steps at `--scale=small`, and the
run stopped on non-finite losses; with additive couplings 300 steps ran without a skipped update), trained by
flow_gan.likelihood_weight x its exact NLL + loss.adv_weight x L_Q against papers/002's conv
discriminator with its two-sided gradient penalty (lambda_adv = gp = 100, AV-ADE's balance;
adejax/families/flow_gan.py says what is Grover et al.'s and what is chosen here).

  variant   paper row (papers/002 Table 3, from Grover et al.)      BPD   IS
  (none)    FlowGAN(H): maximum likelihood and adversarial           4.2   3.9
  a         FlowGAN(A): adversarial only (likelihood_weight 0)       8.5   5.8

Add `:tiny` for the test-sized version on mock data. `experiments/ablation.py` runs both beside
papers/002's Table 1 (`--scale=small`: the offline Fashion-MNIST on 2 CPU cores).
"""
from adejax import config_lib
from configs.papers import p003

PAPER = {"": {"bpd": 4.2, "is": 3.9}, "a": {"bpd": 8.5, "is": 5.8}}


def get_config(variant: str = ""):
  given = config_lib.parse_variant(variant, "configs/cifar_flow_gan.py", ("a",))
  c = p003.glow_paper_config("cifar10", 32, 3)
  c.model.family = "flow_gan"
  c.glow.coupling = "additive"  # (see above: affine couplings' samples overflowed under the adversary)
  c.flow_gan.likelihood_weight = 0.0 if "a" in given else 1.0
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  return c
