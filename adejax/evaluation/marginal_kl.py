"""Estimators of the marginal KL[q(z) || p(z)] between the aggregate posterior q(z) = (1/N) sum_n
q(z | x_n) and the prior (papers/004 section 4, appendix A), for diagonal-Gaussian posteriors.

- `monte_carlo`: Algorithm 1. log q(z_i) by log-sum-exp over all N posteriors (minus log N), at
  z_i ~ q(z | x_i); the most accurate of the three (its bias is only the finite N).
- `density_ratio`: Algorithm 2. A classifier C(z) of q-samples (1) against p-samples (0), trained with
  the logistic loss; KL ~ mean over held-out q-samples of logit C(z) = log C / (1 - C).
- `density_model`: a diagonal Gaussian mixture fitted to q-samples by EM; KL ~ mean of
  log q_mix(z) - log p(z) over held-out q-samples (Algorithm 3).
- `maf_density_model`: Algorithm 3 with a masked autoregressive flow (Papamakarios et al. 2017, the
  flow family of papers/004 Fig. 6) fitted by maximum likelihood: it sees correlations a diagonal
  mixture component cannot.
- `average_kl` (the ELBO's E_x KL[q(z|x) || p(z)]) and `lower_bound`: eq. 5, KL[q(z)||p(z)] =
  E_x KL[q(z|x)||p(z)] - I(x; z) >= average KL - log N.
All in nats. `log_prior` maps (M, d) latents to log p(z) per row. `estimate_all` runs them all with
the settings of a config's `eval.marginal_kl` (the paper's by default).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

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


def fit(params, tx: optax.GradientTransformation, loss: Callable, rng, steps: int):
  """`steps` updates of `params` by `tx` on loss(params, key), each step's key drawing its own
  minibatch, in one compiled scan (the trained estimators' loop)."""
  @jax.jit
  def step(carry, key):
    p, o = carry
    u, o = tx.update(jax.grad(loss)(p, key), o, p)
    return (optax.apply_updates(p, u), o), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(rng, steps))
  return params


def density_ratio(rng, q_samples: jax.Array, p_samples: jax.Array, *, hidden: int = 256,
                  layers: int = 2, steps: int = 2000, batch: int = 256, lr: float = 1e-3) -> float:
  """Algorithm 2 of papers/004: logistic classifier q (1) vs p (0), a leaky-ReLU 0.2 MLP of `layers`
  hidden layers of `hidden` units trained by Adam (0.9, 0.9) at `lr`; the mean logit on the held-out
  fifth of the q-samples."""
  n_train = 4 * len(q_samples) // 5
  q_train, q_test, p_train = q_samples[:n_train], q_samples[n_train:], p_samples[:n_train]
  net = _Classifier(hidden, layers)
  k_init, k_loop = jax.random.split(rng)
  params = net.init(k_init, q_train[:2])
  tx = optax.adam(lr, b1=0.9, b2=0.9)  # appendix A.3: beta1 = beta2 = 0.9

  def loss(p, key):
    kq, kp = jax.random.split(key)
    zq = q_train[jax.random.randint(kq, (batch,), 0, len(q_train))]
    zp = p_train[jax.random.randint(kp, (batch,), 0, len(p_train))]
    return jnp.mean(jax.nn.softplus(-net.apply(p, zq))) + jnp.mean(jax.nn.softplus(net.apply(p, zp)))

  params = fit(params, tx, loss, k_loop, steps)
  return float(jnp.mean(net.apply(params, q_test)))


def made_masks(dim: int, hidden: int, layers: int) -> list[np.ndarray]:
  """MADE's connectivity masks (Germain et al. 2015) for `layers` hidden layers of `hidden` units:
  output i (of each of the two output blocks) sees inputs j < i only. Input degrees 1..d, hidden
  degrees cycling through 1..d-1, output degrees 1..d; a unit of degree k sees degrees <= k, an output
  of degree i sees hidden degrees < i."""
  deg_in = np.arange(1, dim + 1)
  deg_hidden = np.arange(hidden) % max(dim - 1, 1) + 1
  masks, prev = [], deg_in
  for _ in range(layers):
    masks.append((deg_hidden[None, :] >= prev[:, None]).astype(np.float32))
    prev = deg_hidden
  out = (deg_in[None, :] > prev[:, None]).astype(np.float32)
  masks.append(np.concatenate([out, out], axis=1))  # shift and log-scale blocks
  return masks


class _MADE(nn.Module):
  """(shift, log_scale) of z_i given z_<i, each (M, d); the last layer zero-initialised (identity)."""
  dim: int
  hidden: int
  layers: int

  @nn.compact
  def __call__(self, z):
    masks = made_masks(self.dim, self.hidden, self.layers)
    h = z
    for i, mask in enumerate(masks):
      last = i == len(masks) - 1
      kernel = self.param(f"kernel_{i}", nn.initializers.zeros if last else nn.initializers.lecun_normal(),
                          mask.shape)
      h = h @ (kernel * mask) + self.param(f"bias_{i}", nn.initializers.zeros, (mask.shape[1],))
      if not last:
        h = nn.relu(h)
    shift, raw = jnp.split(h, 2, axis=-1)
    return shift, 3.0 * jnp.tanh(raw / 3.0)  # log-scales bounded in (-3, 3): stable training


class MAF(nn.Module):
  """A masked autoregressive flow density: u = T(z) through `flows` MADE layers, each
  u_i = (z_i - shift_i(z_<i)) exp(-log_scale_i(z_<i)) with the order reversed between layers, after a
  fixed standardisation by `loc` / `scale` (the training samples' mean and std); log q(z) =
  log N(u; 0, I) + log|det dT/dz|."""
  dim: int
  flows: int = 2
  hidden: int = 1024
  layers: int = 2

  @nn.compact
  def __call__(self, z, loc, scale):
    """(u, log|det dT/dz|) for z (M, d)."""
    u = (z - loc) / scale
    logdet = -jnp.sum(jnp.log(scale)) * jnp.ones(z.shape[:1], z.dtype)
    for i in range(self.flows):
      shift, log_scale = _MADE(self.dim, self.hidden, self.layers, name=f"made_{i}")(u)
      u = ((u - shift) * jnp.exp(-log_scale))[:, ::-1]
      logdet = logdet - jnp.sum(log_scale, axis=-1)
    return u, logdet

  def log_prob(self, z, loc, scale):
    u, logdet = self(z, loc, scale)
    return standard_normal_log_prob(u) + logdet


def maf_density_model(rng, q_samples: jax.Array, log_prior: Callable = standard_normal_log_prob, *,
                      flows: int = 2, hidden: int = 1024, layers: int = 2, steps: int = 2000,
                      lr: float = 5e-4, batch: int = 256) -> float:
  """Algorithm 3 with a MAF fitted (Adam, maximum likelihood) to four fifths of the q-samples; KL on
  the rest: mean of log q_maf(z) - log p(z)."""
  n_train = 4 * len(q_samples) // 5
  train, test = q_samples[:n_train], q_samples[n_train:]
  loc, scale = jnp.mean(train, 0), jnp.std(train, 0) + 1e-6
  net = MAF(q_samples.shape[1], flows, hidden, layers)
  k_init, k_loop = jax.random.split(rng)
  params = net.init(k_init, train[:2], loc, scale)
  nll = lambda p, key: -jnp.mean(net.apply(p, train[jax.random.randint(key, (batch,), 0, n_train)], loc,
                                            scale, method="log_prob"))
  params = fit(params, optax.adam(lr), nll, k_loop, steps)
  return float(jnp.mean(net.apply(params, test, loc, scale, method="log_prob") - log_prior(test)))


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
  """Algorithm 3 with a diagonal Gaussian mixture fitted to four fifths of the q-samples; KL on the rest."""
  n_train = 4 * len(q_samples) // 5
  params = jax.jit(fit_gaussian_mixture, static_argnums=2)(rng, q_samples[:n_train], components)
  test = q_samples[n_train:]
  return float(jnp.mean(mixture_log_prob(test, *params) - log_prior(test)))


def estimate_all(rng, means, log_stds, settings: Mapping, log_prior: Callable = standard_normal_log_prob,
                 prior_sample: Callable | None = None) -> dict[str, float]:
  """Every estimator on one set of posteriors (N, d), with the average KL and eq. 5's lower bound, at
  `settings` (a config's `eval.marginal_kl`: num_samples, monte_carlo_samples, classifier_*, batch_size,
  gmm_components, maf_*). Without `prior_sample(rng, z_like)` the prior is N(0, I) and the average KL is analytic; with
  it, the average KL is the Monte Carlo mean of log q(z|x) - log p(z)."""
  s = settings
  k_mc, k_q, k_p, k_ratio, k_mix, k_maf = jax.random.split(rng, 6)
  q, idx = sample_posteriors(k_q, means, log_stds, int(s["num_samples"]), return_index=True)
  if prior_sample is None:
    p = jax.random.normal(k_p, q.shape)
    avg = average_kl(means, log_stds)
  else:
    p = prior_sample(k_p, q)
    avg = float(jnp.mean(gaussian.log_prob(q, means[idx], log_stds[idx]) - log_prior(q)))
  mc = int(s["num_samples"])
  if s["monte_carlo_samples"] and s["monte_carlo_samples"] < mc:
    mc = int(s["monte_carlo_samples"])
    logging.info("Monte Carlo estimate (Algorithm 1) on %d of the %d samples z_i "
                 "(eval.marginal_kl.monte_carlo_samples; 0 = all).", mc, int(s["num_samples"]))
  out = {"marginal_kl_monte_carlo": monte_carlo(k_mc, means, log_stds, log_prior, mc),
         "marginal_kl_density_ratio": density_ratio(
             k_ratio, q, p, hidden=int(s["classifier_hidden"]), layers=int(s["classifier_layers"]),
             steps=int(s["classifier_steps"]), batch=int(s["batch_size"]), lr=float(s["classifier_lr"])),
         "marginal_kl_density_model": density_model(k_mix, q, log_prior, int(s["gmm_components"])),
         "average_kl": avg, "marginal_kl_lower_bound": lower_bound(avg, int(means.shape[0])),
         "num_posteriors": int(means.shape[0]), "latent_dim": int(means.shape[1]),
         "monte_carlo_samples": mc}
  if s["maf_flows"]:
    out["marginal_kl_density_model_maf"] = maf_density_model(
        k_maf, q, log_prior, flows=int(s["maf_flows"]), hidden=int(s["maf_hidden"]),
        layers=int(s["maf_layers"]), steps=int(s["maf_steps"]), lr=float(s["maf_lr"]),
        batch=int(s["batch_size"]))
  return out
