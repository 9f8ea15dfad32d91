"""papers/004 section 5 / Figure 2: can a density-ratio classifier estimate a KL, and can it minimise
one? Two Gaussians x = z W + b (k = 10 d latents) with a closed-form KL, d = 1, 10, 100, 1000, several
seeds (`adejax.evaluation.synthetic`).

  python experiments/synthetic_gaussians.py --out=DIR [--dims=1,10,100,1000] [--seeds=3]

Writes DIR/synthetic_gaussians.json (after each d) and DIR/synthetic_gaussians.png (true KL during
minimisation per d, each seed a line, with the classifier's estimate of the initial KL and the true
initial KL). Runs already in DIR's JSON (same d and seed, same settings) are kept and not re-run, so a
long study (d = 1000 takes ~8 minutes a seed here) can be run a few dims at a time into one folder. Sized for 2
CPU cores (about 15 minutes at the defaults), where the paper used a 4-layer MLP of ~100M parameters
and 10^6 iterations: here a 3-layer leaky-ReLU MLP of 256 units, 2000 classifier steps on 20,000
samples per distribution for estimation, and 3000 joint steps of batch 64 for minimisation, both
stated in the JSON. Not a sweep member: run it directly.
"""
import json
import os
import sys

import jax
import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from adejax.evaluation import synthetic  # noqa: E402

flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_list("dims", ["1", "10", "100", "1000"], "Data dimensions d.")
flags.DEFINE_integer("seeds", 3, "Seeds per d (the paper averages 10 classifier initialisations).")
flags.DEFINE_integer("estimation_steps", 2000, "Classifier steps in the estimation setting.")
flags.DEFINE_integer("steps", 3000, "Joint steps in the minimisation setting.")
flags.DEFINE_integer("batch", 64, "Batch of the minimisation setting.")
FLAGS = flags.FLAGS


def run(dims, seeds, estimation_steps, steps, batch, earlier: dict | None = None) -> dict:
  out = {"settings": {"classifier": "leaky-ReLU MLP, 3 x 256", "estimation_samples": 20_000,
                      "estimation_steps": estimation_steps, "minimisation_steps": steps, "batch": batch,
                      "lr_model": 1e-3, "lr_classifier": 1e-4, "k": "10 d"}, "runs": []}
  if earlier:
    if earlier["settings"] != out["settings"]:
      raise app.UsageError(f"--out holds results of other settings ({earlier['settings']}); "
                           "use another --out folder")
    out["runs"] = list(earlier["runs"])
  done = {(r["d"], r["seed"]) for r in out["runs"]}
  for d in dims:
    for seed in range(seeds):
      if (d, seed) in done:
        continue
      key = jax.random.fold_in(jax.random.PRNGKey(seed), d)
      # one pair of Gaussians for both studies, derived once; each study's own randomness from `key`
      # (its split(key)[0:2] are the pair's halves as before, so earlier results stay reproducible)
      q, p = synthetic.random_pair(key, d)
      est = synthetic.estimation(key, d, steps=estimation_steps, q=q, p=p)
      mini = synthetic.minimization(key, d, steps=steps, batch=batch, q=q, p=p)
      print(f"d={d} seed={seed}: KL {est['true_kl']:.2f}, classifier estimate {est['estimated_kl']:.2f}; "
            f"minimised from {mini['true_kl'][0]:.2f} to {mini['true_kl'][-1]:.2f}", flush=True)
      out["runs"].append({"seed": seed, **est, "minimisation": mini})
  out["runs"].sort(key=lambda r: (r["d"], r["seed"]))
  return out


def plot(results: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  dims = sorted({r["d"] for r in results["runs"]})
  fig, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 3.2), squeeze=False)
  for ax, d in zip(axes[0], dims):
    runs = [r for r in results["runs"] if r["d"] == d]
    for r in runs:
      ax.plot(r["minimisation"]["step"], r["minimisation"]["true_kl"], color="C0", alpha=0.7)
    ax.axhline(np.mean([r["true_kl"] for r in runs]), color="k", ls="--", label="true KL at init")
    ax.axhline(np.mean([r["estimated_kl"] for r in runs]), color="C3", ls=":", label="classifier estimate at init")
    ax.set_title(f"d = {d}")
    ax.set_xlabel("step")
    ax.set_yscale("log")
  axes[0][0].set_ylabel("true KL[q || p] while minimising")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(_):
  if not FLAGS.out:
    raise app.UsageError("--out is required")
  os.makedirs(FLAGS.out, exist_ok=True)
  path = os.path.join(FLAGS.out, "synthetic_gaussians.json")
  results = json.load(open(path)) if os.path.exists(path) else None
  for d in [int(d) for d in FLAGS.dims]:  # written after each d: an interrupted study keeps what finished
    results = run([d], FLAGS.seeds, FLAGS.estimation_steps, FLAGS.steps, FLAGS.batch, results)
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)
  plot(results, os.path.join(FLAGS.out, "synthetic_gaussians.png"))


if __name__ == "__main__":
  app.run(main)
