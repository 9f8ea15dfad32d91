"""Which latent level's prior makes a hierarchical VAE's samples blobs? For a trained ADE run: held-out
images, their reconstructions (every level from the posterior), and decodings that take the first K
levels (lowest resolution first) from the posterior mean and sample the rest from their conditional
priors, with the domain classifier's accuracy on each. Writes one grid (rows of 8: real, then each K).

  python tools/latent_levels.py --workdir=DIR --out=levels.png [--n=500]
"""
from __future__ import annotations

import argparse

import jax
import numpy as np

from adejax import config_lib, evaluate, losses, reporting
from adejax.evaluation import latents


def decode_mixed(model, variables, y, keep: int, seed: int = 0):
  """Images from the posterior means of the first `keep` levels and prior samples of the others."""
  def fn(module, y):
    f = module.to_features(y, train=False)[0]
    zs = module.vae.encode(f, jax.random.PRNGKey(seed))
    zs = [z if level < keep else None for level, z in enumerate(zs)]  # None: sampled from the prior
    mean = module.vae._decode(y.shape[0], jax.random.PRNGKey(seed + 1), None, 1.0, zs)[0]
    return module.from_features(mean)
  return np.clip(np.asarray(model.apply(variables, y, method=fn)), 0.0, 1.0)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--out", required=True)
  ap.add_argument("--n", type=int, default=500, help="held-out images scored (the grid shows 8)")
  a = ap.parse_args()
  config = config_lib.load_run_config(a.workdir)
  trainer, state, test = evaluate.restore_trainer(config, a.workdir)
  variables = {"params": trainer.eval_params(state), "batch_stats": state.batch_stats}
  images, labels = test.images[:a.n], test.labels[:a.n]
  features, _ = evaluate.domain_features(config, test)
  y = losses.pixel_centres(images)
  rows = [images[:8] / 255.0]
  levels = len(jax.eval_shape(lambda: trainer.model.apply(variables, y[:1], jax.random.PRNGKey(0),
                                                           method="latent_diagnostics"))["means"])
  for keep in range(levels, -1, -1):
    decoded = decode_mixed(trainer.model, variables, y, keep)
    accuracy = latents.classifier_accuracy(lambda x: features(x)[1], latents.to_uint8(decoded), labels)
    print(f"levels from the posterior: {keep}; classifier accuracy {accuracy:.3f}")
    rows.append(decoded[:8])
  reporting.save_png(a.out, np.concatenate(rows), ncols=8)


if __name__ == "__main__":
  main()
