"""Diagnosis of latent use (issue 29): train a config for N steps in one process (no checkpoints) and,
every K steps, print one JSON line of what decides whether a VAE uses its latents: the training terms
(mean over the window), the held-out ELBO terms, `Trainer.latent_use` (domain classifier accuracy on
held-out reconstructions, PSNR, KL per level in bits per image, active units) and the decoder's noise
relative to the spread of its features (sigma / std of f_psi(x) over held-out images); reconstruction
and sample grids go to --out.

  python tools/latent_probe.py --out=DIR --steps=1000 --every=250 [--config=configs/default.py]
      [--fid=2000] [--set mode=v-ade --set loss.free_bits=4 ...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time

import jax
import numpy as np

from adejax import evaluate, input_pipeline, losses, reporting, train
from adejax.evaluation import fid

TRAIN_TERMS = ("bpd", "kl_bpd", "nll_bpd", "logdet_bpd", "flow_logdet_bpd", "sigma", "disc_accuracy")


def load_config(path: str, sets):
  spec = importlib.util.spec_from_file_location("probe_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  evaluate.apply_overrides(config, sets)
  return config


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", default="configs/default.py")
  ap.add_argument("--out", required=True)
  ap.add_argument("--steps", type=int, default=1000)
  ap.add_argument("--every", type=int, default=250)
  ap.add_argument("--n", type=int, default=500, help="held-out images measured")
  ap.add_argument("--fid", type=int, default=0, help="also fid_domain of this many samples")
  ap.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
  a = ap.parse_args()
  c = load_config(a.config, a.set)
  os.makedirs(a.out, exist_ok=True)
  train_data = input_pipeline.load_split(c.data, "train")
  test = input_pipeline.load_split(c.data, "test")
  features, _ = evaluate.domain_features(c, test)
  trainer = train.Trainer(c, train_data.images.shape[1:])
  state = trainer.init_state(c.seed)
  feature_map = jax.jit(lambda p, bs, y: trainer.model.apply(
      {"params": p, "batch_stats": bs}, y, False, method="to_features")[0])
  log_det_map = jax.jit(lambda p, bs, y: trainer.model.apply(
      {"params": p, "batch_stats": bs}, y, method="flow_log_det_map"))
  rng = np.random.default_rng(c.seed)
  real = test.images[:a.n]
  y_real = losses.pixel_centres(real)
  t0, history, window = time.time(), [], []
  for step in range(1, a.steps + 1):
    batch = train_data.images[rng.integers(0, len(train_data), c.train.batch_size)]
    state, metrics = trainer.step(state, trainer.global_batch(batch))
    window.append({k: v for k, v in metrics.items() if k in TRAIN_TERMS})
    if step % a.every and step != a.steps:
      continue
    row = {"step": step, "seconds": round(time.time() - t0, 1)}
    row.update({f"train_{k}": round(float(np.mean([float(w[k]) for w in window])), 4) for k in window[0]})
    window = []
    view = trainer.with_eval_batch_stats(state, *train.batch_stats_images(c))
    row.update(trainer.evaluate(view, test, batch_size=250, num_examples=a.n))
    row.update(trainer.latent_use(view, test, a.n, lambda x: features(x)[1]))
    if a.fid:
      samples = evaluate.generate_uint8(trainer, view, a.fid, 250)[0]
      row["fid_domain"] = fid.fid_from_features(features(test.images[:a.fid])[0], features(samples)[0])
    f = np.asarray(feature_map(trainer.eval_params(view), view.batch_stats, y_real))
    sigma = float(np.exp(np.asarray(trainer.eval_params(view)["vae"]["log_sigma"])))
    row.update(feature_std=float(f.std()), sigma_over_feature_std=sigma / float(f.std()))
    if "flow" in view.params:  # where f_psi expands (background) and contracts (the garment)
      ld = np.asarray(log_det_map(trainer.eval_params(view), view.batch_stats, y_real))
      background = real[..., 0] == 0
      row.update(flow_logdet_nats_background=float(ld[background].mean()),
                 flow_logdet_nats_garment=float(ld[~background].mean()))
    row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
    print(json.dumps(row), flush=True)
    history.append(row)
    reporting.save_png(os.path.join(a.out, f"reconstructions_{step}.png"),
                       reporting.side_by_side(real[:32], trainer.reconstruct(view, real[:32])), ncols=8)
    reporting.save_png(os.path.join(a.out, f"samples_{step}.png"), trainer.sample(view, 64, seed=0))
  with open(os.path.join(a.out, "probe.json"), "w") as fh:
    json.dump({"overrides": a.set, "config": a.config, "history": history}, fh, indent=1)


if __name__ == "__main__":
  main()
