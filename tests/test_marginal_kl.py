"""papers/004's marginal-KL estimators against cases with known answers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax.evaluation import marginal_kl as mk
from adejax import experiment


def small_settings(**changes) -> dict:
  """eval.marginal_kl at the sweep's small scale, with `changes`."""
  from configs import default

  settings = experiment.apply_scale(default.get_config(), "small").eval.marginal_kl.to_dict()
  settings.update(maf_hidden=64, maf_steps=1500)
  settings.update(changes)
  return settings

M = jnp.array([1.0, -0.5])
LS = jnp.log(jnp.array([0.6, 1.2]))
# KL(N(m, s^2) || N(0, 1)) = 1/2 sum(s^2 + m^2 - 1 - 2 log s), written out here (not gaussian.kl, which
# the estimators use): about 0.69 nats.
CLOSED = float(0.5 * np.sum(np.exp(2 * np.asarray(LS)) + np.asarray(M) ** 2 - 1.0 - 2 * np.asarray(LS)))


def test_q_equal_to_p_gives_zero():
  means = jnp.zeros((50, 3))
  log_stds = jnp.zeros((50, 3))
  assert abs(mk.monte_carlo(jax.random.key(0), means, log_stds, num_samples=500)) < 1e-5
  q = mk.sample_posteriors(jax.random.key(1), means, log_stds, 8000)
  p = jax.random.normal(jax.random.key(2), q.shape)
  assert abs(mk.density_model(jax.random.key(3), q, components=3)) < 0.05
  assert abs(mk.density_ratio(jax.random.key(4), q, p, steps=800)) < 0.1


def test_identical_gaussian_posteriors_give_the_closed_form():
  means, log_stds = jnp.tile(M, (30, 1)), jnp.tile(LS, (30, 1))
  np.testing.assert_allclose(mk.average_kl(means, log_stds), CLOSED, rtol=1e-5)
  mc = mk.monte_carlo(jax.random.key(0), means, log_stds, num_samples=4000)
  assert abs(mc - CLOSED) < 0.05, (mc, CLOSED)  # only the sampling error of the outer mean
  q = mk.sample_posteriors(jax.random.key(1), means, log_stds, 10_000)
  p = jax.random.normal(jax.random.key(2), q.shape)
  assert abs(mk.density_model(jax.random.key(3), q, components=2) - CLOSED) < 0.05
  assert abs(mk.density_ratio(jax.random.key(4), q, p, steps=1500) - CLOSED) < 0.15


def test_monte_carlo_of_a_two_component_aggregate_matches_numerical_integration():
  means, log_stds = jnp.array([[-2.0], [2.0]]), jnp.log(jnp.array([[0.5], [0.5]]))
  grid = np.linspace(-8, 8, 20001)
  q = 0.5 * (np.exp(-0.5 * ((grid + 2) / 0.5) ** 2) + np.exp(-0.5 * ((grid - 2) / 0.5) ** 2)) / (
      0.5 * math.sqrt(2 * math.pi))
  p = np.exp(-0.5 * grid ** 2) / math.sqrt(2 * math.pi)
  exact = float(np.sum(q * (np.log(q + 1e-300) - np.log(p))) * (grid[1] - grid[0]))
  # chunk 3 > N = 2: the padded posteriors must not count
  z = mk.sample_posteriors(jax.random.key(0), means, log_stds, 20_000)
  log_q = mk.log_aggregate_posterior(z, means, log_stds, chunk=3)
  mc = float(jnp.mean(log_q - mk.standard_normal_log_prob(z)))
  assert abs(mc - exact) < 0.05, (mc, exact)
  # eq. 5: the marginal KL is at least the average KL minus log N
  assert mk.lower_bound(mk.average_kl(means, log_stds), 2) <= exact
  assert mk.average_kl(means, log_stds) > exact  # and the average KL exceeds it (papers/004 Table 1)


def test_estimate_kl_runs_on_trained_runs_of_both_families(tmp_path):
  import os

  from adejax import config_lib, estimate_kl, train
  from configs import default, fmnist_glow_vae
  from tests.test_input_pipeline import make_idx_dir

  (tmp_path / "idx").mkdir()
  make_idx_dir(tmp_path / "idx", n_train=40, n_test=16)
  for name, config in (("ade", default.get_config("tiny")), ("glow", fmnist_glow_vae.get_config("tiny"))):
    config.data.idx_dir = str(tmp_path / "idx")
    workdir = str(tmp_path / name)
    train.train_and_evaluate(config, workdir)
    out = estimate_kl.estimate_run(config_lib.load_run_config(workdir), workdir, num_posteriors=40,
                                   num_samples=200, classifier_steps=20)
    for key in ("marginal_kl_monte_carlo", "marginal_kl_density_ratio", "marginal_kl_density_model",
                "average_kl", "marginal_kl_lower_bound"):
      assert np.isfinite(out[key]), (name, key)
    assert out["num_posteriors"] == 40 and out["step"] == 4
    assert os.path.exists(os.path.join(workdir, "eval", "marginal_kl.json"))


def test_estimate_kl_refuses_a_flow_without_an_encoder(tmp_path):
  from adejax import config_lib, estimate_kl
  from configs import fmnist_glow

  with pytest.raises(config_lib.ConfigError, match="no encoder"):
    estimate_kl.estimate_run(fmnist_glow.get_config("tiny"), str(tmp_path))


def test_every_estimator_on_a_linear_gaussian_encoder_of_gaussian_data():
  """x ~ N(0, I_3), q(z | x) = N(A x + b, diag(s^2)) in 2-D: the aggregate posterior is
  N(b, A A^T + diag(s^2)), correlated, so its KL from N(0, I) has a closed form that no per-posterior
  quantity gives: 1/2 [tr(S) + b.b - d - log det S]. Each estimator of estimate_all finds it; the
  average KL is larger by the mutual information."""
  a = np.array([[0.6, 0.3, 0.0], [0.5, 0.35, 0.2]])  # correlation 0.64 between z_1 and z_2
  b, s = np.array([0.3, -0.2]), np.array([0.5, 0.4])
  x = np.random.default_rng(0).normal(size=(4000, 3))
  means, log_stds = jnp.asarray(x @ a.T + b, jnp.float32), jnp.asarray(np.tile(np.log(s), (4000, 1)), jnp.float32)
  cov = a @ a.T + np.diag(s ** 2)
  exact = 0.5 * (np.trace(cov) + b @ b - 2 - np.log(np.linalg.det(cov)))
  ignoring_correlation = 0.5 * (np.trace(cov) + b @ b - 2 - np.sum(np.log(np.diag(cov))))
  assert exact - ignoring_correlation > 0.2  # an estimator blind to the correlation fails here
  out = mk.estimate_all(jax.random.key(0), means, log_stds, small_settings(num_samples=8000,
                                                                         classifier_steps=1500))
  assert out["monte_carlo_samples"] == 2000
  assert abs(out["marginal_kl_monte_carlo"] - exact) < 0.03, (out, exact)
  assert abs(out["marginal_kl_density_model"] - exact) < 0.05, (out, exact)
  assert abs(out["marginal_kl_density_model_maf"] - exact) < 0.05, (out, exact)
  assert abs(out["marginal_kl_density_ratio"] - exact) < 0.1, (out, exact)
  assert out["average_kl"] > exact + 0.2  # the per-posterior term counts I(x; z) too


def test_the_average_kl_is_analytic_for_every_standard_normal_prior():
  """estimate_kl asks the family whether its prior is N(0, I): papers/004's hybrid VAEs and AV-ADE are,
  so their average KL is the closed form (it used to read glow_vae.prior, 'flow' by default, for every
  family); a glow_vae with a learned prior is not."""
  from adejax import families
  from configs import default

  c = default.get_config("tiny")
  assert families.make(c, (16, 16, 1)).standard_normal_prior
  c.model.family = "hybrid"
  assert c.glow_vae.prior != "normal" and families.make(c, (16, 16, 1)).standard_normal_prior
  c.model.family = "glow_vae"
  assert not families.make(c, (16, 16, 1)).standard_normal_prior
  c.glow_vae.prior = "normal"
  assert families.make(c, (16, 16, 1)).standard_normal_prior


def test_the_maf_is_autoregressive_and_its_log_det_is_the_jacobians():
  """MADE's masks make u_i depend on z_<=i only (per flow; the order reverses between flows), and
  MAF's log|det dT/dz| equals slogdet of the dense Jacobian (jax.jacfwd) with random weights."""
  d = 4
  net = mk.MAF(d, flows=2, hidden=8, layers=2)
  z = jax.random.normal(jax.random.key(0), (3, d))
  loc, scale = jnp.array([0.1, -0.2, 0.3, 0.0]), jnp.array([1.5, 0.7, 1.0, 2.0])
  params = net.init(jax.random.key(1), z, loc, scale)
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  u, logdet = net.apply(params, z, loc, scale)
  for i in range(3):
    jac = jax.jacfwd(lambda v: net.apply(params, v[None], loc, scale)[0][0])(z[i])
    np.testing.assert_allclose(float(logdet[i]), np.linalg.slogdet(np.asarray(jac, np.float64))[1],
                               rtol=1e-4, atol=1e-4)
  one = mk.MAF(d, flows=1, hidden=8, layers=2)
  p1 = {"params": {"made_0": params["params"]["made_0"]}}
  jac = np.asarray(jax.jacfwd(lambda v: one.apply(p1, v[None], loc, scale)[0][0])(z[0]))[::-1]
  assert np.allclose(np.triu(jac, 1), 0.0) and np.all(np.abs(np.diag(jac)) > 0)  # triangular
  assert np.abs(np.tril(jac, -1)).max() > 1e-3  # and not diagonal: it conditions on z_<i


def test_the_estimators_use_the_config_settings_and_say_when_algorithm_1_is_capped(monkeypatch):
  """Full scale: papers/004 appendix A.3's density-ratio classifier (3 x 5000 units, lr 5e-4) and
  Algorithm 1 on every sample (appendix A.2: no cap) on the whole training split; `--scale=small`
  shrinks them. estimate_all passes the settings on, and logs the Monte Carlo cap when it applies."""
  from absl import logging as absl_logging

  from adejax import config_lib
  from configs import default

  full = config_lib.base_config().eval.marginal_kl
  assert (full.classifier_layers, full.classifier_hidden, full.classifier_lr) == (3, 5000, 5e-4)
  assert full.num_posteriors == 0 and full.monte_carlo_samples == 0
  small = experiment.apply_scale(default.get_config(), "small").eval.marginal_kl
  assert (small.classifier_layers, small.classifier_hidden, small.monte_carlo_samples) == (2, 256, 2000)
  seen, logged = {}, []
  monkeypatch.setattr(mk, "density_ratio", lambda rng, q, p, **kw: seen.update(ratio=kw) or 0.0)
  monkeypatch.setattr(mk, "monte_carlo", lambda rng, m, s, lp, n: seen.update(mc=n) or 0.0)
  monkeypatch.setattr(mk, "maf_density_model", lambda rng, q, lp, **kw: seen.update(maf=kw) or 0.0)
  monkeypatch.setattr(mk, "density_model", lambda rng, q, lp, k: seen.update(gmm=k) or 0.0)
  monkeypatch.setattr(absl_logging, "info", lambda msg, *a: logged.append(msg % a))
  means, log_stds = jnp.zeros((30, 2)), jnp.zeros((30, 2))
  settings = dict(full.to_dict(), num_samples=50)
  mk.estimate_all(jax.random.key(0), means, log_stds, settings)
  assert seen["ratio"] == {"hidden": 5000, "layers": 3, "steps": 500_000, "batch": 256, "lr": 5e-4}
  assert seen["mc"] == 50 and not logged and seen["gmm"] == 10
  assert seen["maf"]["flows"] == full.maf_flows and seen["maf"]["hidden"] == full.maf_hidden
  mk.estimate_all(jax.random.key(0), means, log_stds, dict(settings, monte_carlo_samples=20, maf_flows=0))
  assert seen["mc"] == 20 and any("20 of the 50" in line for line in logged)
