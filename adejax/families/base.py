"""What a model family gives the training system, and the parts every family's schedule shares.

A family owns its modules, its losses, its parameter groups (each updated by its own optimiser) and its
update schedule. `train.py` builds the state from `Family.init`, gives each group's optimiser its state,
jit-compiles one step that calls `Family.train_step`, and knows nothing else of the family. Every
family's `model` keeps one interface (`adejax/models/contract.py`: the likelihood pass's terms,
`generate`, `reconstruct`, `interpolate`), so held-out bounds, samples, reconstructions and interpolations
are evaluated one way for all.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

TREES = ("params", "disc_params")


class ConfigError(ValueError):
  """A user error in the configuration: printed as one line, no stack trace (`adejax.cli`)."""


def check(cond: bool, key: str, msg: str) -> None:
  """Raise ConfigError("config.<key>: <msg>") unless `cond`: the one form of every validation message."""
  if not cond:
    raise ConfigError(f"config.{key}: {msg}")


@dataclasses.dataclass(frozen=True)
class Group:
  """A parameter group: the top-level `keys` of the state's `params` or `disc_params` (None: the whole
  tree), updated by its own optimiser `tx` whose state lives in `state.opt_state[name]`."""
  tree: str
  tx: optax.GradientTransformation
  keys: Optional[tuple[str, ...]] = None

  def __post_init__(self):
    if self.tree not in TREES:
      raise ValueError(f"Group.tree must be one of {TREES}, got {self.tree!r}")

  def select(self, tree: dict) -> Any:
    return tree if self.keys is None else {k: tree[k] for k in self.keys}


def make_optimizer(o, lr: Optional[float] = None, b1: Optional[float] = None,
                   b2: Optional[float] = None) -> optax.GradientTransformation:
  """The optimiser of one group from the config's `optim` section (lr, b1, b2 overridable per group):
  optim.name (adamax | adam), the step-wise halving schedule optim.lr_halve_every, a linear warm-up
  over optim.warmup_steps, optim.grad_clip. Schedules count the group's own updates."""
  lr = o.lr if lr is None else lr
  b1 = o.b1 if b1 is None else b1
  b2 = o.b2 if b2 is None else b2
  if o.lr_halve_every:
    lr = optax.exponential_decay(lr, o.lr_halve_every, 0.5, staircase=True)
  if o.get("warmup_steps", 0):  # (configs saved before the field existed have none)
    decay = lr
    lr = optax.join_schedules([optax.linear_schedule(0.0, lr if not callable(lr) else lr(0), o.warmup_steps),
                               decay if callable(decay) else optax.constant_schedule(decay)], [o.warmup_steps])
  opt = {"adamax": optax.adamax, "adam": optax.adam}[o.name](lr, b1=b1, b2=b2)
  return optax.chain(optax.clip_by_global_norm(o.grad_clip), opt) if o.grad_clip > 0 else opt


def discriminator_optim(o) -> tuple[float, float, float]:
  """(lr, b1, b2) of the discriminator's optimiser: its own settings where given, else the generator's."""
  pick = lambda own, gen: gen if own is None else own
  return pick(o.disc_lr, o.lr), pick(o.disc_b1, o.b1), pick(o.disc_b2, o.b2)


def all_finite(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def apply_if_finite(tx, params, opt_state, grads, loss):
  """One optimiser update, or none at all when the loss or a gradient is not finite."""
  finite = jnp.isfinite(loss) & all_finite(grads)
  updates, new_opt_state = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  return keep(new_params, params), keep(new_opt_state, opt_state), finite


def group_params(state, group: Group):
  return group.select(getattr(state, group.tree))


def update_group(state, groups: dict[str, Group], name: str, grads, loss):
  """`state` with group `name` updated by `grads` (of `group_params`): the one finite-update guard.
  A non-finite loss or gradient leaves the group and its optimiser state untouched and counts one
  skipped update. Returns (state, ok)."""
  group = groups[name]
  params, opt_state, ok = apply_if_finite(group.tx, group_params(state, group), state.opt_state[name],
                                          grads, loss)
  tree = params if group.keys is None else {**getattr(state, group.tree), **params}
  return state.replace(**{group.tree: tree}, opt_state={**state.opt_state, name: opt_state},
                       skipped=state.skipped + (1 - ok.astype(jnp.int32))), ok


def update_groups(state, groups: dict[str, Group], names, loss_fn):
  """One joint update of the groups `names` (all in one tree, each with `keys`): the gradient of
  loss_fn(tree with their current parameters) -> (loss, aux) with respect to their parameters only (the
  rest of the tree frozen), each group stepped by its own optimiser through `update_group`.
  Returns (state, loss, aux, ok), ok False when any group's update was skipped."""
  tree = getattr(state, groups[names[0]].tree)
  sub = {k: v for n in names for k, v in group_params(state, groups[n]).items()}
  (loss, aux), grads = jax.value_and_grad(lambda p: loss_fn({**tree, **p}), has_aux=True)(sub)
  ok = jnp.array(True)
  for n in names:
    state, ok_n = update_group(state, groups, n, {k: grads[k] for k in groups[n].keys}, loss)
    ok = ok & ok_n
  return state, loss, aux, ok


class Family:
  """What a model family gives the rest of adejax; nothing outside `families/` names a family.

  Two halves. Static methods answer questions about a config without building anything: the family's
  config section (`config_section`) and its validation (`validate`), its test-size and CPU-budget
  shrinks (`shrink_tiny`, `shrink_small`), whether its held-out bits/dim are a bound on its own
  -log p(x) (`has_likelihood`), whether it has an inference network for papers/004's marginal-KL
  estimators (`has_latent_posterior`), the results tables' mode column (`results_mode`). `config_lib`
  assembles the schema and its validation from them, `adejax.experiment` the scales, the sweep its
  tables, `estimate_kl` its refusal.

  An instance is built by `families.make(config, image_shape)` for `train.Trainer`. Subclasses set
  `model` (and their other modules) and `groups` in `__init__(config, image_shape)` and implement
  `init` and `train_step`. Optional capabilities, each with a default that says it is not supported:
  `gradient_norms` (instruments), `batch_stats_of` (batch norm), `latent_diagnostics` (latent-use
  metrics; `has_encoder`), `figures` (extra evaluation figures), `step_parts` (the benchmark's
  breakdown). Sampling, reconstruction, interpolation and the held-out bound are methods of `model`, a
  `models.contract.GenerativeModel` (the Trainer refuses a model without them; a method the family
  cannot support raises NotImplementedError when it is called).
  """
  model: nn.Module
  groups: dict[str, Group]
  sample_temperature: float = 1.0  # the temperature `Trainer.sample` uses unless told otherwise
  label: str = ""                  # what the logs call the model, e.g. "ade/av-ade"

  def init(self, rng: jax.Array) -> tuple[Any, Any, Any]:
    """(params, batch_stats, disc_params) of a fresh model; disc_params is {} without adversaries."""
    raise NotImplementedError

  num_phases: int = 1
  # Phases whose step rewrites parameters outside the optimiser (a data-dependent initialisation): the
  # EMA restarts there from the step's new parameters, rather than averaging in the values they replaced.
  ema_restart_phases: tuple = ()

  def phase(self, step: int) -> int:
    """The phase (0 .. num_phases - 1) of the step with this number, on the host. Each phase is its
    own compiled step: XLA's CPU backend ran a phase chosen by `lax.cond` 16x slower than the same
    computation unconditioned (measured: 23.5 s against 1.4 s a step)."""
    return 0

  def train_step(self, state, images: jax.Array, labels, rng: jax.Array, constrain, phase: int):
    """The family's update schedule for one training step on a uint8 batch in `phase` (static): which
    groups update in which sub-step (with `update_group`). Returns (state, metrics); the trainer then
    advances the step, the EMA and the skip counter's metric."""
    raise NotImplementedError

  def gradient_norms(self, state, images: jax.Array, labels, rng: jax.Array, constrain) -> dict:
    """Extra instruments computed at logging steps only (e.g. gradient norms per loss term)."""
    return {}

  def batch_stats_of(self, params, batch_stats, images: jax.Array, labels, rng: jax.Array):
    """Batch-norm statistics of one batch at `params`, as a training step would compute them (for
    `Trainer.with_eval_batch_stats`). Families without batch norm keep theirs."""
    return batch_stats

  modes: tuple = ()  # the values `config.mode` may take in this family (those that select a model)
  supports: frozenset = frozenset()  # generic train options it implements: "remat", "freeze"

  @staticmethod
  def config_section():
    """(name, ConfigDict of its defaults, each with a comment) of the family's own config section, or
    None. `config_lib.base_config` adds it to every config (the schema is the same for all)."""
    return None

  @staticmethod
  def shared_settings(config) -> None:
    """Add the family's settings that live beside the shared fields of `base_config` (top-level keys
    and fields of its `model`, `loss` and other shared sections), each with its comment, in place. Only
    the first family has them (its published key paths, e.g. `mode`); a new family keeps its settings
    in its own section (`config_section`). Default: none."""

  @staticmethod
  def validate(config) -> None:
    """Raise ConfigError (`check`) for any invalid value of the family's settings in `config`;
    `config_lib.validate` calls it after checking the shared sections."""

  @staticmethod
  def shrink_tiny(config, num_steps: int) -> None:
    """Shrink the family's settings to test size in place (`config_lib.make_tiny` calls every family's,
    whatever the config's family, so that a tiny config stays tiny when its family is switched)."""

  @staticmethod
  def shrink_small(config, full_steps: int) -> None:
    """The family's part of the "small" and "medium" scales (2-core CPU budgets, `experiment.apply_scale`),
    in place, after the shared sections were shrunk (`train.num_steps` is the small budget or the medium
    scale's schedule length, to which step counts of the family's phases are scaled; `full_steps`
    the config's own). Default: every network at a quarter of its width."""
    config.model.width *= 0.25
    config.model.disc_width *= 0.25

  @staticmethod
  def has_latent_posterior(config) -> bool:
    """Whether the model has an inference network q(z | x) whose aggregate posterior papers/004's
    estimators (`adejax.estimate_kl`) can be run on (`model.latent_posterior`)."""
    return False

  @staticmethod
  def has_likelihood(config) -> bool:
    """Whether a config's held-out bits/dim are a bound on its own -log p(x) (read from the config
    alone, without building the family: the sweep's results tables ask it of every member)."""
    return True

  @staticmethod
  def results_mode(config) -> str:
    """The `mode` column of the sweeps' results tables for a config of this family."""
    return str(config.model.family)

  has_encoder: bool = False  # an inference network q(z | x) trained with the model (latent metrics)
  standard_normal_prior: bool = True  # its latent prior is N(0, I): estimate_kl's average KL is analytic

  def latent_diagnostics(self, params, batch_stats, y: jax.Array, rng: jax.Array, labels) -> dict:
    """How the model uses its latents on images y in [0, 1] (only when `has_encoder`): `kl`, (B, L)
    nats of KL(q || p) per example and latent level, and `means`, L arrays (B, d_l) of posterior means
    (`evaluation.latents`). A model with its own `latent_diagnostics` method (per-level KLs) is asked
    for it; otherwise its one level is `latent_posterior`'s mean and the KL its likelihood pass returns."""
    if not self.has_encoder:
      raise NotImplementedError(f"{self.label or type(self).__name__} has no encoder: no latent metrics.")
    variables = {"params": params, "batch_stats": batch_stats}
    if hasattr(self.model, "latent_diagnostics"):
      return self.model.apply(variables, y, rng, labels=labels, method="latent_diagnostics")
    mean, _ = self.model.apply(variables, y, labels=labels, method="latent_posterior")
    kl = self.model.apply(variables, y, rng, train=False, labels=labels)["kl"]
    return {"kl": kl[:, None], "means": [mean]}

  def figures(self, params, batch_stats, rng: jax.Array, n: int) -> dict:
    """The family's own figures for `adejax.evaluate`: {name: (n, K, H, W, C) images in [0, 1]},
    written as eval/<name>.png with K columns."""
    return {}

  def step_parts(self, state, images: jax.Array, labels, rng: jax.Array) -> dict:
    """The benchmark's breakdown (`adejax.benchmark --breakdown`): {name: (fn, args)}, disjoint parts
    of a training step, each a function whose backward pass `jax.grad(sum(fn(*args)))` is timed."""
    raise NotImplementedError(f"{self.label or type(self).__name__} does not list the parts of its step")

  def parameter_counts(self, state) -> dict[str, int]:
    """Parameters per group, for the log line at the start of training."""
    return {name: sum(int(x.size) for x in jax.tree.leaves(group_params(state, g)))
            for name, g in self.groups.items()}
