"""What an experiment is: named configs (`Member`), the scales they come in, and the loading of an
experiment file. Experiment files (experiments/*.py) define `get_experiment(scale) -> list[Member]`;
`adejax.sweep` runs them.

`apply_scale` shrinks a paper config to a budget ("small": a 2-core CPU on the offline
Fashion-MNIST in minutes; "medium": the same networks trained for thousands of steps, the budget each
experiment sets from its learning curves; "tiny": seconds, for tests), keeping its structure;
`generator_param_count` counts a config's generator parameters from shapes only (the results'
`generator_params` column, and the width matching of experiments/ablation.py).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import jax
import ml_collections

from adejax import config_lib, families, input_pipeline, reporting

SCALES = ("full", "medium", "small", "tiny")
# "medium": the phase switch points (f_psi's start, the adversarial start, papers/003's phases) are those
# of a run of this many steps, whatever budget the experiment then trains for, so that a medium run
# evaluated every 1000 steps is one learning curve of the same model (`adejax.sweep --curve_every`).
MEDIUM_SCHEDULE_STEPS = 2000


@dataclasses.dataclass
class Member:
  name: str
  config: ml_collections.ConfigDict
  paper: dict = dataclasses.field(default_factory=dict)  # e.g. {"bpd": 3.9, "is": 7.1, "fid": 28.0}
  bpd_from: str = ""  # take this row's bits/dim from another member (a GAN's from its gan_bpd run)
  group: str = ""     # members of one group (e.g. seeds of one model) are also summarised as mean ± std


def generator_param_count(config) -> int:
  """Generator (VAE + f_psi + sigma) parameters, computed from shapes only."""
  shape = (config.data.image_size, config.data.image_size, input_pipeline.channels(config.data.dataset))
  model = families.make(config, shape).model
  y = jax.ShapeDtypeStruct((1,) + shape, "float32")
  labels = jax.numpy.zeros((1,), "int32") if config.model.num_classes else None
  params = jax.eval_shape(lambda y: model.init(jax.random.key(0), y, jax.random.key(1), labels=labels),
                          y)["params"]
  return reporting.count_params(params)


def apply_scale(config, scale: str) -> ml_collections.ConfigDict:
  """Shrink a paper config to a CPU budget, keeping its structure (mode, f_psi shape, refinements)."""
  if scale not in SCALES:
    raise config_lib.ConfigError(f"--scale must be one of {SCALES}, got {scale!r}")
  if scale == "full":
    return config
  c = config
  full_steps = c.train.num_steps
  c.data.dataset, c.data.idx_dir, c.data.image_size, c.data.resize = "fashion_mnist_idx", "", 28, "pad"
  c.data.stream, c.data.train_split, c.data.eval_split = False, "train", "test"
  c.train.batch_size, c.train.num_steps = 64, 600
  c.train.log_every, c.train.image_every = 50, 300
  c.eval.every, c.eval.num_examples, c.eval.num_fid_samples = 600, 2000, 2000
  c.ckpt.every = 200
  if scale == "medium":
    c.train.num_steps = MEDIUM_SCHEDULE_STEPS  # the experiment sets its budget after the shrink below
    c.train.image_every = c.eval.every = 1000
    c.ckpt.every = 500
  m = c.eval.marginal_kl  # papers/004's estimators at a 2-core budget (minutes, not GPU-hours)
  m.num_posteriors, m.num_samples, m.monte_carlo_samples = 10_000, 10_000, 2000
  m.classifier_layers, m.classifier_hidden, m.classifier_lr, m.classifier_steps = 2, 256, 1e-3, 2000
  m.maf_hidden, m.maf_lr, m.maf_steps = 256, 1e-3, 2000
  families.family_class(c).shrink_small(c, full_steps)  # the networks (their widths, f_psi, phases)
  if scale == "tiny":
    config_lib.make_tiny(c, num_steps=2)
    c.data.image_size, c.data.resize = 16, "resize"
    c.loss.adv_start_step = min(c.loss.adv_start_step, 1)
    c.loss.flow_start_step = 0
  return c


def load_module(path: str):
  """An experiment file as a module (its `get_experiment`, and optionally `COMPARISONS`: pairs of
  member groups whose metrics the report compares with Welch's t-test, `results.welch_table`)."""
  if not os.path.exists(path):
    raise config_lib.ConfigError(f"--experiment: no such file {path!r}")
  config_lib.make_configs_importable(path)  # experiments build on configs/
  spec = importlib.util.spec_from_file_location("adejax_experiment", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_experiment(path: str, scale: str, module=None) -> list[Member]:
  """The members of an experiment file at `scale`, validated (`module`: the file, if loaded already)."""
  members = (module or load_module(path)).get_experiment(scale)
  for m in members:
    config_lib.validate(m.config)
  return members
