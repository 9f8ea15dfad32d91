"""papers/003 (Morrow & Chiu): Table 1 (flow prior vs the two-stage VAE of Dai & Wipf), and the full
model against the standalone multi-scale Glow of Table 2 (CIFAR-10) / Table 3 (CelebA:
`configs/celeba_glow_vae.py`, `configs/celeba_glow.py`).

  python -m adejax.sweep --experiment=experiments/glow_vae.py --workdir=DIR               # paper scale
  python -m adejax.sweep --experiment=experiments/glow_vae.py --workdir=DIR --scale=small # 2-core CPU

Table 1's rows use a learned-gamma decoder N(x | g_mu(z), gamma I) and no Glow layer, the same network
for both priors (section 4.1); the two-stage row gives 30% of its steps to the second stage. At paper
scale the data is CIFAR-10 (the paper also has Fashion-MNIST: FID 31.87 two-stage, 19.70 flow prior);
at small scale the offline Fashion-MNIST, with FID on the domain classifier instead of Inception.
The Glow row is `configs/cifar_glow.py` (3 levels of 32 steps; at small scale 2 levels of 8, width 32).
Table 4 (seconds per step of each phase against the standalone Glow) is `benchmarks/glow_vae_phases.py`.
"""
from adejax import experiment
from configs import cifar_glow, cifar_glow_vae

VARIANTS = {"two-stage": "two_stage", "flow-prior": "flow_prior", "glow-vae": ""}  # of its config file


def get_experiment(scale: str):
  return [experiment.Member(name, experiment.apply_scale(cifar_glow_vae.get_config(v), scale), cifar_glow_vae.PAPER[v])
          for name, v in VARIANTS.items()] + [
              experiment.Member("glow", experiment.apply_scale(cifar_glow.get_config(), scale), cifar_glow.PAPER[""])]
