"""Estimators of the marginal KL[q(z) || p(z)] between the aggregate posterior q(z) = (1/N) sum_n
q(z | x_n) and the prior (papers/004 section 4, appendix A), for diagonal-Gaussian posteriors.

- `monte_carlo`: Algorithm 1. log q(z_i) by log-sum-exp over all N posteriors (minus log N), at
  z_i ~ q(z | x_i); the most accurate of the three (its bias is only the finite N).
- `density_ratio`: Algorithm 2. A classifier C(z) of q-samples (1) against p-samples (0), trained with
  the logistic loss; KL ~ mean over held-out q-samples of logit C(z) = log C / (1 - C).
- `density_model`: a diagonal Gaussian mixture fitted to q-samples by EM; KL ~ mean of
  log q_mix(z) - log p(z) over held-out q-samples.
- `average_kl` (the ELBO's E_x KL[q(z|x) || p(z)]) and `lower_bound`: eq. 5, KL[q(z)||p(z)] =
  E_x KL[q(z|x)||p(z)] - I(x; z) >= average KL - log N.
All in nats. `log_prior` maps (M, d) latents to log p(z) per row.
"""
from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from adejax.models import gaussian

LOG_2PI = gaussian.LOG_2PI


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
  return gaussian.log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))


def log_aggregate_posterior(z: jax.Array, means: jax.Array, log_stds: jax.Array,
                            chunk: int = 512) -> jax.Array:
  """log (1/N) sum_n N(z_i; means_n, exp(log_stds_n)^2) for each row z_i of z (M, d): a running
  log-sum-exp over chunks of the N posteriors (memory M x chunk x d)."""
  n, d = means.shape
  pad = -n % chunk
  means = jnp.concatenate([means, jnp.zeros((pad, d), means.dtype)]).reshape(-1, chunk, d)
  log_stds = jnp.concatenate([log_stds, jnp.zeros((pad, d), log_stds.dtype)]).reshape(-1, chunk, d)
  valid = (jnp.arange(n + pad) < n).reshape(-1, chunk)

  def body(acc, part):
    mu, ls, ok = part
    t = (z[:, None, :] - mu[None]) * jnp.exp(-ls[None])
    log_n = jnp.sum(-0.5 * t * t - ls[None], -1) - 0.5 * d * LOG_2PI  # (M, chunk)
    log_n = jnp.where(ok[None], log_n, -jnp.inf)
    return jnp.logaddexp(acc, jax.scipy.special.logsumexp(log_n, axis=1)), None

  acc, _ = jax.lax.scan(body, jnp.full(z.shape[:1], -jnp.inf, z.dtype), (means, log_stds, valid))
  return acc - math.log(n)


def sample_posteriors(rng, means, log_stds, num: int, return_index: bool = False):
  """(num, d) samples z_i ~ q(z | x_i) for posteriors x_i drawn uniformly (with replacement); with
  `return_index` also the indices i."""
  k_idx, k_eps = jax.random.split(rng)
  idx = jax.random.randint(k_idx, (num,), 0, means.shape[0])
  z = means[idx] + jnp.exp(log_stds[idx]) * jax.random.normal(k_eps, (num, means.shape[1]))
  return (z, idx) if return_index else z


def monte_carlo(rng, means, log_stds, log_prior: Callable = standard_normal_log_prob,
                num_samples: int = 1000) -> float:
  """Algorithm 1 of papers/004."""
  z = sample_posteriors(rng, means, log_stds, num_samples)
  return float(jnp.mean(jax.jit(log_aggregate_posterior)(z, means, log_stds) - log_prior(z)))


def average_kl(means, log_stds) -> float:
  """E_x KL[q(z|x) || N(0, I)] (the ELBO's KL term for a standard-normal prior)."""
  zeros = jnp.zeros_like(means)
  return float(jnp.mean(gaussian.kl(means, log_stds, zeros, zeros)))


def lower_bound(avg_kl: float, n: int) -> float:
  """Eq. 5 with I(x; z) <= log N: the marginal KL is at least the average KL minus log N."""
  return avg_kl - math.log(n)


class _Classifier(nn.Module):
  hidden: int = 256
  layers: int = 2

  @nn.compact
  def __call__(self, z):
    h = z
    for _ in range(self.layers):
      h = nn.leaky_relu(nn.Dense(self.hidden)(h), 0.2)
    return nn.Dense(1)(h)[:, 0]


def density_ratio(rng, q_samples: jax.Array, p_samples: jax.Array, *, hidden: int = 256,
                  layers: int = 2, steps: int = 2000, batch: int = 256, lr: float = 1e-3) -> float:
  """Algorithm 2 of papers/004: logistic classifier q (1) vs p (0) with leaky-ReLU 0.2 MLP; the mean
  logit on the held-out fifth of the q-samples."""
  n_train = 4 * len(q_samples) // 5
  q_train, q_test, p_train = q_samples[:n_train], q_samples[n_train:], p_samples[:n_train]
  net = _Classifier(hidden, layers)
  k_init, k_loop = jax.random.split(rng)
  params = net.init(k_init, q_train[:2])
  tx = optax.adam(lr, b1=0.9, b2=0.9)  # appendix A.3: beta1 = beta2 = 0.9
  opt = tx.init(params)

  def loss(p, zq, zp):
    return jnp.mean(jax.nn.softplus(-net.apply(p, zq))) + jnp.mean(jax.nn.softplus(net.apply(p, zp)))

  @jax.jit
  def step(carry, key):
    p, o = carry
    kq, kp = jax.random.split(key)
    zq = q_train[jax.random.randint(kq, (batch,), 0, len(q_train))]
    zp = p_train[jax.random.randint(kp, (batch,), 0, len(p_train))]
    g = jax.grad(loss)(p, zq, zp)
    u, o = tx.update(g, o, p)
    return (optax.apply_updates(p, u), o), None

  (params, _), _ = jax.lax.scan(step, (params, opt), jax.random.split(k_loop, steps))
  return float(jnp.mean(net.apply(params, q_test)))


def fit_gaussian_mixture(rng, x: jax.Array, components: int = 10, iterations: int = 100):
  """EM for a diagonal Gaussian mixture: (log_weights (K,), means (K, d), log_stds (K, d))."""
  k = components
  means = x[jax.random.choice(rng, len(x), (k,), replace=False)]
  log_stds = jnp.broadcast_to(jnp.log(jnp.std(x, 0) + 1e-6), means.shape)
  log_w = jnp.full((k,), -math.log(k))

  def em(params, _):
    log_w, means, log_stds = params
    comp = jax.vmap(lambda m, s: gaussian.log_prob(x, jnp.broadcast_to(m, x.shape),
                                                   jnp.broadcast_to(s, x.shape)))(means, log_stds)
    resp = jax.nn.softmax(comp + log_w[:, None], axis=0)  # (K, N)
    nk = jnp.sum(resp, 1) + 1e-8
    means = resp @ x / nk[:, None]
    var = resp @ (x * x) / nk[:, None] - means ** 2
    return (jnp.log(nk / len(x)), means, 0.5 * jnp.log(jnp.maximum(var, 1e-6))), None

  params, _ = jax.lax.scan(em, (log_w, means, log_stds), None, length=iterations)
  return params


def mixture_log_prob(z, log_w, means, log_stds):
  comp = jax.vmap(lambda m, s: gaussian.log_prob(z, jnp.broadcast_to(m, z.shape),
                                                 jnp.broadcast_to(s, z.shape)))(means, log_stds)
  return jax.scipy.special.logsumexp(comp + log_w[:, None], axis=0)


def density_model(rng, q_samples: jax.Array, log_prior: Callable = standard_normal_log_prob,
                  components: int = 10) -> float:
  """A diagonal Gaussian mixture fitted to four fifths of the q-samples; KL on the rest."""
  n_train = 4 * len(q_samples) // 5
  params = jax.jit(fit_gaussian_mixture, static_argnums=2)(rng, q_samples[:n_train], components)
  test = q_samples[n_train:]
  return float(jnp.mean(mixture_log_prob(test, *params) - log_prior(test)))


def estimate_all(rng, means, log_stds, log_prior: Callable = standard_normal_log_prob,
                 prior_sample: Callable | None = None, *, num_samples: int = 10_000,
                 classifier_steps: int = 2000) -> dict[str, float]:
  """Every estimator on one set of posteriors (N, d), with the average KL and eq. 5's lower bound.
  Without `prior_sample(rng, z_like)` the prior is N(0, I) and the average KL is analytic; with it,
  the average KL is the Monte Carlo mean of log q(z|x) - log p(z)."""
  k_mc, k_q, k_p, k_ratio, k_mix = jax.random.split(rng, 5)
  q, idx = sample_posteriors(k_q, means, log_stds, num_samples, return_index=True)
  if prior_sample is None:
    p = jax.random.normal(k_p, q.shape)
    avg = average_kl(means, log_stds)
  else:
    p = prior_sample(k_p, q)
    avg = float(jnp.mean(gaussian.log_prob(q, means[idx], log_stds[idx]) - log_prior(q)))
  return {"marginal_kl_monte_carlo": monte_carlo(k_mc, means, log_stds, log_prior,
                                                 min(num_samples, 2000)),
          "marginal_kl_density_ratio": density_ratio(k_ratio, q, p, steps=classifier_steps),
          "marginal_kl_density_model": density_model(k_mix, q, log_prior),
          "average_kl": avg, "marginal_kl_lower_bound": lower_bound(avg, int(means.shape[0])),
          "num_posteriors": int(means.shape[0]), "latent_dim": int(means.shape[1])}
