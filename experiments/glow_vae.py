"""papers/003 (Morrow & Chiu): Table 1 (flow prior vs the two-stage VAE of Dai & Wipf) and the full
model of Table 2 (CIFAR-10) / Table 3 (CelebA: `configs/celeba_glow_vae.py`).

  python -m adejax.sweep --experiment=experiments/glow_vae.py --workdir=DIR               # paper scale
  python -m adejax.sweep --experiment=experiments/glow_vae.py --workdir=DIR --scale=small # 2-core CPU

Table 1's rows use a learned-gamma decoder N(x | g_mu(z), gamma I) and no Glow layer, the same network
for both priors (section 4.1); the two-stage row gives 30% of its steps to the second stage. At paper
scale the data is CIFAR-10 (the paper also has Fashion-MNIST: FID 31.87 two-stage, 19.70 flow prior);
at small scale the offline Fashion-MNIST, with FID on the domain classifier instead of Inception.
Not here: the paper's standalone Glow rows (Tables 2-4 compare against Glow of depth 32x3 with
squeezes, a model outside this codebase).
"""
from adejax import sweep

PAPER = {  # papers/003 on CIFAR-10: Table 1 (FID), Table 2 (FID, bits/dim)
    "two-stage": {"fid": 76.04},
    "flow-prior": {"fid": 71.85},
    "glow-vae": {"fid": 42.14, "bpd": 3.17},
}
VARIANTS = {"two-stage": "two_stage", "flow-prior": "flow_prior", "glow-vae": "full"}


def get_experiment(scale: str):
  members = []
  for name, variant in VARIANTS.items():
    c = sweep.glow_vae_variant(sweep.glow_vae_paper_config("cifar10", 32, 3), variant)
    members.append(sweep.Member(name, sweep.apply_scale(c, scale), PAPER[name]))
  return members
