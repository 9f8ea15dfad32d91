"""papers/004 section 5 (and appendix E): density ratios for estimating and for minimising a KL, on
Gaussians whose KL is known in closed form.

x = z W + b with z ~ N(0, I_k), W (k, d), b (d,), so x ~ N(b, W^T W); k = 10 d keeps W^T W full rank
(the paper's d = k / 10).
- Estimation: both Gaussians fixed; a classifier trained to tell them apart (papers/004 Algorithm 2,
  `marginal_kl.density_ratio`) estimates KL[q || p] = E_q[log q / p] by its mean logit, against the
  closed form.
- Minimisation: p fixed, q's (W, b) learned by the reverse-KL generator loss E_q[logit D(x)]
  (= -log (1 - D) / D with q labelled 1) while the classifier trains online, one update each per step;
  the true KL[q || p] is tracked.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adejax.evaluation import marginal_kl


def random_gaussian(rng, d: int, k: int | None = None):
  """(W (k, d), b (d,)) with standard-normal entries, k = 10 d by default; W scaled by 1/sqrt(k) so
  that the covariance W^T W is near the identity."""
  k = k or 10 * d
  k_w, k_b = jax.random.split(rng)
  return jax.random.normal(k_w, (k, d)) / np.sqrt(k), jax.random.normal(k_b, (d,))


def random_pair(rng, d: int):
  """(q, p): the study's two random Gaussians of dimension d, each (W, b) from `random_gaussian`, from
  the two halves of `rng` (the pair that estimation and minimisation share)."""
  k_q, k_p = jax.random.split(rng)
  return random_gaussian(k_q, d), random_gaussian(k_p, d)


def sample(params, rng, n: int):
  w, b = params
  return jax.random.normal(rng, (n, w.shape[0])) @ w + b


def gaussian_kl(q, p) -> float:
  """KL[N(b_q, W_q^T W_q) || N(b_p, W_p^T W_p)] in nats, in float64."""
  (wq, bq), (wp, bp) = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in (q, p)]
  sq, sp = wq.T @ wq, wp.T @ wp
  lp = np.linalg.cholesky(sp)
  solve = lambda m: np.linalg.solve(lp.T, np.linalg.solve(lp, m))
  diff = bp - bq
  logdet = lambda s: 2.0 * np.sum(np.log(np.diag(np.linalg.cholesky(s))))
  d = len(bq)
  return float(0.5 * (np.trace(solve(sq)) + diff @ solve(diff) - d + logdet(sp) - logdet(sq)))


def estimation(rng, d: int, *, n: int = 20_000, steps: int = 2000, hidden: int = 256, layers: int = 3,
               lr: float = 1e-4, q=None, p=None) -> dict:
  """The true KL[q || p] of two random Gaussians (or the given (W, b) pairs) and the density-ratio
  classifier's estimate."""
  k_q, k_p, k_sq, k_sp, k_c = jax.random.split(rng, 5)
  q = random_gaussian(k_q, d) if q is None else q
  p = random_gaussian(k_p, d) if p is None else p
  est = marginal_kl.density_ratio(k_c, sample(q, k_sq, n), sample(p, k_sp, n), hidden=hidden,
                                  layers=layers, steps=steps, lr=lr)
  return {"d": d, "true_kl": gaussian_kl(q, p), "estimated_kl": est}


def minimization(rng, d: int, *, steps: int = 3000, every: int = 100, batch: int = 256, hidden: int = 256,
                 layers: int = 3, lr_model: float = 1e-3, lr_disc: float = 1e-4, q=None, p=None) -> dict:
  """Learn q (random, or the given initial (W, b)) towards a fixed p with the classifier in the loop:
  {"step", "true_kl", "estimated_kl"} lists every `every` steps (the estimate is the classifier's mean
  logit on that step's q batch)."""
  k_q, k_p, k_c, k_loop = jax.random.split(rng, 4)
  q = random_gaussian(k_q, d) if q is None else q
  p = random_gaussian(k_p, d) if p is None else p
  net = marginal_kl._Classifier(hidden, layers)
  c_params = net.init(k_c, jnp.zeros((2, d)))
  tx_c, tx_q = optax.adam(lr_disc, b1=0.9, b2=0.9), optax.adam(lr_model)
  state = (q, c_params, tx_q.init(q), tx_c.init(c_params))

  @jax.jit
  def step(state, key):
    q, c, oq, oc = state
    k1, k2, k3 = jax.random.split(key, 3)
    xq, xp = sample(q, k1, batch), sample(p, k2, batch)
    c_loss = lambda c: jnp.mean(jax.nn.softplus(-net.apply(c, xq))) + jnp.mean(jax.nn.softplus(net.apply(c, xp)))
    u, oc = tx_c.update(jax.grad(c_loss)(c), oc, c)
    c = optax.apply_updates(c, u)
    q_loss = lambda q: jnp.mean(net.apply(c, sample(q, k3, batch)))  # E_q[log q/p] as the classifier sees it
    est, g = jax.value_and_grad(q_loss)(q)
    u, oq = tx_q.update(g, oq, q)
    return (optax.apply_updates(q, u), c, oq, oc), est

  out = {"d": d, "step": [0], "true_kl": [gaussian_kl(q, p)], "estimated_kl": [float("nan")]}
  for start in range(0, steps, every):
    keys = jax.random.split(jax.random.fold_in(k_loop, start), every)
    state, est = jax.lax.scan(step, state, keys)
    out["step"].append(start + every)
    out["true_kl"].append(gaussian_kl(state[0], p))
    out["estimated_kl"].append(float(est[-1]))
  return out
