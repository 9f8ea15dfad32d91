"""Training system: the train state, Algorithm 1 as one step function, the sharded trainer and the loop.

Parallelism: one 1-D `data` mesh over all devices (all processes); batches are sharded on it,
parameters and optimiser states replicated; `jax.jit` with explicit shardings and a donated state.
Batch-norm statistics are therefore global. Randomness: one root key in the state; the step's keys
are `fold_in(root, step)` split by name, so the same seed and global batch give the same numbers on
any number of devices.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import functools
import json
import math
import os
import signal
import socket
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from adejax import checkpointing, config_lib, faults, families, input_pipeline, losses, reporting
from adejax.evaluation import latents
from adejax.models import contract, layers


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  rng: jax.Array            # root key (raw uint32); per-step keys are fold_in(rng, step)
  params: Any               # the family's generative model (what evaluation and sampling use)
  batch_stats: Any          # its batch-norm statistics ({} without batch norm)
  disc_params: Any          # the family's adversaries (discriminators, critics); {} without
  opt_state: Any            # {group name: optimiser state}, one per parameter group of the family
  ema_params: Any           # EMA of `params`; {} when EMA is off
  skipped: jax.Array        # updates skipped because a loss or gradient was not finite
  skip_streak: jax.Array    # consecutive steps, up to this one, in which an update was skipped


def train_step(state: TrainState, images: jax.Array, labels, phase: int = 0, *,
               family: families.Family, ema_decay: float, constrain=lambda x: x):
  """One training step: the family's update schedule on a uint8 batch, then the step counter and the
  EMA. The step's randomness is fold_in(root, step), so any device count gives the same numbers. A step
  in which the family skipped a (non-finite) update leaves the EMA as it was and extends the skip streak;
  a phase in `family.ema_restart_phases` (data-dependent initialisation) restarts the EMA.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  new, metrics = family.train_step(state, images, labels, rng, constrain, phase)
  bad = new.skipped > state.skipped
  decay = 0.0 if phase in family.ema_restart_phases else ema_decay
  ema = (jax.tree.map(lambda e, p: jnp.where(bad, e, decay * e + (1 - decay) * p),
                      state.ema_params, new.params) if ema_decay else state.ema_params)
  streak = jnp.where(bad, state.skip_streak + 1, 0)
  return (new.replace(step=state.step + 1, ema_params=ema, skip_streak=streak),
          {**metrics, "skipped_updates": new.skipped, "skip_streak": streak})


all_finite = families.all_finite


def in_compute_dtype(fn, dtype: str):
  """`fn`, traced with the models' convolutions and matmuls in `dtype` (train.compute_dtype; the policy
  and what stays float32: `layers.compute_dtype`)."""
  @functools.wraps(fn)
  def traced(*args, **kwargs):
    with layers.compute_dtype(dtype):
      return fn(*args, **kwargs)
  return traced


# Config fields only the Python loop reads (never the models, the family or a compiled function): two
# configs that differ only in these share one Trainer's compiled functions (`Trainer.__init__`). Whole
# sections: where the data come from (image shapes are part of the key), how and how often evaluation
# runs (its compiled functions take their sizes from their arguments), checkpointing; and the seed (an
# argument of `init_state`, never a constant of a compiled function). Guarded by
# tests/test_configs.py, which builds and steps every family's Trainer from configs without them.
LOOP_ONLY_FIELDS = ("train.num_steps", "train.log_every", "train.image_every", "train.grad_norms",
                    "train.max_consecutive_skips", "train.init_checkpoint", "data", "eval", "ckpt", "seed")
COMPILED_CACHE_SIZE = 8  # Trainers whose compiled functions are kept for reuse (least recently built out)
_COMPILED: dict = {}


def _compiled_key(config, image_shape, devices) -> str:
  """What a Trainer's compiled functions depend on: the config without LOOP_ONLY_FIELDS, the image
  shape and the devices."""
  d = config.to_dict()
  for field in LOOP_ONLY_FIELDS:
    section, _, name = field.partition(".")
    if name:
      d.get(section, {}).pop(name, None)
    else:
      d.pop(section, None)
  return json.dumps([d, list(image_shape), [str(x) for x in devices.flat]], sort_keys=True, default=str)


def clear_compiled_cache():
  """Forget the compiled functions kept for reuse (with `jax.clear_caches`, frees their memory)."""
  _COMPILED.clear()


class Trainer:
  """Models, optimisers, mesh and the compiled functions for one config. Trainers of configs that differ
  only in loop settings (LOOP_ONLY_FIELDS) share compiled functions: a resumed or relaunched run in the
  same process compiles nothing again."""

  def __init__(self, config: ml_collections.ConfigDict, image_shape, devices=None):
    self.config = config
    self.image_shape = tuple(int(s) for s in image_shape)
    devices = np.asarray(devices if devices is not None else jax.devices())
    key = _compiled_key(config, self.image_shape, devices)
    shared = _COMPILED.pop(key, None)
    if shared is not None:  # a Trainer of the same model on the same devices: its compiled functions
      _COMPILED[key] = shared
      self.__dict__.update(shared)
      return
    self._build(config, devices)
    _COMPILED[key] = {k: v for k, v in self.__dict__.items() if k not in ("config",)}
    while len(_COMPILED) > COMPILED_CACHE_SIZE:
      _COMPILED.pop(next(iter(_COMPILED)))

  def _build(self, config: ml_collections.ConfigDict, devices):
    self.family = families.make(config, self.image_shape)
    self.model = self.family.model
    contract.check_model(self.model, self.family.label or type(self.family).__name__)
    self.ema_decay = float(config.train.ema_decay)
    self.num_classes = int(config.model.num_classes)
    self.mesh = Mesh(devices, ("data",))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    constrain = lambda x: jax.lax.with_sharding_constraint(x, self.batch_sharding)
    self.compute_dtype = str(config.train.compute_dtype)
    jit = lambda fn, **kw: jax.jit(in_compute_dtype(fn, self.compute_dtype), **kw)
    step = functools.partial(train_step, family=self.family, ema_decay=self.ema_decay,
                             constrain=constrain)
    self._init_state = jax.jit(self._init, out_shardings=self.replicated)  # (float32, shared, compiled once)
    self._step = jit(step, in_shardings=(self.replicated, self.batch_sharding, self.batch_sharding),
                     out_shardings=(self.replicated, self.replicated), donate_argnums=0, static_argnums=3)
    norms = lambda state, images, labels: self.family.gradient_norms(
        state, images, labels, jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 1),
        constrain)
    self._gradient_norms = jit(norms, in_shardings=(self.replicated, self.batch_sharding, self.batch_sharding),
                               out_shardings=self.replicated)
    self._eval = jit(self._eval_batch, static_argnums=(5,), out_shardings=self.replicated)
    self._sample = jit(self._sample_images, static_argnums=(2, 3), out_shardings=self.replicated)
    self._reconstruct = jit(self._reconstruct_images, out_shardings=self.replicated)
    self._per_example = jit(self._per_example_nll, out_shardings=self.replicated)
    self._stats = jit(self.family.batch_stats_of, out_shardings=self.replicated)
    self._figures = jit(self.family.figures, static_argnums=3, out_shardings=self.replicated)
    self._latents = jit(self.family.latent_diagnostics, out_shardings=self.replicated)
    self._interpolate = jit(lambda v, a, b, n, labels: self.model.apply(v, a, b, n, labels, method="interpolate"),
                            static_argnums=3)

  def _labels(self, labels, n: int, default: bool = False):
    """Labels as the models take them: None for an unconditional model; for a conditional one the
    given labels, or with `default` the balanced 0, 1, ..., K-1, 0, ... (else an error)."""
    if not self.num_classes:
      return None
    if labels is None:
      if not default:
        raise ValueError(f"This model is class-conditional ({self.num_classes} classes): pass labels.")
      labels = np.arange(n) % self.num_classes
    return jnp.asarray(labels, jnp.int32)

  def step(self, state: TrainState, images: jax.Array, labels=None, step: int | None = None):
    """One compiled train step on a global batch (labels: a global batch too, for conditional models).
    `step` (= state.step, known to the loop) picks a multi-phase family's phase without reading the
    device; without it the state's step is read."""
    phase = 0
    if self.family.num_phases > 1:
      phase = self.family.phase(int(state.step) if step is None else step)
    return self._step(state, images, self._labels(labels, images.shape[0]), phase)

  def gradient_norms(self, state: TrainState, images: jax.Array, labels=None) -> dict:
    """The family's logging-step instruments (`Family.gradient_norms`) on a global batch."""
    return self._gradient_norms(state, images, self._labels(labels, images.shape[0]))

  # -- state
  def _init(self, rng):
    params, batch_stats, disc_params = self.family.init(rng)
    trees = {"params": params, "disc_params": disc_params}
    opt_state = {name: g.tx.init(g.select(trees[g.tree])) for name, g in self.family.groups.items()}
    return TrainState(step=jnp.array(0, jnp.int32), rng=rng, params=params, batch_stats=batch_stats,
                      disc_params=disc_params, opt_state=opt_state,
                      ema_params=params if self.ema_decay else {}, skipped=jnp.array(0, jnp.int32),
                      skip_streak=jnp.array(0, jnp.int32))

  def init_state(self, seed: int) -> TrainState:
    """Parameters created directly with their (replicated) sharding."""
    return self._init_state(jax.random.PRNGKey(seed))

  def eval_params(self, state: TrainState):
    return state.ema_params if self.ema_decay else state.params

  def with_eval_batch_stats(self, state: TrainState, images: np.ndarray, labels=None,
                            chunk: int = 256) -> TrainState:
    """A copy of `state` whose batch-norm statistics are re-estimated at its evaluation parameters:
    the mean of the statistics of len(images) // chunk training batches (`layers.batch_norm` says why).
    For evaluation and sampling only; the training state keeps its own."""
    if not jax.tree.leaves(state.batch_stats):
      return state
    chunk = min(chunk, len(images)) // jax.device_count() * jax.device_count()
    params, total, n = self.eval_params(state), None, len(images) // chunk
    for i in range(n):
      sl = slice(i * chunk, (i + 1) * chunk)
      batch_labels = self.global_batch(labels[sl]) if self.num_classes else None
      stats = self._stats(params, state.batch_stats, self.global_batch(images[sl]), batch_labels,
                          jax.random.fold_in(jax.random.PRNGKey(0), i))
      total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    return state.replace(batch_stats=jax.tree.map(lambda t: t / n, total))

  def global_batch(self, local: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.batch_sharding, local)

  # -- evaluation, sampling
  def _eval_batch(self, params, batch_stats, images, labels, weights, iwae_samples, rng):
    y = losses.dequantize(images, rng)
    out = losses.heldout_nll(params, batch_stats, y, rng, model=self.model, iwae_samples=iwae_samples,
                             labels=labels)
    return {k: jnp.sum(v * weights) for k, v in out.items()} | {"count": jnp.sum(weights)}

  def evaluate(self, state: TrainState, data: input_pipeline.ImageData, *, batch_size: int,
               num_examples: int = 0, iwae_samples: int = 0, seed: int = 0) -> dict[str, float]:
    """Held-out bounds in bits/dim over the split (deterministic for a given seed); for a
    class-conditional model, bounds on -log p(x | label)."""
    params, sums = self.eval_params(state), None
    batches = input_pipeline.eval_batches(data, batch_size, num_examples, jax.process_index(),
                                          jax.process_count())
    total = -(-min(num_examples or len(data), len(data)) // batch_size)
    for i, (images, labels, weights) in enumerate(batches):
      if i % 20 == 0 and total > 20:
        logging.info("held-out bits/dim: batch %d of %d", i, total)
      labels = self.global_batch(labels) if self.num_classes else None
      out = self._eval(params, state.batch_stats, self.global_batch(images), labels,
                       self.global_batch(weights), iwae_samples,
                       jax.random.fold_in(jax.random.PRNGKey(seed), i))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
      if i == 0:
        faults.at("eval")
    sums = jax.device_get(sums)
    n, d = float(sums.pop("count")), math.prod(self.image_shape)
    result = {}
    for k, v in sums.items():
      if k in ("elbo", "iwae"):
        result[f"bpd_{k}"] = float(losses.bits_per_dim(v / n, d))
      else:
        result[f"{k}_bpd"] = float(v / n / (d * math.log(2.0)))
    return result

  def per_example_bpd(self, state: TrainState, images: np.ndarray, labels=None, seed: int = 0,
                      chunk: int = 256) -> np.ndarray:
    """The ELBO bound on each image's bits/dim (uint8 images, host numpy): which images the model
    explains well or badly. Its mean is `evaluate`'s bpd_elbo on the same images and seed."""
    params, out = self.eval_params(state), []
    for i in range(0, len(images), chunk):
      batch_labels = None if labels is None else jnp.asarray(labels[i:i + chunk], jnp.int32)
      nll = self._per_example(params, state.batch_stats, jnp.asarray(images[i:i + chunk]), batch_labels,
                              jax.random.fold_in(jax.random.PRNGKey(seed), i // chunk))
      out.append(np.asarray(jax.device_get(nll)))
    return np.asarray(losses.bits_per_dim(np.concatenate(out), math.prod(self.image_shape)))

  def _per_example_nll(self, params, batch_stats, images, labels, rng):
    y = losses.dequantize(images, rng)
    return losses.heldout_nll(params, batch_stats, y, rng, model=self.model, labels=labels)["elbo"]

  def _sample_images(self, params, batch_stats, n, temperature, rng, labels):
    return self.model.apply({"params": params, "batch_stats": batch_stats}, rng, n, temperature,
                            labels=labels, method="generate")

  def sample(self, state: TrainState, n: int, temperature: float | None = None, seed: int = 0,
             labels=None) -> np.ndarray:
    """n samples as float images in [0, 1] (host numpy), at `temperature` (None: the family's default,
    `Family.sample_temperature`). A class-conditional model draws them for `labels` (n,), by default
    the classes 0, 1, ..., K-1 in turn."""
    temperature = self.family.sample_temperature if temperature is None else float(temperature)
    y = self._sample(self.eval_params(state), state.batch_stats, n, temperature,
                     jax.random.PRNGKey(seed), self._labels(labels, n, default=True))
    return np.clip(np.asarray(jax.device_get(y)), 0.0, 1.0)

  def figures(self, state: TrainState, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The family's own figures (`Family.figures`) as host arrays in [0, 1]."""
    out = self._figures(self.eval_params(state), state.batch_stats, jax.random.PRNGKey(seed), n)
    return {k: np.clip(np.asarray(jax.device_get(v)), 0.0, 1.0) for k, v in out.items()}

  def _reconstruct_images(self, params, batch_stats, images, rng, labels):
    y = losses.dequantize(images, rng)
    return self.model.apply({"params": params, "batch_stats": batch_stats}, y, rng, labels,
                            method="reconstruct")

  def reconstruct(self, state: TrainState, images: np.ndarray, seed: int = 0,
                  labels=None) -> np.ndarray:
    rec = self._reconstruct(self.eval_params(state), state.batch_stats, jnp.asarray(images),
                            jax.random.PRNGKey(seed), self._labels(labels, len(images)))
    return np.clip(np.asarray(jax.device_get(rec)), 0.0, 1.0)


  def latent_use(self, state: TrainState, data: input_pipeline.ImageData, num_examples: int,
                 logits_fn=None, seed: int = 0, chunk: int = 250) -> dict:
    """How the model uses its latents on the first `num_examples` images of `data`
    (`evaluation.latents.latent_metrics`): reconstruction PSNR, KL per latent level in bits per image,
    active units, and with a domain classifier `logits_fn` its accuracy on the reconstructions beside
    its accuracy on the images. {} for a model without an encoder."""
    if not self.family.has_encoder or not num_examples:
      return {}
    n = min(num_examples, len(data))
    images = data.images[:n]
    labels = data.labels[:n] if data.has_labels else None
    params, recs, kls, means = self.eval_params(state), [], [], []
    for i in range(0, n, chunk):
      batch_labels = self._labels(None if labels is None else labels[i:i + chunk], len(images[i:i + chunk]))
      rng = jax.random.fold_in(jax.random.PRNGKey(seed), i // chunk)
      recs.append(self.reconstruct(state, images[i:i + chunk], seed=seed + i // chunk,
                                   labels=None if labels is None else labels[i:i + chunk]))
      y = losses.pixel_centres(images[i:i + chunk])
      out = jax.device_get(self._latents(params, state.batch_stats, y, rng, batch_labels))
      kls.append(np.asarray(out["kl"]))
      means.append([np.asarray(m) for m in out["means"]])
    return latents.latent_metrics(images, labels, np.concatenate(recs), np.concatenate(kls),
                                  [np.concatenate(level) for level in zip(*means)], logits_fn)

  def interpolate(self, state: TrainState, images_a: np.ndarray, images_b: np.ndarray,
                  steps: int = 8, labels=None) -> np.ndarray:
    """(B, steps, H, W, C) decoded latent interpolations between two sets of uint8 images, in [0, 1]
    (for a class-conditional model, within the classes `labels` shared by each pair)."""
    variables = {"params": self.eval_params(state), "batch_stats": state.batch_stats}
    y_a, y_b = losses.pixel_centres(images_a), losses.pixel_centres(images_b)
    out = self._interpolate(variables, y_a, y_b, steps, self._labels(labels, len(images_a)))
    return np.clip(np.asarray(jax.device_get(out)), 0.0, 1.0)


class Interrupted(Exception):
  """Training stopped early by SIGTERM or Ctrl-C, after saving a checkpoint of the current step."""

  def __init__(self, signal_name: str, step: int, workdir: str):
    self.signal_name, self.step = signal_name, step
    super().__init__(f"{signal_name} at step {step}: saved a checkpoint of step {step} in "
                     f"{workdir}/checkpoints; re-run the same command to resume.")


class RunawayError(RuntimeError):
  """Too many consecutive steps skipped a non-finite update (train.max_consecutive_skips)."""


class WorkdirInUseError(RuntimeError):
  """Another training run holds the workdir's lock."""


class PreemptionGuard:
  """Turns SIGTERM and a first Ctrl-C (SIGINT) into a flag the loop checks, so it can save a checkpoint
  of the current step and stop cleanly; a second Ctrl-C interrupts at once."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signal_name = ""
    self._previous = {}

  def __enter__(self):
    for sig in self.SIGNALS:
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread (e.g. a notebook worker)
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    logging.warning("%s received: saving a checkpoint and stopping (Ctrl-C again to stop at once).",
                    self.signal_name)
    self.requested = True

  def __exit__(self, *exc):
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    return False


class WorkdirLock:
  """An exclusive lock on `<workdir>/.lock` for one training run (process 0). The OS releases it when
  the process ends, however it ends, so a killed run never leaves a stale lock behind."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, ".lock")
    self._file = None

  def __enter__(self):
    if jax.process_index() != 0:
      return self
    self._file = open(self.path, "a+")
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      owner = self._file.read().strip() or "another process"
      self._file.close()
      raise WorkdirInUseError(
          f"{os.path.dirname(self.path)} is in use by another training run ({owner}). Wait for it to "
          "finish or stop it, or use another --workdir.") from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
    self._file.flush()
    return self

  def __exit__(self, *exc):
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
    return False


def _initialise_from(state: TrainState, other_workdir: str, image_shape) -> TrainState:
  """The generator parameters (and f_psi statistics) of another run's latest checkpoint; a fresh
  optimiser state and step. The other run must have the same generator architecture."""
  other_workdir = os.path.normpath(other_workdir)
  other = checkpointing.Checkpointer(os.path.join(other_workdir, "checkpoints"))
  if other.latest_step() is None:
    raise config_lib.ConfigError(f"config.train.init_checkpoint: no checkpoint in {other_workdir}/checkpoints")
  other_config = config_lib.load_run_config(other_workdir)
  restored = other.restore_latest(Trainer(other_config, image_shape).init_state(other_config.seed))
  other.close()
  if jax.tree.structure(restored.params) != jax.tree.structure(state.params):
    raise config_lib.ConfigError("config.train.init_checkpoint: that run's generator has another "
                                 "architecture than this config's")
  logging.info("Initialised the generator from %s (step %d).", other_workdir, int(restored.step))
  return state.replace(params=restored.params, batch_stats=restored.batch_stats,
                       # a copy: the step donates the state, and one buffer donated as two leaves
                       # is freed twice (a test worker died of SIGSEGV)
                       ema_params=jax.tree.map(jnp.copy, restored.params) if state.ema_params
                       else state.ema_params)


def batch_stats_images(config, train_data=None) -> tuple[np.ndarray, np.ndarray]:
  """(images, labels): the first eval.bn_refresh_examples training images, on which evaluation
  re-estimates batch-norm statistics (`Trainer.with_eval_batch_stats`); never test images."""
  n = config.eval.bn_refresh_examples
  data = train_data or input_pipeline.load_split(config.data, config.data.train_split, limit=n)
  return data.images[:n], data.labels[:n]


def _mean_metrics(pending: list[dict]) -> dict[str, float]:
  """Each metric's mean over the steps that logged it (gradient norms: the logging step only)."""
  stacked = jax.device_get(pending)
  keys = dict.fromkeys(k for m in stacked for k in m)
  return {k: float(np.mean([m[k] for m in stacked if k in m])) for k in keys}


def _prepare_workdir(workdir: str) -> None:
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise config_lib.ConfigError(f"--workdir {workdir!r} is a file, not a folder; choose another.")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise config_lib.ConfigError(f"--workdir {workdir!r} cannot be created ({e.strerror}).") from None
  if not (os.path.isdir(workdir) and os.access(workdir, os.R_OK | os.W_OK | os.X_OK)):
    raise config_lib.ConfigError(f"--workdir {workdir!r} is not a folder this user can read and write; "
                                 "fix its permissions or choose another.")


def _restore(ckpt: checkpointing.Checkpointer, state: TrainState, config, workdir: str) -> TrainState:
  """The latest checkpoint; on a layout mismatch, the error also names the config changes since the
  run's config.json was written (the likely cause)."""
  try:
    return ckpt.restore_latest(state)
  except checkpointing.CheckpointMismatchError as e:
    try:
      changes = config_lib.differences(config_lib.load_run_config(workdir), config)
    except config_lib.ConfigError:
      changes = []
    if not changes:
      raise
    raise checkpointing.CheckpointMismatchError(
        f"{e} Config changes since then: {'; '.join(changes[:6])}.") from None


def _check_progress(state: TrainState, step: int, limit: int, ckpt: checkpointing.Checkpointer,
                    workdir: str) -> None:
  """Stop a run whose last `limit` steps all skipped a non-finite update (`limit` 0: never)."""
  streak = int(state.skip_streak)
  if not limit or streak < limit:
    return
  ckpt.wait()
  good = [s for s in ckpt.manager.all_steps() if s <= step - streak]
  where = (f"the last good checkpoint, step {max(good)} in {workdir}/checkpoints, is intact" if good
           else "no checkpoint was written before the failures began")
  raise RunawayError(
      f"Stopped at step {step}: the last {streak} steps all skipped a non-finite update "
      f"(train.max_consecutive_skips = {limit}; {int(state.skipped)} skipped in all); {where}. Lower "
      "optim.lr, set optim.grad_clip or check the data, then resume (or restart from that checkpoint).")


class Trained(NamedTuple):
  """What a finished training run holds in memory: `evaluate.evaluate_run(..., trained=...)` scores it
  without restoring the checkpoint it just wrote or recomputing the final step's bits/dim."""
  trainer: Trainer
  eval_state: Any           # the final state with evaluation batch-norm statistics (None if no step ran)
  eval_data: Any
  metrics: dict[str, float]  # the final step's held-out metrics ({} if no step ran)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       progress_bar: bool = False) -> dict[str, float]:
  """Train from the latest checkpoint in `workdir` (or from scratch); returns the final eval metrics.
  Raises `Interrupted` after SIGTERM / Ctrl-C (a checkpoint of the current step is saved first) and
  `RunawayError` when train.max_consecutive_skips consecutive steps skipped their update.
  progress_bar: also show a tqdm bar (notebooks) with the latest train/eval bits/dim."""
  return train(config, workdir, progress_bar).metrics


def train(config: ml_collections.ConfigDict, workdir: str, progress_bar: bool = False) -> Trained:
  """`train_and_evaluate`, returning the trained model in memory as well (`Trained`)."""
  config_lib.validate(config)
  config_lib.check_devices(config, jax.device_count())
  _prepare_workdir(workdir)
  try:
    with WorkdirLock(workdir):
      return _train(config, workdir, progress_bar)
  except OSError as e:
    if e.errno != errno.ENOSPC:
      raise
    raise checkpointing.CheckpointWriteError(
        f"Cannot write to {workdir}: the disk is full (writing {e.filename or 'a file'}); its "
        "checkpoints are intact. Free some space, then re-run the same command to resume.") from None


def _train(config: ml_collections.ConfigDict, workdir: str, progress_bar: bool) -> Trained:
  eval_data = input_pipeline.load_split(config.data, config.data.eval_split)
  train_data = None if config.data.stream else input_pipeline.load_split(config.data,
                                                                         config.data.train_split)
  input_pipeline.check_labels(train_data or eval_data, config.model.num_classes)
  trainer = Trainer(config, eval_data.images.shape[1:])
  state = trainer.init_state(config.seed)
  counts = ", ".join(f"{k} {v:,}" for k, v in trainer.family.parameter_counts(state).items())
  logging.info("Model %s on %s %s: parameters %s; %d devices, %d processes.", trainer.family.label,
               config.data.dataset, trainer.image_shape, counts, jax.device_count(), jax.process_count())
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), config.ckpt.keep)
  if ckpt.latest_step() is None and config.train.init_checkpoint:
    state = _initialise_from(state, os.path.join(workdir, config.train.init_checkpoint),
                             trainer.image_shape)
  state = _restore(ckpt, state, config, workdir)
  reporting.save_config(config, workdir)  # after the restore: a refused config never overwrites it
  start = int(state.step)
  t = config.train
  limit = t.max_consecutive_skips
  if start:
    logging.info("Resumed from step %d (%d updates skipped so far).", start, int(state.skipped))
  logging.info("Non-finite updates are skipped; the run stops after %s consecutive skipped steps "
               "(train.max_consecutive_skips).", limit or "never")
  writer = reporting.Reporter(workdir, t.num_steps, start, progress_bar)
  if config.data.stream:
    batches = input_pipeline.stream_batches(
        config.data, config.data.train_split, t.batch_size // jax.process_count(),
        config.seed, start, jax.process_index(), jax.process_count(), config.data.shuffle_buffer)
  else:
    order = input_pipeline.BatchOrder(len(train_data), t.batch_size, config.seed,
                                      jax.process_index(), jax.process_count())
    batches = input_pipeline.train_batches(train_data, order, start)
  eval_kw = dict(batch_size=config.eval.batch_size, num_examples=config.eval.num_examples,
                 seed=config.seed)
  refresh = batch_stats_images(config, train_data)
  fixed = slice(0, min(config.eval.num_samples, len(eval_data)))
  fixed_real, fixed_labels = eval_data.images[fixed], eval_data.labels[fixed]
  last_eval: dict[str, float] = {}
  view, evaluated_at = None, -1
  pending: list[dict] = []

  def save(state, step):
    _check_progress(state, step, limit, ckpt, workdir)
    ckpt.save(state, {"skipped_updates": int(state.skipped), "skip_streak": int(state.skip_streak),
                      "max_consecutive_skips": limit})
    faults.at("checkpoint")

  step = start
  with PreemptionGuard() as guard:
    for step in range(start + 1, t.num_steps + 1):
      images, labels = next(batches)
      labels = trainer.global_batch(labels) if trainer.num_classes else None  # device copy only if used
      images = trainer.global_batch(images)
      state, metrics = trainer.step(state, images, labels, step=step - 1)
      faults.at("step")
      pending.append(metrics)
      if guard.requested:  # preemption: save this step and stop, no logging or evaluation
        save(state, step)
        break
      last = step == t.num_steps
      if step % t.log_every == 0 or last:
        if t.grad_norms:
          pending[-1] = {**pending[-1], **trainer.gradient_norms(state, images, labels)}
        scalars = _mean_metrics(pending)
        pending = []
        writer.scalars(step, scalars, prefix="train")
        writer.tick(step)  # after reading this step's metrics: steps/s and ETA over synchronised windows
        if scalars.get("skip_streak", 0) or not math.isfinite(scalars.get("generator_loss", 0.0)):
          logging.warning("Step %d: %d consecutive steps skipped a non-finite update (%d in all).",
                          step, int(state.skip_streak), int(state.skipped))
        _check_progress(state, step, limit, ckpt, workdir)
      images_due = step % t.image_every == 0 or last
      eval_due = (config.eval.every and step % config.eval.every == 0) or last
      if images_due or eval_due:
        view = trainer.with_eval_batch_stats(state, *refresh)
      if images_due:
        writer.images(step, {"samples": trainer.sample(view, config.eval.num_samples, seed=step),
                             "reconstructions": reporting.side_by_side(
                                 fixed_real, trainer.reconstruct(view, fixed_real,
                                                                 labels=fixed_labels))})
      if eval_due:
        last_eval, evaluated_at = trainer.evaluate(view, eval_data, **eval_kw), step
        last_eval.update(trainer.latent_use(view, eval_data, config.eval.num_latent_examples,
                                            seed=config.seed))
        writer.scalars(step, last_eval, prefix="eval")
      if step % config.ckpt.every == 0 or last or guard.requested:
        save(state, step)
      if guard.requested:
        break
  ckpt.close()
  writer.close()
  if guard.requested and step < t.num_steps:
    raise Interrupted(guard.signal_name, step, workdir)
  final = evaluated_at == t.num_steps  # else no step ran here (the run was complete), or a stop came first
  return Trained(trainer, view if final else None, eval_data, last_eval if final else {})
