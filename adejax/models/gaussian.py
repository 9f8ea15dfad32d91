"""Diagonal Gaussian densities used by every latent-variable model (summed over all but the batch axis)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

LOG_2PI = float(jnp.log(2.0 * jnp.pi))


def _sum_per_example(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def log_prob_elements(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """log N(x | mean, exp(log_std)^2) per element."""
  z = (x - mean) * jnp.exp(-log_std)
  return -0.5 * jnp.square(z) - log_std - 0.5 * LOG_2PI


def log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """log N(x | mean, exp(log_std)^2), summed per example."""
  return _sum_per_example(log_prob_elements(x, mean, log_std))


def kl_elements(mean_q, log_std_q, mean_p, log_std_p) -> jax.Array:
  """Analytic KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) per element."""
  var_ratio = jnp.exp(2.0 * (log_std_q - log_std_p))
  t = jnp.square((mean_q - mean_p) * jnp.exp(-log_std_p))
  return 0.5 * (var_ratio + t - 1.0) - (log_std_q - log_std_p)


def kl(mean_q, log_std_q, mean_p, log_std_p) -> jax.Array:
  """Analytic KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)), summed per example."""
  return _sum_per_example(kl_elements(mean_q, log_std_q, mean_p, log_std_p))
