"""The math of papers/002, one named function per equation, and the likelihood bookkeeping of SPEC.md §1.

Units: every likelihood term is in nats per example (summed over dimensions); `bits_per_dim` converts.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from adejax.models import gaussian

LOG_256 = math.log(256.0)


# ----------------------------------------------------------------------------- data and units
def dequantize(x: jax.Array, rng: jax.Array) -> jax.Array:
  """Uniform dequantization y = (x + u) / 256, u ~ U[0,1)^D, for integer images x in {0..255}^D."""
  u = jax.random.uniform(rng, x.shape, jnp.float32)
  return (x.astype(jnp.float32) + u) / 256.0


def bits_per_dim(nll_y: jax.Array, num_dims: int) -> jax.Array:
  """bpd of x from -log p(y) in nats per example (y = (x+u)/256): (nll + D log 256) / (D ln 2).

  -log p(y) must contain every log-det from y to the model's base space. A density uniform on
  [0,1]^D has nll = 0 and scores exactly 8.0.
  """
  return (nll_y + num_dims * LOG_256) / (num_dims * math.log(2.0))


# ----------------------------------------------------------------------------- likelihood (eq. 3, 4)
def gaussian_nll(features: jax.Array, mean: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """-log N(f | mu_theta(z), sigma^2 I) per example: the decoder term of eq. 3."""
  return -gaussian.log_prob(features, mean, jnp.broadcast_to(log_sigma, mean.shape))


def elbo(outputs: Mapping[str, jax.Array]) -> jax.Array:
  """Eq. 3: E_q[log p(f_psi(x) | z)] - KL(q(z | f_psi(x)) || p(z)), single-sample, per example."""
  return -gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"]) - outputs["kl"]


def coverage_loss(outputs: Mapping[str, jax.Array]):
  """Eq. 4: L_C = -ELBO(f_psi(x)) - log|det d f_psi / dx| per example (nats), an upper bound on -log p(y).

  `outputs` is what `ADEModel.__call__` returns; `logdet` includes the fixed preprocessing.
  Returns (loss per example, terms) with terms nll (decoder), kl and logdet, all per example.
  """
  nll = gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"])
  terms = {"nll": nll, "kl": outputs["kl"], "logdet": outputs["logdet"]}
  return nll + outputs["kl"] - outputs["logdet"], terms


def importance_weighted_bound(log_weights: jax.Array) -> jax.Array:
  """IWAE bound on log p: log (1/K) sum_k w_k for log-weights of shape (K, B); K=1 gives the ELBO."""
  k = log_weights.shape[0]
  return jax.scipy.special.logsumexp(log_weights, axis=0) - math.log(k)


def log_importance_weight(outputs: Mapping[str, jax.Array]) -> jax.Array:
  """log p(f|z) + log p(z) - log q(z|f) + log|det| for one posterior sample, per example."""
  return (-gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"])
          + outputs["log_p"] - outputs["log_q"] + outputs["logdet"])


# ----------------------------------------------------------------------------- adversarial (eq. 5, 11-13)
def quality_loss(fake_logits: jax.Array) -> jax.Array:
  """Eq. 5: L_Q = -E_z[log D(x~) - log(1 - D(x~))] = -E_z[logit D(x~)]."""
  return -jnp.mean(fake_logits)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Binary cross-entropy of real (label 1) against generated (label 0) images, from logits."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def gradient_penalty(logit_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     rng: jax.Array) -> jax.Array:
  """Eq. 11-13: E[(||grad_x^ D(x^)||_2 - 1)^2] at x^ = e x + (1-e) x~, e ~ U[0,1] per example.

  `logit_fn` maps a batch to per-example logits with no interaction between examples, so the
  gradient of their sum gives each example's own input gradient.
  """
  e = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  x_hat = e * real + (1.0 - e) * fake
  grads = jax.grad(lambda x: jnp.sum(logit_fn(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))
