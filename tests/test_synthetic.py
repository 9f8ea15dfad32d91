"""papers/004 section 5: the synthetic Gaussian study's parts against known answers."""
import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import multivariate_normal as mvn

from adejax.evaluation import synthetic


def test_closed_form_kl_matches_monte_carlo_and_is_zero_on_itself():
  q, p = synthetic.random_gaussian(jax.random.key(0), 3), synthetic.random_gaussian(jax.random.key(1), 3)
  x = synthetic.sample(q, jax.random.key(2), 200_000)
  mc = np.mean(mvn.logpdf(x, q[1], q[0].T @ q[0]) - mvn.logpdf(x, p[1], p[0].T @ p[0]))
  np.testing.assert_allclose(synthetic.gaussian_kl(q, p), mc, rtol=0.02)
  assert abs(synthetic.gaussian_kl(q, q)) < 1e-9
  np.testing.assert_allclose(np.cov(np.asarray(x).T), q[0].T @ q[0], atol=0.02)  # x ~ N(b, W^T W)


def test_the_classifier_estimates_a_one_dimensional_kl_and_minimises_it():
  # q = N(0, 1), p = N(1.5, 0.6^2): KL[q || p] = log 0.6 + (1 + 1.5^2) / (2 0.36) - 1/2 = 3.50
  column = jnp.ones((10, 1)) / np.sqrt(10.0)
  q, p = (column, jnp.zeros(1)), (0.6 * column, jnp.full((1,), 1.5))
  np.testing.assert_allclose(synthetic.gaussian_kl(q, p), np.log(0.6) + 3.25 / 0.72 - 0.5, rtol=1e-6)
  # in one dimension a trained classifier's estimate is within 20% (measured: 4.00 against 3.50; with
  # 1000 steps on 5000 samples 2.69); the paper's point is that this fails as d grows
  est = synthetic.estimation(jax.random.key(3), 1, n=20_000, steps=3000, lr=1e-3, q=q, p=p)
  assert abs(est["estimated_kl"] - est["true_kl"]) < 0.2 * est["true_kl"], est
  mini = synthetic.minimization(jax.random.key(3), 1, steps=1000, every=100, q=q, p=p)
  assert mini["true_kl"][-1] < 0.3 * mini["true_kl"][0], mini["true_kl"]  # measured 3.50 -> 0.61


@functools.lru_cache(maxsize=None)
def experiment_module():
  """experiments/synthetic_gaussians.py, loaded once (it defines absl flags)."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
                      "synthetic_gaussians.py")
  spec = importlib.util.spec_from_file_location("synthetic_gaussians", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_study_writes_its_results_and_plot(tmp_path):
  import json

  module = experiment_module()
  results = module.run([1, 2], seeds=1, estimation_steps=20, steps=200, batch=16)
  module.plot(results, str(tmp_path / "plot.png"))
  assert os.path.getsize(tmp_path / "plot.png") > 1000 and len(results["runs"]) == 2
  json.dumps(results)
  # a second call into the same results keeps the runs it has and adds the new ones, in order
  more = module.run([2, 3], seeds=1, estimation_steps=20, steps=200, batch=16, earlier=results)
  assert [r["d"] for r in more["runs"]] == [1, 2, 3] and more["runs"][1] is results["runs"][1]


def test_estimation_and_minimisation_share_one_explicitly_derived_pair(monkeypatch):
  """The study compares estimating and minimising the KL of the same two Gaussians: the experiment
  derives the pair once (`synthetic.random_pair`) and hands it to both, whatever key each study gets."""
  module = experiment_module()
  seen = {}
  monkeypatch.setattr(synthetic, "estimation", lambda key, d, q=None, p=None, **kw: seen.update(est=(q, p)) or
                      {"d": d, "true_kl": 0.0, "estimated_kl": 0.0})
  monkeypatch.setattr(synthetic, "minimization", lambda key, d, q=None, p=None, **kw: seen.update(mini=(q, p)) or
                      {"true_kl": [0.0]})
  module.run([3], seeds=1, estimation_steps=1, steps=1, batch=4)
  expected = synthetic.random_pair(jax.random.fold_in(jax.random.PRNGKey(0), 3), 3)
  for name in ("est", "mini"):
    assert len(jax.tree.leaves(seen[name])) == 4, name  # both (W, b) given, not drawn inside
    for got, want in zip(jax.tree.leaves(seen[name]), jax.tree.leaves(expected)):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
