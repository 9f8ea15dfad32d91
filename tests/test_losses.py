"""losses.py against closed forms, Monte Carlo and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from adejax import losses
from adejax.models import flows, gaussian


def test_uniform_model_scores_eight_bits():
  d = 3 * 32 * 32
  # A density uniform on [0,1]^D: -log p(y) = 0.
  np.testing.assert_allclose(losses.bits_per_dim(jnp.zeros(4), d), 8.0, rtol=1e-7)
  # The same uniform density written in [-1,1] space: p(s) = 2^-D, log|ds/dy| = D log 2.
  y = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  s, logdet = flows.centre_preprocess().forward_and_log_det(y)
  nll_y = d * math.log(2.0) - logdet
  np.testing.assert_allclose(losses.bits_per_dim(nll_y, d), 8.0, rtol=1e-6)


def test_gaussian_case_by_hand():
  """Data y, model N(0, sigma^2) on s = 2y - 1; bpd computed independently with scipy."""
  rng = np.random.default_rng(0)
  y = rng.uniform(size=(3, 2, 2, 1)).astype(np.float32)
  sigma = 0.7
  s, logdet = flows.centre_preprocess().forward_and_log_det(jnp.asarray(y))
  nll_s = losses.gaussian_nll(s, jnp.zeros_like(s), jnp.log(sigma))
  bpd = losses.bits_per_dim(nll_s - logdet, 4)
  log_py = stats.norm.logpdf(2 * y - 1, scale=sigma).reshape(3, -1).sum(1) + 4 * np.log(2)
  expected = (-log_py + 4 * np.log(256)) / (4 * np.log(2))
  np.testing.assert_allclose(bpd, expected, rtol=1e-5)


def test_logit_preprocessing_logdet_by_hand():
  a = 0.05
  y = np.random.default_rng(1).uniform(size=(2, 3, 3, 2))
  _, logdet = flows.logit_preprocess(a).forward_and_log_det(jnp.asarray(y, jnp.float32))
  p = a + (1 - 2 * a) * y
  expected = np.log((1 - 2 * a) / (p * (1 - p))).reshape(2, -1).sum(1)
  np.testing.assert_allclose(logdet, expected, rtol=1e-5)


def test_dequantize_range_and_mean():
  x = jnp.full((1000, 4), 7, jnp.uint8)
  y = losses.dequantize(x, jax.random.key(0))
  assert float(y.min()) >= 7 / 256 and float(y.max()) < 8 / 256
  np.testing.assert_allclose(float(y.mean()), 7.5 / 256, rtol=1e-3)


def test_pixel_centres_are_the_mean_of_dequantization():
  x = np.array([[0, 7, 255]], np.uint8)
  np.testing.assert_allclose(losses.pixel_centres(x), [[0.5 / 256, 7.5 / 256, 255.5 / 256]], rtol=1e-6)
  y = losses.dequantize(jnp.asarray(np.repeat(x, 20_000, axis=0)), jax.random.key(1))
  np.testing.assert_allclose(y.mean(0), losses.pixel_centres(x)[0], atol=2e-5)


def test_gaussian_kl_against_monte_carlo():
  k = jax.random.split(jax.random.key(0), 3)
  mq, lq = jax.random.normal(k[0], (1, 5)), 0.3 * jax.random.normal(k[1], (1, 5))
  mp, lp = jnp.zeros((1, 5)), 0.2 * jnp.ones((1, 5))
  z = mq + jnp.exp(lq) * jax.random.normal(k[2], (200_000, 5))
  mc = jnp.mean(gaussian.log_prob(z, mq, lq) - gaussian.log_prob(z, mp, lp))
  np.testing.assert_allclose(gaussian.kl(mq, lq, mp, lp)[0], mc, rtol=2e-2)


def test_iwae_bound_on_linear_gaussian():
  """z ~ N(0,1), x|z ~ N(w z, s^2): log p(x) = log N(x; 0, w^2 + s^2). A deliberately poor q."""
  w, s, x = 2.0, 0.5, jnp.array([0.3, -1.2, 2.5])
  log_px = stats.norm.logpdf(np.asarray(x), scale=np.sqrt(w**2 + s**2))

  def log_weights(k, key):
    qm, qs = 0.8 * x / w, 0.6  # not the exact posterior
    z = qm + qs * jax.random.normal(key, (k, 3))
    return (stats_norm_logpdf(x, w * z, s) + stats_norm_logpdf(z, 0.0, 1.0)
            - stats_norm_logpdf(z, qm, qs))

  def stats_norm_logpdf(v, m, sd):
    return -0.5 * ((v - m) / sd) ** 2 - jnp.log(sd) - 0.5 * math.log(2 * math.pi)

  keys = jax.random.split(jax.random.key(0), 2000)
  elbo = jnp.mean(jax.vmap(lambda kk: losses.importance_weighted_bound(log_weights(1, kk)))(keys), 0)
  iw = {k: jnp.mean(jax.vmap(lambda kk: losses.importance_weighted_bound(log_weights(k, kk)))(keys), 0)
        for k in (5, 500)}
  assert np.all(np.asarray(iw[5]) >= np.asarray(elbo))
  assert np.all(np.asarray(iw[500]) >= np.asarray(iw[5]) - 1e-3)
  assert np.all(np.asarray(elbo) < log_px - 0.05)  # the ELBO is visibly loose here
  np.testing.assert_allclose(iw[500], log_px, atol=0.01)


def test_quality_and_discriminator_loss_on_known_logits():
  fake = jnp.array([0.0, math.log(3.0)])  # D = 1/2, 3/4
  expected_q = -np.mean([np.log(0.5) - np.log(0.5), np.log(0.75) - np.log(0.25)])
  np.testing.assert_allclose(losses.quality_loss(fake), expected_q, rtol=1e-6)
  real = jnp.array([math.log(3.0), 0.0])
  expected_d = -np.mean([np.log(0.75), np.log(0.5)]) - np.mean([np.log(0.5), np.log(0.25)])
  np.testing.assert_allclose(losses.discriminator_loss(real, fake), expected_d, rtol=1e-6)


def test_gradient_penalty_against_finite_differences():
  key = jax.random.key(3)
  w = jax.random.normal(key, (6, 8))
  a = jax.random.normal(jax.random.key(4), (8,))

  def logit_fn(x):  # per-example logits, no interaction between examples
    return jnp.tanh(x.reshape(x.shape[0], -1) @ w) @ a

  real = jax.random.normal(jax.random.key(5), (4, 1, 2, 3))
  fake = jax.random.normal(jax.random.key(6), (4, 1, 2, 3))
  rng = jax.random.key(7)
  gp = losses.gradient_penalty(logit_fn, real, fake, rng)

  e = np.asarray(jax.random.uniform(rng, (4, 1, 1, 1)))
  x_hat = (e * np.asarray(real) + (1 - e) * np.asarray(fake)).astype(np.float64)
  f = lambda xx: np.tanh(xx.reshape(-1) @ np.asarray(w, np.float64)) @ np.asarray(a, np.float64)
  h, penalties = 1e-5, []
  for i in range(4):
    flat = x_hat[i].reshape(-1)
    g = [(f(flat + h * np.eye(6)[j]) - f(flat - h * np.eye(6)[j])) / (2 * h) for j in range(6)]
    penalties.append((np.linalg.norm(g) - 1.0) ** 2)
  np.testing.assert_allclose(gp, np.mean(penalties), rtol=1e-4)


def test_coverage_loss_is_minus_elbo_minus_logdet():
  """Eq. 4 from eq. 3 on hand-made terms: L_C = nll + KL - log|det| per example."""
  f = jnp.array([[[[0.5]], [[-1.0]]]])  # (1, 2, 1, 1)
  outputs = {"features": f, "mean": jnp.zeros_like(f), "log_sigma": jnp.log(2.0),
             "kl": jnp.array([3.0]), "logdet": jnp.array([1.5])}
  nll = -(stats.norm.logpdf(0.5, scale=2.0) + stats.norm.logpdf(-1.0, scale=2.0))
  np.testing.assert_allclose(losses.elbo(outputs), [-nll - 3.0], rtol=1e-6)
  loss, terms = losses.coverage_loss(outputs)
  np.testing.assert_allclose(loss, [nll + 3.0 - 1.5], rtol=1e-6)
  np.testing.assert_allclose(terms["nll"], [nll], rtol=1e-6)


class _LinearGaussian:
  """A latent-variable model with an exact likelihood, behind the interface `heldout_nll` takes:
  z ~ N(0, I_k), s = W z + b + sigma eps in feature space s = 2y - 1 (log-det D log 2), with a
  deliberately inexact Gaussian posterior q(z | s) = N(A (s - b), diag q_std^2)."""

  def __init__(self, d=3, k=2, sigma=0.4, seed=0):
    rng = np.random.default_rng(seed)
    self.w, self.b, self.sigma = rng.normal(size=(d, k)), rng.normal(size=d) * 0.1, sigma
    exact = np.linalg.solve(self.w.T @ self.w + sigma ** 2 * np.eye(k), self.w.T)
    self.a, self.q_std = 0.7 * exact, 0.5 * np.ones(k)

  def exact_nll_y(self, y):
    s = 2 * y.reshape(len(y), -1) - 1
    cov = self.w @ self.w.T + self.sigma ** 2 * np.eye(len(self.b))
    log_ps = stats.multivariate_normal(self.b, cov).logpdf(s)
    return -(log_ps + s.shape[1] * np.log(2.0))

  def apply(self, variables, y, rng, train=False, labels=None):
    del variables, train, labels
    s, logdet = flows.centre_preprocess().forward_and_log_det(y)
    flat = s.reshape(s.shape[0], -1)
    q_mean = (flat - self.b) @ self.a.T
    z = q_mean + self.q_std * jax.random.normal(rng, q_mean.shape)
    log_q = gaussian.log_prob(z, q_mean, jnp.log(self.q_std) * jnp.ones_like(z))
    log_p = gaussian.log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))
    mean = (z @ self.w.T + self.b).reshape(s.shape)
    return {"features": s, "mean": mean, "log_sigma": jnp.log(self.sigma), "kl": log_q - log_p,
            "log_q": log_q, "log_p": log_p, "logdet": logdet, "flow_logdet": jnp.zeros_like(logdet)}


def test_reported_bounds_against_an_exact_likelihood():
  """heldout_nll's ELBO and IWAE-K bounds on a linear-Gaussian model: ELBO >= IWAE-K >= exact -log p(y),
  IWAE-K falling towards the exact value as K grows."""
  model = _LinearGaussian()
  y = jnp.asarray(np.random.default_rng(1).uniform(size=(4, 1, 3, 1)), jnp.float32)
  exact = model.exact_nll_y(np.asarray(y))
  def mean_bounds(k, seeds):  # averaged over independent evaluations, one compiled program per K
    one = lambda key: losses.heldout_nll({}, {}, y, key, model=model, iwae_samples=k)
    out = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(k), seeds))
    return np.mean(out["elbo"], axis=0), np.mean(out["iwae"], axis=0)
  # One IWAE-1000 evaluation has a standard deviation of 0.05-0.08 nats here: 200 give a mean to 0.006.
  runs = {k: mean_bounds(k, 1000 if k < 100 else 200) for k in (1, 10, 1000)}
  elbo = runs[1][0]
  iwae = {k: r[1] for k, r in runs.items()}
  assert np.all(elbo > exact + 0.05)  # the ELBO is visibly loose with this posterior
  assert np.all(iwae[10] < elbo) and np.all(iwae[1000] < iwae[10])
  assert np.all(iwae[1000] > exact - 0.02)
  np.testing.assert_allclose(iwae[1000], exact, atol=0.02)


def test_iwae_of_the_real_model_is_below_the_mean_of_its_own_elbo_samples():
  """heldout_nll's IWAE-64 on the AV-ADE model (random, non-identity parameters): it is the log-mean-exp
  of 64 log-weights recomputed here with the same keys, so per example it is at most their mean (the
  64-sample ELBO estimate) -- Jensen, exactly, not up to noise."""
  from adejax.models import ade

  model = ade.ADEModel((8, 8, 1), arch="sngan", width=0.05, latent_channels=3, latent_levels=2,
                       flow_width=4, flow_blocks=1, global_latent=4)
  y = jax.random.uniform(jax.random.key(0), (5, 8, 8, 1), minval=0.01, maxval=0.99)
  variables = model.init(jax.random.key(1), y, jax.random.key(2))
  leaves, tree = jax.tree.flatten(variables["params"])
  keys = jax.random.split(jax.random.key(3), len(leaves))
  variables = {**variables, "params": jax.tree.unflatten(
      tree, [p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])}
  rng = jax.random.key(4)
  out = jax.jit(lambda v: losses.heldout_nll(v["params"], v["batch_stats"], y, rng, model=model,
                                             iwae_samples=64))(variables)
  one = jax.jit(lambda k: losses.log_importance_weight(model.apply(variables, y, k, train=False)))
  log_w = jnp.stack([one(k) for k in jax.random.split(jax.random.fold_in(rng, 1), 64)])
  assert float(jnp.std(log_w, axis=0).min()) > 0.1  # the weights vary: the gap is far above rounding
  w = np.asarray(log_w, np.float64)
  log_mean_exp = w.max(0) + np.log(np.mean(np.exp(w - w.max(0)), axis=0))  # numpy, not losses'
  np.testing.assert_allclose(out["iwae"], -log_mean_exp, rtol=1e-5, atol=1e-4)
  assert np.all(np.asarray(out["iwae"]) <= np.asarray(-jnp.mean(log_w, axis=0)))
