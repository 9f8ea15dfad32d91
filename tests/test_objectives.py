"""The optimiser schedules and the discriminator's objective against hand computations: a reference
Adamax written out in numpy with warm-up, step-wise halving and global-norm clipping; a linear
discriminator, whose input gradient is its weight vector, so the penalty has a closed form."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from adejax import losses
from adejax.families import base


def reference_adamax(grads, lr_at, b1=0.9, b2=0.999, eps=1e-8, clip=0.0):
  """Updates of Adamax (Kingma & Ba 2015, alg. 2, as optax: eps inside the max) for a gradient sequence."""
  m = np.zeros_like(grads[0])
  u = np.zeros_like(grads[0])
  out = []
  for t, g in enumerate(grads):
    if clip:
      g = g * min(1.0, clip / np.linalg.norm(g))
    m = b1 * m + (1 - b1) * g
    u = np.maximum(b2 * u, np.abs(g) + eps)
    out.append(-lr_at(t) * m / (1 - b1 ** (t + 1)) / u)
  return np.array(out)


def optim(**kw):
  o = ml_collections.ConfigDict({"name": "adamax", "lr": 0.1, "b1": 0.9, "b2": 0.999, "lr_halve_every": 0,
                                 "warmup_steps": 0, "grad_clip": 0.0})
  o.update(kw)
  return o


def run(tx, grads):
  params = jnp.zeros(grads.shape[1:])
  state = tx.init(params)
  out = []
  for g in grads:
    updates, state = tx.update(jnp.asarray(g), state, params)
    out.append(np.asarray(updates))
  return np.array(out)


@pytest.mark.parametrize("warmup,halve,clip", [(0, 0, 0.0), (4, 0, 0.0), (0, 3, 0.0), (4, 3, 0.0),
                                               (4, 3, 0.5), (0, 0, 0.5)])
def test_schedules_and_clipping_match_a_hand_written_adamax(warmup, halve, clip):
  """Warm-up: linear from 0 over `warmup_steps` updates; then the rate halves every `lr_halve_every`
  updates counted from the end of the warm-up; `grad_clip` rescales the whole gradient to that norm."""
  grads = np.random.default_rng(0).normal(size=(14, 3)) * np.array([1.0, 3.0, 0.2])

  def lr_at(t):
    if t < warmup:
      return 0.1 * t / warmup
    return 0.1 * 0.5 ** ((t - warmup) // halve) if halve else 0.1

  got = run(base.make_optimizer(optim(warmup_steps=warmup, lr_halve_every=halve, grad_clip=clip)), grads)
  np.testing.assert_allclose(got, reference_adamax(grads, lr_at, clip=clip), rtol=1e-5, atol=1e-7)


def test_each_group_counts_its_own_updates():
  """Two groups (generator, discriminator) with the same schedule: a group updated twice as often
  reaches each halving in half the steps (the schedule counts the group's updates, not train steps)."""
  tx = base.make_optimizer(optim(lr_halve_every=2))
  grads = np.ones((6, 1))
  once = run(tx, grads[:3])
  twice = run(tx, grads)  # the same group updated 6 times = 3 train steps at disc_steps = 2
  lr = lambda upd: -upd[:, 0]  # constant gradient: Adamax's update is exactly -lr
  np.testing.assert_allclose(lr(once), [0.1, 0.1, 0.05], rtol=1e-6)
  np.testing.assert_allclose(lr(twice), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)


class LinearDisc(nn.Module):
  """D(x) = w . x + b (+ c[label]): its input gradient is w everywhere."""
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels=None):
    w = self.param("w", lambda k, s: jnp.linspace(-0.3, 0.5, s[0]).reshape(s), (int(np.prod(x.shape[1:])),))
    b = self.param("b", lambda k, s: jnp.full(s, 0.1), ())
    logit = x.reshape(x.shape[0], -1) @ w + b
    if self.num_classes:
      c = self.param("c", lambda k, s: jnp.arange(s[0], dtype=jnp.float32) - 1.0, (self.num_classes,))
      logit = logit + c[labels]
    return logit


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("form", ["two-sided", "one-sided", "r1"])
def test_discriminator_objective_of_a_linear_discriminator(form, conditional):
  rng = np.random.default_rng(1)
  real = jnp.asarray(rng.uniform(-1, 1, (6, 2, 2, 1)), jnp.float32)
  fake = jnp.asarray(rng.uniform(-1, 1, (6, 2, 2, 1)), jnp.float32)
  labels = jnp.array([0, 1, 2, 0, 1, 2]) if conditional else None
  disc = LinearDisc(3 if conditional else 0)
  params = disc.init(jax.random.key(0), real, labels)["params"]
  loss, metrics = losses.discriminator_objective(params, real, fake, jax.random.key(2), disc=disc,
                                                 gp_weight=10.0, gp_form=form, labels=labels)
  w = np.linspace(-0.3, 0.5, 4)
  offset = (np.array([0, 1, 2, 0, 1, 2]) - 1.0) if conditional else 0.0
  real_logits = np.asarray(real).reshape(6, -1) @ w + 0.1 + offset
  fake_logits = np.asarray(fake).reshape(6, -1) @ w + 0.1 + offset
  ce = np.mean(np.log1p(np.exp(-real_logits))) + np.mean(np.log1p(np.exp(fake_logits)))
  norm = np.linalg.norm(w)  # ~0.62: the two-sided and one-sided forms differ
  penalty = {"two-sided": (norm - 1) ** 2, "one-sided": max(norm - 1, 0.0) ** 2, "r1": norm ** 2}[form]
  np.testing.assert_allclose(metrics["disc_loss"], ce, rtol=1e-5)
  np.testing.assert_allclose(metrics["gradient_penalty"], penalty, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss, ce + 10.0 * penalty, rtol=1e-5)
  np.testing.assert_allclose(metrics["real_logit"], real_logits.mean(), rtol=1e-5, atol=1e-6)
  accuracy = 0.5 * (np.mean(real_logits > 0) + np.mean(fake_logits < 0))
  np.testing.assert_allclose(metrics["disc_accuracy"], accuracy)


def test_discriminator_accuracy_known_answers():
  acc = lambda r, f: float(losses.discriminator_accuracy(jnp.array(r, jnp.float32), jnp.array(f, jnp.float32)))
  assert acc([1, 2], [-1, -3]) == 1.0        # all right
  assert acc([-1, -2], [1, 3]) == 0.0        # all wrong
  assert acc([1, -2], [1, -3]) == 0.5        # half of each
  assert acc([0.0, 1.0], [0.0, -1.0]) == 0.5  # a logit of exactly 0 counts as neither real nor fake
