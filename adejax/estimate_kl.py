"""Marginal KL[q(z) || p(z)] of a trained run (papers/004 section 4): `python -m adejax.estimate_kl --workdir=DIR`.

The posteriors q(z | x_n) of `num_posteriors` training images (at the pixel centres), then every
estimator of `adejax.evaluation.marginal_kl`: Monte Carlo over the aggregate posterior (Algorithm 1),
a density-ratio classifier (Algorithm 2), two density models (Algorithm 3: a Gaussian mixture and a
MAF), the average KL term and eq. 5's lower bound, in nats. Settings: the run config's
`eval.marginal_kl` (papers/004's by default, shrunk by `--scale=small`), changed with the flags below
or `--set=KEY=VALUE`. For AV-ADE's hierarchical VAE the latent is its top level (the global
vector z_g, or without it the lowest-resolution level), whose prior is N(0, I); for glow_vae the model's prior (flow, two-stage or normal). Writes
DIR/eval/marginal_kl.json.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from adejax import config_lib, evaluate, families, input_pipeline, losses, reporting
from adejax.evaluation import marginal_kl


def posteriors(trainer, state, images: np.ndarray, labels, batch: int):
  """(means, log_stds), each (N, d), of q(z | x) for uint8 images."""
  variables = {"params": trainer.eval_params(state), "batch_stats": state.batch_stats}
  fn = jax.jit(lambda v, y, l: trainer.model.apply(v, y, l, method="latent_posterior"))
  means, log_stds = [], []
  for i in range(0, len(images), batch):
    y = losses.pixel_centres(images[i:i + batch])
    l = jnp.asarray(labels[i:i + batch], jnp.int32) if trainer.num_classes else None
    m, s = fn(variables, y, l)
    means.append(np.asarray(m))
    log_stds.append(np.asarray(s))
  return jnp.asarray(np.concatenate(means)), jnp.asarray(np.concatenate(log_stds))


def estimate_run(config, workdir: str, seed: int = 0, **overrides) -> dict:
  """Every estimator on the run in `workdir`, at `config.eval.marginal_kl` with `overrides` (its keys,
  e.g. num_posteriors=40) applied."""
  settings = config.eval.marginal_kl.to_dict()
  unknown = sorted(set(overrides) - set(settings))
  if unknown:
    raise config_lib.ConfigError(f"unknown marginal-KL settings {unknown}; valid: {sorted(settings)}")
  settings.update({k: v for k, v in overrides.items() if v is not None})
  if not families.family_class(config).has_latent_posterior(config):
    raise config_lib.ConfigError(
        f"{workdir} is a {families.family_class(config).results_mode(config)} run: its model has no encoder "
        "q(z | x), so there is no marginal KL to estimate; use a run with a latent variable")
  trainer, state, _ = evaluate.restore_trainer(config, workdir)
  limit = settings["num_posteriors"] or None  # 0: the whole training split (papers/004 appendix A.2)
  data = input_pipeline.load_split(config.data, config.data.train_split, limit=limit)
  means, log_stds = posteriors(trainer, state, data.images[:limit], data.labels[:limit],
                               config.eval.batch_size)
  variables = {"params": trainer.eval_params(state), "batch_stats": state.batch_stats}
  log_prior = jax.jit(lambda z: trainer.model.apply(variables, z, method="latent_log_prior"))
  # N(0, I) priors (AV-ADE's top level, papers/004's VAEs, a glow_vae with prior "normal"): the average
  # KL in closed form (papers/004 Table 1); a learned prior: its Monte Carlo mean, from prior samples
  prior_sample = None if trainer.family.standard_normal_prior else jax.jit(
      lambda k, z: trainer.model.apply(variables, k, z, method="latent_prior_sample"))
  logging.info("Estimating the marginal KL over %d posteriors of dimension %d.", *means.shape)
  out = marginal_kl.estimate_all(jax.random.PRNGKey(seed), means, log_stds, settings, log_prior,
                                 prior_sample)
  out["step"] = int(jax.device_get(state.step))
  path = os.path.join(workdir, "eval", "marginal_kl.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  reporting.write_json(path, out)
  print(evaluate.format_table(out))
  return out


FLAGS = flags.FLAGS


def main(argv):
  del argv
  from adejax import cli

  with cli.user_errors("adejax.estimate_kl", ValueError):
    if not FLAGS.workdir:
      raise config_lib.ConfigError("--workdir is required")
    config = config_lib.load_run_config(FLAGS.workdir)
    evaluate.apply_overrides(config, [f"eval.marginal_kl.{item}" for item in FLAGS.set])
    config_lib.validate(config)
    estimate_run(config, FLAGS.workdir, num_posteriors=FLAGS.num_posteriors,
                 num_samples=FLAGS.num_samples, classifier_steps=FLAGS.classifier_steps)


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Workdir of a training run.")
  flags.DEFINE_integer("num_posteriors", None, "Training images whose posteriors form q(z) (N; 0 = the "
                       "whole split). Default: the run's eval.marginal_kl.num_posteriors.")
  flags.DEFINE_integer("num_samples", None, "Samples z ~ q(z) for the estimators. Default: the run's "
                       "eval.marginal_kl.num_samples.")
  flags.DEFINE_integer("classifier_steps", None, "Training steps of the density-ratio classifier. "
                       "Default: the run's eval.marginal_kl.classifier_steps.")
  flags.DEFINE_multi_string("set", [], "Any eval.marginal_kl setting, KEY=VALUE (repeatable), e.g. "
                            "--set=classifier_layers=5 --set=maf_flows=0.")
  from adejax import cli

  app.run(main, flags_parser=cli.flags_parser("adejax.estimate_kl"))
