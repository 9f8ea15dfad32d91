"""The glow_vae family (papers/003) on the family-agnostic training system: each phase's step, what each
phase freezes, phase 2 starting from phase 1's bound (the Glow at the identity), the joint schedule's actnorm initialisation, temperature sampling, resume across the phase
boundary, 1 vs 4 devices, one compilation per phase, and learning on real Fashion-MNIST."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import checkpointing, config_lib, evaluate, train
from configs import cifar_glow_vae, fmnist_glow_vae

from tests.test_train import SHAPE, images, tree_max_diff

TINY = (16, 16, 1)


def tiny(num_steps=4, phase1=2, **glow_overrides):
  c = fmnist_glow_vae.get_config("tiny")
  c.train.num_steps, c.glow_vae.phase1_steps = num_steps, phase1
  for k, v in glow_overrides.items():
    c.glow_vae[k] = v
  config_lib.validate(c)
  return c


def steps(trainer, state, n, seed=0):
  out = []
  for i in range(n):
    state, m = trainer.step(state, trainer.global_batch(images(seed=seed + i)))
    out.append(jax.device_get(m))
  return state, out


def test_each_phase_updates_only_its_groups():
  train.clear_compiled_cache()  # compilations counted from zero (not those of an earlier test's Trainer)
  trainer = train.Trainer(tiny(), SHAPE)
  init = jax.device_get(trainer.init_state(0))
  s1, m1 = steps(trainer, trainer.init_state(0), 2)  # phase 1
  assert [m["phase"] for m in m1] == [1.0, 1.0] and all(np.isfinite(m["bpd"]) for m in m1)
  assert tree_max_diff(s1.params["vae"], init.params["vae"]) > 0
  assert tree_max_diff(s1.params["latent_prior"], init.params["latent_prior"]) > 0
  assert tree_max_diff(s1.params["glow"], init.params["glow"]) == 0.0
  before = jax.device_get(s1)
  s2, m2 = steps(trainer, s1, 2, seed=2)  # phase 2: the Glow layer alone
  assert [m["phase"] for m in m2] == [2.0, 2.0] and all(np.isfinite(m["bpd"]) for m in m2)
  for key in ("vae", "latent_prior"):
    for a, b in zip(jax.tree.leaves(before.params[key]), jax.tree.leaves(jax.device_get(s2.params[key]))):
      np.testing.assert_array_equal(a, b)  # bit-identical
  assert tree_max_diff(s2.params["glow"], before.params["glow"]) > 0
  assert m1[-1]["flow_logdet_bpd"] == 0.0
  assert trainer._step._cache_size() == 2  # phase 1, phase 2: once each
  _, _ = steps(trainer, s2, 2, seed=4)
  assert trainer._step._cache_size() == 2


def test_phase_two_starts_from_phase_one_bound():
  """papers/003 section 3.4: phase 2 "continues to maximise likelihood" from the VAE's fit. The first
  phase-2 step's bound (computed before its update) equals the phase-1 bound of the same parameters,
  batch and randomness to 1e-5: the Glow layer starts at the identity. (A data-dependent actnorm
  initialisation at the boundary, as before, moves it by tenths of a bit per dimension.)"""
  trainer = train.Trainer(tiny(), SHAPE)  # (the config of the other tests: compiled once)
  s1, _ = steps(trainer, trainer.init_state(0), 2)  # the end of phase 1
  family, batch, rng = trainer.family, jnp.asarray(images(seed=7)), jax.random.key(3)
  boundary = family.phase(2)
  assert family.phase(1) == "vae" and boundary != "vae"
  train_step, identity = jax.jit(family.train_step, static_argnums=(4, 5)), lambda x: x
  _, before = train_step(s1, batch, None, rng, identity, "vae")
  _, after = train_step(s1, batch, None, rng, identity, boundary)
  assert abs(float(after["bpd"]) - float(before["bpd"])) < 1e-5 * abs(float(before["bpd"]))
  assert float(after["flow_logdet_bpd"]) == 0.0 and float(before["bpd"]) > 0.0


def test_the_joint_schedule_initialises_the_actnorms_on_its_first_batch_and_restarts_the_ema():
  """With "joint", nothing is fitted yet: the first step sets the Glow's actnorms from its batch (Glow's
  data-dependent initialisation) and the EMA restarts from that step's parameters (else it would keep
  0.9 of the identity actnorms); then it averages again."""
  c = tiny(schedule="joint")
  c.train.ema_decay = 0.9
  trainer = train.Trainer(c, SHAPE)
  s1, _ = steps(trainer, trainer.init_state(0), 1)
  assert float(jnp.max(jnp.abs(s1.params["glow"]["blocks"]["actnorm"]["log_scale"][0]))) > 0.1
  for a, b in zip(jax.tree.leaves(jax.device_get(s1.ema_params)), jax.tree.leaves(jax.device_get(s1.params))):
    np.testing.assert_array_equal(a, b)
  s2, _ = steps(trainer, s1, 1, seed=3)
  assert tree_max_diff(s2.ema_params["glow"], s2.params["glow"]) > 0


def test_joint_schedule_updates_everything_from_the_first_step():
  c = tiny(schedule="joint")
  c.train.ema_decay = 0.9  # (the previous test's config: compiled once)
  trainer = train.Trainer(c, SHAPE)
  init = jax.device_get(trainer.init_state(0))
  state, m = steps(trainer, trainer.init_state(0), 2)
  assert [x["phase"] for x in m] == [2.0, 2.0]
  for key in ("vae", "latent_prior", "glow"):
    assert tree_max_diff(state.params[key], init.params[key]) > 0, key


def test_two_stage_prior_trains_on_the_frozen_first_stage_then_the_glow():
  c = tiny(num_steps=5, phase1=2, prior="two_stage", stage2_steps=2)
  trainer = train.Trainer(c, SHAPE)
  s, m = steps(trainer, trainer.init_state(0), 2)  # stage 1: the VAE with N(0, I)
  assert tree_max_diff(s.params["latent_prior"], jax.device_get(trainer.init_state(0)).params["latent_prior"]) == 0.0
  before = jax.device_get(s)
  s, m2 = steps(trainer, s, 2, seed=2)  # stage 2 on the codes
  assert [x["phase"] for x in m2] == [1.5, 1.5] and np.isfinite(m2[-1]["stage2_bpd"])
  assert tree_max_diff(s.params["latent_prior"], before.params["latent_prior"]) > 0
  assert tree_max_diff(s.params["vae"], before.params["vae"]) == 0.0
  assert tree_max_diff(s.params["glow"], before.params["glow"]) == 0.0
  s, m3 = steps(trainer, s, 1, seed=4)
  assert m3[0]["phase"] == 2.0 and np.isfinite(m3[0]["bpd"])
  samples = trainer.sample(s, 4)
  assert samples.shape == (4,) + SHAPE and np.all(np.isfinite(samples))


def test_temperature_zero_sampling_is_deterministic_given_z():
  trainer = train.Trainer(tiny(), SHAPE)
  state, _ = steps(trainer, trainer.init_state(0), 3)  # past the boundary: a non-identity Glow
  z = jax.random.normal(jax.random.key(0), (4, trainer.config.glow_vae.latent_dim))
  decode = lambda rng, t: trainer.model.apply({"params": state.params}, z, rng, t, method="decode_z")
  a, b = decode(jax.random.key(1), 0.0), decode(jax.random.key(2), 0.0)
  np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(decode(jax.random.key(1), 0.5) - decode(jax.random.key(2), 0.5)))) > 1e-4
  grid = trainer.figures(state, 3)["glow_before_after"]
  assert grid.shape == (3, 4) + SHAPE


def test_flow_prior_log_prob_is_a_density_with_exact_log_det():
  from adejax.models import glow_vae

  prior = glow_vae.FlowPrior(3, num_layers=3, width=8)
  z = jax.random.normal(jax.random.key(0), (5, 3))
  v = prior.init(jax.random.key(1), z, method="log_prob")
  v = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), v)
  h = lambda x: prior.apply(v, x[None], method=lambda m, x: m.bijector().forward(x))[0]
  for i in range(5):
    _, logabs = jnp.linalg.slogdet(jax.jacfwd(h)(z[i]))
    u = h(z[i])
    expected = -0.5 * jnp.sum(u ** 2) - 1.5 * np.log(2 * np.pi) + logabs
    np.testing.assert_allclose(prior.apply(v, z[i:i + 1], method="log_prob")[0], expected, rtol=1e-5,
                               atol=1e-5)
  back = prior.apply(v, jax.vmap(h)(z), method=lambda m, u: m.bijector().inverse(u))
  np.testing.assert_allclose(back, z, atol=1e-5)


def test_one_and_four_devices_agree():
  one = train.Trainer(tiny(), SHAPE, devices=jax.devices()[:1])
  four = train.Trainer(tiny(), SHAPE, devices=jax.devices()[:4])
  s1, m1 = steps(one, one.init_state(0), 3)
  s4, m4 = steps(four, four.init_state(0), 3)
  for a, b in zip(m1, m4):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-4, err_msg=k)
  a, b = (np.concatenate([x.ravel() for x in jax.tree.leaves(jax.device_get(s.params))]) for s in (s1, s4))
  assert np.mean(np.abs(a - b) > 1e-4) < 5e-3


def test_resume_across_the_phase_boundary_equals_a_straight_run(tmp_path):
  from tests.test_input_pipeline import make_idx_dir

  (tmp_path / "idx").mkdir()
  make_idx_dir(tmp_path / "idx", n_train=40, n_test=16)

  def config(n):
    c = tiny(num_steps=n, phase1=2)
    c.data.idx_dir = str(tmp_path / "idx")
    return c

  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  train.train_and_evaluate(config(4), straight)
  train.train_and_evaluate(config(2), resumed)  # "killed" at the boundary: step 2 is phase 2's first
  metrics = train.train_and_evaluate(config(4), resumed)

  def restore(workdir):
    trainer = train.Trainer(config(4), TINY)
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    state = ckpt.restore_latest(trainer.init_state(0))
    ckpt.close()
    return state

  a, b = restore(straight), restore(resumed)
  assert int(a.step) == int(b.step) == 4
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert np.isfinite(metrics["bpd_elbo"]) and "flow_logdet_bpd" in metrics
  # the evaluation command writes papers/003's before/after figure
  c = config_lib.load_run_config(resumed)
  evaluate.apply_overrides(c, ["eval.iwae_samples=2", "eval.num_fid_samples=0"])
  out = evaluate.evaluate_run(c, resumed)
  assert out["bpd_iwae"] <= out["bpd_elbo"] + 0.05
  assert os.path.exists(os.path.join(resumed, "eval", "glow_before_after.png"))


def test_paper_configs_have_the_papers_settings():
  from configs import celeba_glow_vae

  c = cifar_glow_vae.get_config()
  config_lib.validate(c)
  assert c.glow_vae.glow_depth == 32 and c.glow_vae.prior_layers == 16 and c.optim.lr == 1e-4
  c = celeba_glow_vae.get_config()
  config_lib.validate(c)
  assert c.glow_vae.scales == 4 and c.data.image_size == 64


def test_paper_schedule_fields_are_the_papers():
  """papers/003 section 4.2 in CIFAR-10 epochs of 50,000 / 64 steps: 1000 epochs of VAE + prior, then
  1000 of the Glow layer; Adam 1e-4 halved every 250 epochs; samples at T = 0.5; prior couplings of
  width 1024. Table 1's rows sample the underlying VAE at its decoder mean (T = 0)."""
  epoch = 50_000 // 64
  c = cifar_glow_vae.get_config()
  g = c.glow_vae
  assert (g.phase1_steps, c.train.num_steps) == (1000 * epoch, 2000 * epoch)
  assert c.optim.lr_halve_every == 250 * epoch and c.optim.lr == 1e-4
  assert g.temperature == 0.5 and g.prior_width == 1024 and g.schedule == "two-phase"
  for variant in ("flow_prior", "two_stage"):
    c = cifar_glow_vae.get_config(variant)
    assert c.glow_vae.temperature == 0.0 and c.glow_vae.decoder == "gamma", variant
  assert cifar_glow_vae.get_config("two_stage").glow_vae.stage2_steps == int(0.3 * 2000 * epoch)


def _log_normal(x, mean, log_std):
  """log N(x; mean, exp(log_std)^2) summed over everything but the batch axis, in float64 numpy."""
  x, mean, log_std = (np.asarray(a, np.float64) for a in (x, mean, log_std))
  log_std = np.broadcast_to(log_std, x.shape)
  per = -0.5 * ((x - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
  return per.reshape(x.shape[0], -1).sum(-1)


def _slogdet_per_example(fn, x):
  """log|det d fn / dx| of each example of x (B, ...) from the dense Jacobian (jax.jacrev: the Glow
  layer defines its reverse-mode derivative only)."""
  out = []
  for xi in x:
    jac = jax.jacrev(lambda v: fn(v.reshape((1,) + xi.shape)).reshape(-1))(xi.reshape(-1))
    out.append(np.linalg.slogdet(np.asarray(jac, np.float64))[1])
  return np.array(out)


def test_the_bound_is_eq4_with_a_random_glow_and_prior():
  """GlowVAEModel's per-example bound against eq. 4 of papers/003 computed another way, on 4x4 images
  with a random (non-identity) Glow layer and prior flow: -[log N(f(x^); g_mu(z), g_Sigma(z))
  + log p(z) - log q(z | x^)] - log|det d(f o preprocess)/dy|, the Gaussians in float64 numpy and both
  log-dets from slogdet of the dense Jacobian (the model uses the bijectors' own log-dets)."""
  from adejax.losses import coverage_loss
  from adejax.models import glow_vae

  model = glow_vae.GlowVAEModel((4, 4, 1), scales=1, base_width=4, latent_dim=4, glow_depth=2,
                                glow_width=8, prior_layers=2, prior_width=16)
  y = jax.random.uniform(jax.random.key(0), (3, 4, 4, 1), minval=0.05, maxval=0.95)
  rng = jax.random.key(1)
  params = model.init(jax.random.key(2), y, rng)["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  noisy = jax.tree.unflatten(tree, [p + 0.2 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  params = {**params, "glow": noisy["glow"], "latent_prior": noisy["latent_prior"]}
  apply = lambda method, *a: model.apply({"params": params}, *a, method=method)

  ours = np.asarray(coverage_loss(model.apply({"params": params}, y, rng))[0], np.float64)

  pre = lambda v: apply(lambda m, x: m._preprocess().forward(x), v)
  to_features = lambda v: apply(lambda m, x: m.glow.forward_and_log_det(m._preprocess().forward(x))[0], v)
  f = to_features(y)
  assert float(jnp.max(jnp.abs(f - pre(y)))) > 0.1  # the Glow layer is far from the identity
  mean, log_std = apply(lambda m, x: m.vae.encode(x), pre(y))
  z_rng, _ = jax.random.split(rng)
  z = mean + jnp.exp(log_std) * jax.random.normal(z_rng, mean.shape)
  h = lambda v: apply(lambda m, x: m.latent_prior.bijector().forward(x), v)
  log_p = _log_normal(h(z), 0.0, 0.0) + _slogdet_per_example(h, z)
  log_q = _log_normal(z, mean, log_std)
  dec_mean, dec_log_sigma = apply(lambda m, v: m.vae.decode(v), z)
  rec = _log_normal(f, dec_mean, dec_log_sigma)
  expected = -(rec + log_p - log_q) - _slogdet_per_example(to_features, y)
  np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


def test_temperature_scales_the_decoder_noise_on_the_glow_base_and_not_the_prior_sample():
  """Sampling at temperature T: z ~ p(z) at T = 1 whatever T, then f^-1(g_mu(z) + T g_Sigma(z)^(1/2) eps),
  rebuilt here from the model's parts with the same keys; T = 0 is the decoder mean."""
  trainer = train.Trainer(tiny(), SHAPE)
  state, _ = steps(trainer, trainer.init_state(0), 3)  # past the boundary: the Glow has trained
  model, params = trainer.model, state.params
  apply = lambda method, *a: model.apply({"params": params}, *a, method=method)
  rng = jax.random.key(5)
  z_rng, eps_rng = jax.random.split(rng)
  z = apply(lambda m, k: m.latent_prior.sample(k, 4), z_rng)
  mean, log_sigma = apply(lambda m, v: m.vae.decode(v), z)
  eps = jax.random.normal(eps_rng, mean.shape)
  for t in (0.0, 0.5, 1.0):
    expected = apply(lambda m, v: m.from_features(v), mean + t * jnp.exp(log_sigma) * eps)
    got = apply(lambda m, k: m.generate(k, 4, t), rng)
    np.testing.assert_allclose(got, expected, atol=1e-5)
  assert float(jnp.max(jnp.abs(apply(lambda m, k: m.generate(k, 4, 0.5), rng)
                               - apply(lambda m, k: m.generate(k, 4, 1.0), rng)))) > 1e-3


def train_on_fashion_mnist(c, num_steps: int):
  """(state, [training bpd per step]) after `num_steps` steps of config c on real Fashion-MNIST."""
  from adejax import input_pipeline

  data = input_pipeline.load_split(c.data, "train", limit=4096)
  trainer = train.Trainer(c, data.images.shape[1:])
  order = input_pipeline.BatchOrder(len(data), c.train.batch_size, c.seed)
  state, bpd = trainer.init_state(c.seed), []
  for step, (batch, _) in zip(range(num_steps), input_pipeline.train_batches(data, order, 0)):
    state, metrics = trainer.step(state, trainer.global_batch(batch), step=step)
    bpd.append(float(metrics["bpd"]))
  return state, bpd


@pytest.mark.slow
def test_both_phases_lower_the_bound_on_fashion_mnist(fashion_mnist_dir):
  c = fmnist_glow_vae.get_config()
  c.glow_vae.phase1_steps = 30
  state, bpd = train_on_fashion_mnist(c, 50)
  assert np.mean(bpd[25:30]) < np.mean(bpd[:5]) - 1.0  # phase 1: the VAE learns
  # phase 2 lowers the bound below where phase 1 ended (that it starts there exactly:
  # test_phase_two_starts_from_phase_one_bound)
  assert np.mean(bpd[45:50]) < np.mean(bpd[25:30])
  assert int(state.skipped) == 0
