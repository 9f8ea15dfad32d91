"""papers/004 Table 1's pattern: for VAEs (Gaussian posterior, Bernoulli likelihood), the average KL term
exceeds the Monte Carlo estimate of the marginal KL[q(z) || p(z)], and both fall (per latent) as the
number of latents grows.

  python -m adejax.sweep --experiment=experiments/marginal_kl_latents.py --workdir=DIR --scale=small
  for m in DIR/*/; do python -m adejax.estimate_kl --workdir=$m; done   # eval/marginal_kl.json each

Members: the hybrid family's VAE (configs/cifar_hybrids.py:vae) with 50, 100 and 200 latents (paper:
ColorMNIST 50 / 100, CelebA and CIFAR-10 100 / 200). papers/004's values (nats per latent, average KL
term / Monte Carlo marginal KL): ColorMNIST 50: 0.468 / 0.244, 100: 0.238 / 0.129; CelebA 100: 1.124 /
1.004, 200: 0.575 / 0.514; CIFAR-10 100: 0.447 / 0.334, 200: 0.221 / 0.164.
"""
from adejax import sweep
from configs import cifar_hybrids

PAPER = {50: {"avg_kl_per_latent": 0.468, "mc_kl_per_latent": 0.244},    # ColorMNIST
         100: {"avg_kl_per_latent": 0.447, "mc_kl_per_latent": 0.334},   # CIFAR-10
         200: {"avg_kl_per_latent": 0.221, "mc_kl_per_latent": 0.164}}   # CIFAR-10


def get_experiment(scale: str):
  members = []
  for latents, paper in PAPER.items():
    c = sweep.apply_scale(cifar_hybrids.get_config("vae"), scale)
    c.hybrid.latent_dim = latents if scale != "tiny" else max(2, latents // 25)
    members.append(sweep.Member(f"vae-z{latents}", c, paper))
  return members
