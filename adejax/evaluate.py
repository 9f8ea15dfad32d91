"""Evaluate a trained run: `python -m adejax.evaluate --workdir=DIR [--config.eval.iwae_samples=K]`.

Restores the latest checkpoint in DIR (EMA parameters when the run keeps them), computes held-out
bits/dim bounds on the test split (ELBO and, with K > 0, IWAE-K; both are upper bounds), the latent-use
metrics of a model with an encoder (`Trainer.latent_use`: the domain classifier's accuracy on held-out
reconstructions beside its accuracy on the images, reconstruction PSNR, KL per latent level in bits per
image, active units), sample metrics, and writes DIR/eval/metrics.json, sample grids at several
temperatures and real|reconstruction pairs.
"""
from __future__ import annotations

import hashlib
import os

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging

from adejax import checkpointing, config_lib, input_pipeline, reporting
from adejax.evaluation import critic, domain_classifier, fid, inception, modes, prd

TEMPERATURES = (0.6, 0.8, 1.0)
CLASSIFIER_EXAMPLES_WHEN_STREAMING = 50_000  # the domain classifier of a streamed dataset trains on these


def restore_trainer(config, workdir: str):
  """(trainer, state, eval data) for the latest checkpoint of a run; fails if there is none. The state's
  batch-norm statistics are re-estimated on training images at its parameters (for evaluation)."""
  from adejax import train  # the training system, one layer up from the parts evaluated here

  config_lib.validate(config)
  eval_data = input_pipeline.load_split(config.data, config.data.eval_split)
  trainer = train.Trainer(config, eval_data.images.shape[1:])
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), config.ckpt.keep)
  if ckpt.latest_step() is None:
    raise config_lib.ConfigError(f"No checkpoint in {workdir}/checkpoints: train first "
                                 "(python -m adejax.main --mode=train ...).")
  state = ckpt.restore_latest(trainer.init_state(config.seed))
  ckpt.close()
  return trainer, trainer.with_eval_batch_stats(state, *train.batch_stats_images(config)), eval_data


def write_samples(trainer, state, out_dir: str, num: int, temperatures=TEMPERATURES) -> list[str]:
  """Sample grids per temperature; a class-conditional model's grid has one column per class."""
  return [reporting.save_png(os.path.join(out_dir, f"samples_t{t:.1f}.png"),
                             trainer.sample(state, num, temperature=t, seed=0),
                             ncols=trainer.num_classes or None) for t in temperatures]


def write_samples_npz(trainer, state, out_dir: str, n: int, chunk: int, seed: int = 0) -> str:
  """`out_dir/samples.npz`: key `images`, (n, H, W, C) uint8 samples at the data's resolution (and
  `labels` for a class-conditional model), for torch-fidelity, clean-fid or any script to score."""
  images, labels, _ = generate_uint8(trainer, state, n, chunk, seed)
  path = os.path.join(out_dir, "samples.npz")
  os.makedirs(out_dir, exist_ok=True)
  extra = {} if labels is None else {"labels": labels.astype(np.int32)}
  np.savez(path, images=images, **extra)
  return path


def interpolation_pairs(labels: np.ndarray, pairs: int, same_class: bool):
  """Indices (a, b) of image pairs to interpolate between: the first `pairs` images and the next ones,
  or, for a class-conditional model, for each of the first images a later image of its class."""
  a = np.arange(pairs)
  if not same_class:
    return a, np.arange(pairs, 2 * pairs)
  b = []
  for i in a:
    later = np.flatnonzero(labels[pairs:] == labels[i])
    b.append(pairs + later[0] if len(later) else i)
  return a, np.asarray(b)


def generate_uint8(trainer, state, n: int, chunk: int, seed: int = 0):
  """(n samples as uint8 images, their class labels, the fraction of samples with non-finite pixels)
  generated in fixed-size chunks (one compilation). A class-conditional model generates every class in
  turn; the labels are None for other models. Non-finite pixels become 0 and are counted, never cast."""
  k = trainer.num_classes
  labels = np.arange(-(-n // chunk) * chunk) % k if k else None
  parts = []
  for i in range(-(-n // chunk)):
    if i % 10 == 0:
      logging.info("sampling: %d of %d images", i * chunk, n)
    parts.append(trainer.sample(state, chunk, seed=seed + i,
                                labels=None if labels is None else labels[i * chunk:(i + 1) * chunk]))
  floats = np.concatenate(parts)[:n]
  bad = ~np.isfinite(floats).reshape(n, -1).all(axis=1)
  if bad.any():  # counted and shown, never silently cast (NaN -> uint8 is undefined)
    logging.warning("%d of %d samples have non-finite pixels (set to 0): the model's sampling path is "
                    "numerically unstable at this temperature.", int(bad.sum()), n)
  images = np.round(np.nan_to_num(floats, nan=0.0, posinf=1.0, neginf=0.0) * 255.0).astype(np.uint8)
  return images, None if labels is None else labels[:n], float(bad.mean())


def feature_cache_dir(config) -> str:
  return config.eval.feature_cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "adejax")


def sample_quality(config, samples: np.ndarray, test_data, out_dir: str, labels=None,
                   domain=None) -> dict:
  """fid_domain / is_domain / PRD with the offline domain classifier; fid / is with Inception if given;
  GAN-test / GAN-train for samples generated for class `labels`. Samples are compared with the first
  len(samples) test images."""
  metrics, cache = {}, feature_cache_dir(config)
  real = test_data.images[:len(samples)]
  if test_data.has_labels:
    metrics.update(_domain_metrics(config, samples, labels, test_data, real, out_dir,
                                   domain or domain_features(config, test_data)))
  else:
    logging.warning("%s has no class labels: no domain classifier, so no fid_domain/is_domain/PRD.",
                    config.data.dataset)
  weights = config.eval.inception_path or os.environ.get(inception.WEIGHTS_ENV, "")
  if weights:
    net = inception.load_fid_inception(weights)
    key = f"{config.data.dataset.replace('/', '_')}_{config.data.eval_split}_{len(real)}_{real.shape[1]}"
    mu_r, sigma_r = fid.cached_statistics(os.path.join(cache, f"inception_stats_{key}.npz"),
                                          lambda: fid.feature_statistics(net(real)[0]))
    pool, logits = net(samples)
    metrics["fid"] = fid.frechet_distance(mu_r, sigma_r, *fid.feature_statistics(pool))
    metrics["is"], metrics["is_std"] = fid.inception_score(logits)
  return metrics


def domain_features(config, test_data):
  """(feature function, info) of the offline domain classifier. For a stacked dataset: the classifier
  of its base dataset, applied to each channel (`modes.stacked_features`)."""
  cache = feature_cache_dir(config)
  if config.data.dataset in input_pipeline.STACKED_DATASETS:
    base = ml_collections.ConfigDict(config.data.to_dict())
    base.dataset = input_pipeline.STACKED_DATASETS[config.data.dataset]
    features, info = domain_classifier.load_or_train(
        cache, base.dataset, lambda: input_pipeline.load_split(base, base.train_split),
        input_pipeline.load_split(base, base.eval_split), steps=config.eval.classifier_steps)
    return modes.stacked_features(features), {**info, "per_channel": features}
  return domain_classifier.load_or_train(
      cache, config.data.dataset,
      lambda: input_pipeline.load_split(config.data, config.data.train_split,
                                        limit=CLASSIFIER_EXAMPLES_WHEN_STREAMING if config.data.stream else 0),
      test_data, steps=config.eval.classifier_steps)


def mode_metrics(samples: np.ndarray, test_data, domain, cache_dir: str = "") -> dict:
  """Modes covered out of 1000 and KL(histogram || uniform) of stacked samples, and the same for as
  many held-out real stacked images (the ceiling the classifier allows), with its accuracy. `domain`:
  `domain_features` of the stacked dataset. With `cache_dir`, the ceiling is computed once per
  classifier and set of real images (keyed by their bytes) and read back by every later run."""
  _, info = domain
  logits = lambda x: info["per_channel"](x)[1]
  n = min(len(samples), len(test_data))
  fake = modes.coverage(modes.modes_of(modes.classify_channels(logits, samples)))
  real_images = np.ascontiguousarray(test_data.images[:n])
  compute_real = lambda: modes.coverage(modes.modes_of(modes.classify_channels(logits, real_images)))
  if cache_dir:
    key = hashlib.sha1(real_images).hexdigest()[:20]
    classifier = f"{info['dataset'].replace('/', '_')}_v{domain_classifier.RECIPE_VERSION}_{info['steps']}"
    real = reporting.cached_json(os.path.join(cache_dir, f"modes_real_{classifier}_{n}_{key}.json"),
                                 compute_real)
  else:
    real = compute_real()
  return {"modes": fake["modes"], "modes_kl": fake["kl"], "modes_samples": len(samples),
          "modes_real": real["modes"], "modes_kl_real": real["kl"], "modes_real_images": n,
          "mode_classifier_accuracy": info["test_accuracy"]}


def _domain_metrics(config, samples, labels, test_data, real, out_dir: str, domain) -> dict:
  metrics = {}
  features, info = domain
  real_f, _ = features(real)
  fake_f, fake_logits = features(samples)
  metrics["fid_domain"] = fid.fid_from_features(real_f, fake_f)
  metrics["is_domain"], metrics["is_domain_std"] = fid.inception_score(fake_logits)
  metrics["domain_classifier_accuracy"] = info["test_accuracy"]
  precision, recall = prd.compute_prd(real_f, fake_f)
  metrics.update({f"{k}_domain": v for k, v in prd.summarise(precision, recall).items()})
  if jax.process_index() == 0:
    prd.plot_prd({"model": (precision, recall)}, os.path.join(out_dir, "prd_domain.png"))
  if labels is not None:
    logging.info("GAN-test and GAN-train (training a classifier on %d samples).", len(samples))
    metrics["gan_test_domain"] = domain_classifier.gan_test(features, samples, labels)
    metrics["gan_train_domain"] = domain_classifier.gan_train(
        samples, labels, test_data, num_classes=config.model.num_classes,
        steps=config.eval.classifier_steps, seed=config.seed)
  return metrics


def evaluate_run(config, workdir: str, trained=None) -> dict:
  """Every metric of the run's latest checkpoint. `trained`: what `train.train` returned for this
  config and workdir; its final state and bits/dim are used instead of restoring and recomputing them
  (the same numbers: the checkpoint holds that state)."""
  in_memory = trained is not None and trained.eval_state is not None
  if in_memory:
    trainer, state, eval_data = trained.trainer, trained.eval_state, trained.eval_data
  else:
    trainer, state, eval_data = restore_trainer(config, workdir)
  step = int(jax.device_get(state.step))
  logging.info("Evaluating step %d on %s/%s.", step, config.data.dataset, config.data.eval_split)
  if in_memory and not config.eval.iwae_samples:
    metrics = dict(trained.metrics)  # the final step's evaluation, with the same arguments
  else:
    metrics = trainer.evaluate(state, eval_data, batch_size=config.eval.batch_size,
                               num_examples=config.eval.num_examples,
                               iwae_samples=config.eval.iwae_samples, seed=config.seed)
  metrics["step"] = step
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  n = min(config.eval.num_fid_samples, len(eval_data))
  stacked = config.data.dataset in input_pipeline.STACKED_DATASETS
  m = config.eval.num_mode_samples if stacked else 0
  latent_n = config.eval.num_latent_examples if trainer.family.has_encoder else 0
  domain = None
  if (n or m or latent_n) and eval_data.has_labels:
    domain = domain_features(config, eval_data)  # loaded once
  if latent_n:
    logits_fn = None if domain is None else (lambda x: domain[0](x)[1])
    metrics.update(trainer.latent_use(state, eval_data, latent_n, logits_fn, seed=config.seed))
  if n or m:
    samples, labels, nonfinite = generate_uint8(trainer, state, max(n, m), config.eval.batch_size)
    metrics["nonfinite_sample_fraction"] = nonfinite
    if n:
      metrics.update(sample_quality(config, samples[:n], eval_data, out_dir,
                                    None if labels is None else labels[:n], domain))
      if config.eval.critic_steps and n >= 4:
        logging.info("Independent Wasserstein critic: %d steps on %d samples vs %d test images.",
                     config.eval.critic_steps, n, n)
        metrics.update(critic.wasserstein_estimate(eval_data.images[:n], samples[:n],
                                                   steps=config.eval.critic_steps, seed=config.seed))
    if m:
      metrics.update(mode_metrics(samples[:m], eval_data, domain, feature_cache_dir(config)))
  if jax.process_index() == 0:
    write_samples(trainer, state, out_dir, config.eval.num_samples)
    real, real_labels = eval_data.images[:config.eval.num_samples], eval_data.labels[:config.eval.num_samples]
    reporting.save_png(os.path.join(out_dir, "reconstructions.png"), reporting.side_by_side(
        real, trainer.reconstruct(state, real, labels=real_labels)), ncols=8)
    pairs = max(1, min(8, len(eval_data) // 2))
    a, b = interpolation_pairs(eval_data.labels, pairs, bool(trainer.num_classes))
    lerp = trainer.interpolate(state, eval_data.images[a], eval_data.images[b],
                               labels=eval_data.labels[a])
    reporting.save_png(os.path.join(out_dir, "interpolations.png"),
                       lerp.reshape((-1,) + lerp.shape[2:]), ncols=lerp.shape[1])
    for name, grid in trainer.figures(state, min(8, config.eval.num_samples)).items():
      reporting.save_png(os.path.join(out_dir, f"{name}.png"), grid.reshape((-1,) + grid.shape[2:]),
                         ncols=grid.shape[1])
    reporting.write_json(os.path.join(out_dir, "metrics.json"), metrics)
  print(format_table(metrics))
  return metrics


def format_table(metrics: dict) -> str:
  rows = [f"{k:<28} {v:.4f}" if isinstance(v, float) else f"{k:<28} {v}" for k, v in sorted(metrics.items())]
  return "\n".join([f"{'metric':<28} value (bpd values are upper bounds)", *rows])


def apply_overrides(config, overrides) -> None:
  """Apply KEY=VALUE strings (e.g. eval.iwae_samples=64), converting to each field's type."""
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep:
      raise config_lib.ConfigError(f"override {item!r} must look like key=value")
    parent, name = _walk(config, key)
    old = parent[name]
    if isinstance(old, bool):
      value = text.lower() in ("1", "true", "yes")
    else:
      value = type(old)(text)
    parent[name] = value


def _walk(config, key: str):
  *path, name = key.split(".")
  node = config
  try:
    for part in path:
      node = node[part]
    node[name]  # noqa: B018 -- existence check
  except (KeyError, AttributeError, TypeError):
    raise config_lib.ConfigError(f"config.{key}: no such key") from None
  return node, name


FLAGS = flags.FLAGS


def main(argv):
  del argv
  from adejax import cli

  with cli.user_errors("adejax.evaluate", ValueError):
    if not FLAGS.workdir:
      raise config_lib.ConfigError("--workdir is required")
    config = config_lib.load_run_config(FLAGS.workdir)
    apply_overrides(config, FLAGS.override)
    evaluate_run(config, FLAGS.workdir)


if __name__ == "__main__":
  # Defined here, not at import, so `adejax.main` can import this module beside its own flags.
  flags.DEFINE_string("workdir", None, "Workdir of a training run.")
  flags.DEFINE_multi_string("override", [], "KEY=VALUE config overrides, e.g. eval.iwae_samples=64.")
  from adejax import cli

  app.run(main, flags_parser=cli.flags_parser("adejax.evaluate"))
