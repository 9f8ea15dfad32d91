"""papers/004 Table 1's pattern: for VAEs (Gaussian posterior, Bernoulli likelihood), the average KL term
exceeds the Monte Carlo estimate of the marginal KL[q(z) || p(z)], and both fall (per latent) as the
number of latents grows.

  python -m adejax.sweep --experiment=experiments/marginal_kl_latents.py --workdir=DIR --scale=small
  python experiments/marginal_kl_latents.py --workdir=DIR --scale=small [--report=docs/results/NAME]

The second command runs `adejax.estimate_kl` on each finished member that has no
eval/marginal_kl.json yet and prints (and writes to NAME.md) the table in nats per latent. Ours are
Fashion-MNIST; papers/004 has no Fashion-MNIST row, so its values sit in their own columns, one per
dataset it reports, never as a row's reference.

Members: the hybrid family's VAE (configs/cifar_hybrids.py:vae) with 50, 100 and 200 latents (paper:
ColorMNIST 50 / 100, CelebA and CIFAR-10 100 / 200). papers/004's values (nats per latent, average KL
term / Monte Carlo marginal KL): ColorMNIST 50: 0.468 / 0.244, 100: 0.238 / 0.129; CelebA 100: 1.124 /
1.004, 200: 0.575 / 0.514; CIFAR-10 100: 0.447 / 0.334, 200: 0.221 / 0.164.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's configs/
from adejax import experiment  # noqa: E402
from configs import cifar_hybrids  # noqa: E402

# papers/004 Table 1, nats per latent: (average KL term, Monte Carlo marginal KL) by dataset and latents
PAPER_TABLE1 = {"ColorMNIST": {50: (0.468, 0.244), 100: (0.238, 0.129)},
                "CelebA": {100: (1.124, 1.004), 200: (0.575, 0.514)},
                "CIFAR-10": {100: (0.447, 0.334), 200: (0.221, 0.164)}}
LATENTS = (50, 100, 200)


def get_experiment(scale: str):
  members = []
  for latents in LATENTS:
    c = experiment.apply_scale(cifar_hybrids.get_config("vae"), scale)
    c.hybrid.latent_dim = latents if scale != "tiny" else max(2, latents // 25)
    members.append(experiment.Member(f"vae-z{latents}", c, {}))  # no paper row on this dataset
  return members


COLUMNS = [("average_kl", "avg KL term"), ("marginal_kl_monte_carlo", "MC marginal KL"),
           ("marginal_kl_density_ratio", "density ratio"), ("marginal_kl_density_model", "GMM density model"),
           ("marginal_kl_density_model_maf", "MAF density model"), ("marginal_kl_lower_bound", "eq. 5 lower bound")]


def paper_cells(latents: int) -> list[str]:
  """papers/004's (avg KL / MC KL) per latent on each of its datasets at this many latents, or blank."""
  cells = []
  for rows in PAPER_TABLE1.values():
    cells.append("{:.3f} / {:.3f}".format(*rows[latents]) if latents in rows else "")
  return cells


def table(workdir: str, scale: str, estimate: bool = True) -> str:
  """The Table 1 rows (nats per latent) of every finished member, estimating where not yet done."""
  from adejax import estimate_kl

  paper = [f"paper {name} (avg / MC)" for name in PAPER_TABLE1]
  lines = ["| member (Fashion-MNIST) | latents | " + " | ".join(c for _, c in COLUMNS) + " | "
           + " | ".join(paper) + " |", "|" + "---|" * (len(COLUMNS) + len(paper) + 2)]
  for m, latents in zip(get_experiment(scale), LATENTS):
    run = os.path.join(workdir, m.name)
    path = os.path.join(run, "eval", "marginal_kl.json")
    if not os.path.exists(path):
      if not (estimate and os.path.exists(os.path.join(run, "done.json"))):
        continue
      estimate_kl.estimate_run(m.config, run)
    kl = json.load(open(path))
    d = kl["latent_dim"]
    cells = [f"{kl[k] / d:.3f}" if k in kl else "" for k, _ in COLUMNS]
    lines.append(f"| {m.name} | {d} | " + " | ".join(cells) + " | " + " | ".join(paper_cells(latents)) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_string("workdir", None, "The sweep's workdir.")
  flags.DEFINE_string("scale", "small", "The sweep's --scale.")
  flags.DEFINE_string("report", "", "Also write the table to REPORT.md.")

  def main(_):
    text = table(flags.FLAGS.workdir, flags.FLAGS.scale)
    print(text)
    if flags.FLAGS.report:
      with open(flags.FLAGS.report + ".md", "w") as f:
        f.write(text)

  app.run(main)
