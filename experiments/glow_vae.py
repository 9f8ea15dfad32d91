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
from configs import cifar_glow_vae

VARIANTS = {"two-stage": "two_stage", "flow-prior": "flow_prior", "glow-vae": ""}  # of its config file


def get_experiment(scale: str):
  return [sweep.Member(name, sweep.apply_scale(cifar_glow_vae.get_config(v), scale), cifar_glow_vae.PAPER[v])
          for name, v in VARIANTS.items()]
