"""The coverage-quality frontier: held-out bits/dim against fid_domain and modes covered as lambda_adv
moves from pure likelihood to the GAN, for AV-ADE (with f_psi) and AV-GDE (without), on stacked
Fashion-MNIST (1000 modes).

  python -m adejax.sweep --experiment=experiments/frontier.py --workdir=DIR --scale=small \\
      --report=docs/results/frontier

One run per point: lambda_adv in (0, 1, 3, 10, 30, 100) for both models (lambda_adv = 0 is V-ADE / the
VAE: likelihood only), and the GAN as the limit lambda_adv -> infinity. The paper's models are marked
(stars in the plot): V-ADE and VAE (lambda 0), AV-ADE and AV-GDE at the paper's lambda_adv = 100, the
GAN. Small scale: experiments/stacked.py's quarter-width models at 400 steps, one seed: the runs of
experiments/stacked_400steps.py's seed 0 (docs/results/stacked_small_400steps.md), which it shares.
"""
from adejax import experiment
from experiments import stacked, stacked_400steps
from experiments.ablation import CONFIGS  # papers/002 Table 1: mode -> its config file

LAMBDAS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)
PAPER_LAMBDA = 100.0


def scaled(mode: str, scale: str):
  return stacked.stacked(CONFIGS[mode].get_config(), scale, seed=0,
                         small_steps=stacked_400steps.SMALL_STEPS)


def get_experiment(scale: str):
  lambdas = LAMBDAS if scale != "tiny" else (0.0, PAPER_LAMBDA)
  members = []
  for mode, likelihood_only in (("av-ade", "v-ade"), ("av-gde", "vae")):
    for lam in lambdas:
      c = scaled(likelihood_only if lam == 0 else mode, scale)
      c.loss.adv_weight = lam if lam else c.loss.adv_weight
      paper = {"lambda_adv": lam} if lam in (0.0, PAPER_LAMBDA) else {}
      members.append(experiment.Member(f"{mode}_lam{lam:g}", c, paper))
  members.append(experiment.Member("gan", scaled("gan", scale), {"lambda_adv": float("inf")}))
  return members
