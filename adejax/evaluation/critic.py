"""The independent Wasserstein critic of papers/004 (appendix I; Danihelka et al. 2017, Im et al. 2018):
a WGAN-GP critic trained from scratch to tell held-out images from a model's samples; its negative loss
estimates the Wasserstein-1 distance between the two, so higher means worse samples (or overfitting,
since the reals are held out). It needs no pretrained features, so it is the same for every model.

Protocol here: the held-out images and the samples are each split in two halves; the critic (the image
discriminator of `models.discriminators`, leaky ReLU 0.2) trains on the first halves with the two-sided
penalty (weight 10) and Adam (1e-4, 0.5, 0.9), and the reported estimate is E[D(real)] - E[D(sample)]
on the second halves, which the critic has not seen.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adejax import losses
from adejax.models import discriminators


def to_signed(images: np.ndarray) -> jax.Array:
  """uint8 (N, H, W, C) -> [-1, 1] at the pixel centres (`discriminators.to_signed` of the centres in [0, 1])."""
  return discriminators.to_signed(losses.pixel_centres(images))


@functools.lru_cache(maxsize=8)
def _trainer(width: float, gp_weight: float, lr: float, batch: int, steps: int):
  """(the critic, its optimiser, train, logit): train(params, opt_state, real, samples, rng) runs the `steps`
  steps of one compiled step that takes the data as arguments, so calls with the same shapes share one
  compilation. (A `lax.scan` over the steps ran 12x slower per step on XLA:CPU with the tests' flags.)"""
  disc = discriminators.Discriminator("conv", width)
  tx = optax.adam(lr, b1=0.5, b2=0.9)

  def loss_fn(p, x, y, k):
    logit = lambda v: disc.apply({"params": p}, v)
    return -(jnp.mean(logit(x)) - jnp.mean(logit(y))) + gp_weight * losses.gradient_penalty(logit, x, y, k)

  @jax.jit
  def step(p, o, real, samples, k):
    n = real.shape[0]
    k_r, k_f, k_gp = jax.random.split(k, 3)
    x = real[jax.random.randint(k_r, (batch,), 0, n)]
    y = samples[jax.random.randint(k_f, (batch,), 0, n)]
    updates, o = tx.update(jax.grad(loss_fn)(p, x, y, k_gp), o, p)
    return optax.apply_updates(p, updates), o

  def train(params, opt_state, real, samples, rng):
    for i in range(steps):
      params, opt_state = step(params, opt_state, real, samples, jax.random.fold_in(rng, i + 1))
    return params

  logit = jax.jit(lambda p, v: disc.apply({"params": p}, v))
  return disc, tx, train, logit


def wasserstein_estimate(real: np.ndarray, samples: np.ndarray, *, steps: int = 1000, batch: int = 64,
                         width: float = 0.25, gp_weight: float = 10.0, lr: float = 1e-4,
                         seed: int = 0) -> dict:
  """{"wasserstein_critic": held-out estimate, "wasserstein_critic_train": the same on the training
  halves}, from uint8 images (N, H, W, C) of both sets (the smaller set's size is used for both)."""
  n = min(len(real), len(samples)) // 2
  if n < 2:
    raise ValueError(f"The independent critic needs at least 4 images of each set, got {2 * n}.")
  real, samples = to_signed(real[:2 * n]), to_signed(samples[:2 * n])
  disc, tx, train, logit = _trainer(float(width), float(gp_weight), float(lr), min(batch, n), int(steps))
  rng = jax.random.PRNGKey(seed)
  params = discriminators.init_params(disc, rng, real.shape[1:])
  params = train(params, tx.init(params), real[:n], samples[:n], rng)

  mean = lambda x: float(np.mean(np.concatenate([np.asarray(logit(params, x[i:i + 256]))
                                                 for i in range(0, len(x), 256)])))
  return {"wasserstein_critic": mean(real[n:]) - mean(samples[n:]),
          "wasserstein_critic_train": mean(real[:n]) - mean(samples[:n])}
