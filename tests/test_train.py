"""Training system: every mode's step, the psi gradient rule, NaN skipping, 1 vs 4 devices, no recompiles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import config_lib, input_pipeline, losses, train
from adejax.families.ade import MODES
from configs import default

SHAPE = (16, 16, 1)


def tiny(mode="av-ade", **overrides):
  c = default.get_config("tiny")
  c.mode = mode
  c.train.ema_decay = 0.0  # these tests read the raw parameters; the EMA is tested on its own
  for key, value in overrides.items():
    section, name = key.split(".")
    c[section][name] = value
  config_lib.validate(c)
  return c


def images(n=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def run_steps(trainer, n, seed=0):
  state, out = trainer.init_state(0), []
  for i in range(n):
    state, metrics = trainer.step(state, trainer.global_batch(images(seed=seed + i)))
    out.append(jax.device_get(metrics))
  return state, out


def tree_max_diff(a, b):
  a, b = jax.device_get((a, b))
  return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_one_step_of_every_mode(mode):
  trainer = train.Trainer(tiny(mode), SHAPE, devices=jax.devices()[:1])
  init = trainer.init_state(0)
  state, (metrics,) = run_steps(trainer, 1)
  uses_flow, adversarial, mle = MODES[mode]
  assert ("flow" in state.params) == uses_flow
  assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))
  assert ("coverage_loss" in metrics) == mle and ("quality_loss" in metrics) == adversarial
  assert ("disc_loss" in metrics) == adversarial
  assert int(state.step) == 1 and int(state.skipped) == 0
  assert tree_max_diff(state.params["vae"], init.params["vae"]) > 0
  disc_moved = tree_max_diff(state.disc_params, init.disc_params) > 0
  assert disc_moved == adversarial


def test_adversarial_loss_gives_psi_exactly_zero_gradient():
  trainer = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:1])
  s = trainer.init_state(0)
  # move the flow off its identity initialisation so the check is not vacuous
  flow = jax.tree.map(lambda p: p + 0.1, s.params["flow"])
  params = {**s.params, "flow": flow}
  y = losses.dequantize(jnp.asarray(images()), jax.random.PRNGKey(1))
  grad = jax.jit(lambda mle, adv: jax.grad(lambda p: losses.generator_loss(
      p, s.batch_stats, s.disc_params, y, jax.random.PRNGKey(2), model=trainer.model,
      disc=trainer.family.disc, mle=mle, adversarial=adv, adv_weight=100.0)[0])(params),
      static_argnums=(0, 1))  # (compiled: eagerly, each of its ~850 operations compiles on its own)
  adv_only = grad(False, True)
  assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(adv_only["flow"]))
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(adv_only["vae"])) > 0
  mle_only = grad(True, False)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(mle_only["flow"])) > 0


def test_kl_warmup_weights_the_kl_by_step_and_logs_the_true_bound():
  warmup = 8
  trainer = train.Trainer(tiny("vae", **{"loss.kl_warmup_steps": warmup, "loss.free_bits": 0.0}), SHAPE,
                          devices=jax.devices()[:1])
  init = trainer.init_state(0)
  # move the posterior off the prior (it starts equal to it) so that the KL is not zero
  moved = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 0.3 if "posterior" in jax.tree_util.keystr(path) else p, init.params)
  init = init.replace(params=moved)
  batch = trainer.global_batch(images())
  nats_per_bit = np.prod(SHAPE) * np.log(2.0)
  for step in (0, 2, 6, 8, 20):
    state = jax.tree.map(jnp.copy, init).replace(step=jnp.asarray(step, init.step.dtype))
    _, m = trainer.step(state, batch)  # the step donates its state: give it a copy
    m = jax.device_get(m)
    kl = m["kl_bpd"] * nats_per_bit
    assert np.isfinite(m["coverage_loss"]) and 1.0 < kl < 1e6, (step, kl)  # not vacuous
    # the optimised loss is L_C - (1 - step/warmup) KL; the logged L_C and bits/dim are the real bound
    np.testing.assert_allclose(m["generator_loss"],
                               m["coverage_loss"] - (1 - min(1.0, step / warmup)) * kl,
                               rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(
        m["bpd"], (m["nll_bpd"] + m["kl_bpd"] - m["logdet_bpd"]) + 8.0, rtol=1e-5)


def test_non_finite_update_is_skipped_and_counted():
  trainer = train.Trainer(tiny("av-ade", **{"loss.adv_weight": float("inf")}), SHAPE,
                          devices=jax.devices()[:1])
  init = trainer.init_state(0)
  state, metrics = run_steps(trainer, 2)
  assert int(state.skipped) == 2 and metrics[-1]["skipped_updates"] == 2
  assert tree_max_diff(state.params, init.params) == 0.0  # generator never overwritten
  assert tree_max_diff(state.batch_stats, init.batch_stats) == 0.0
  assert train.all_finite(state.params)
  assert tree_max_diff(state.disc_params, init.disc_params) > 0  # the finite update still applies


def test_one_and_four_devices_agree_and_step_compiles_once():
  assert jax.device_count() >= 4, "conftest sets 4 host devices"
  train.clear_compiled_cache()  # compilations counted from zero (not those of an earlier test's Trainer)
  one = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:1])
  four = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:4])
  s1, m1 = run_steps(one, 3)
  s4, m4 = run_steps(four, 3)
  for a, b in zip(m1, m4):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-4, err_msg=k)
  # Parameters: Adamax's first updates are ~lr * sign(g), so a gradient that is zero up to rounding can
  # flip sign under a different reduction order and move that one weight by 2 lr. Everything else agrees.
  a, b = (np.concatenate([x.ravel() for x in jax.tree.leaves(jax.device_get(s.params))]) for s in (s1, s4))
  assert np.mean(np.abs(a - b) > 1e-5) < 5e-3
  assert np.max(np.abs(a - b)) <= 2 * 3 * one.config.optim.lr + 1e-6
  assert len(s4.params["vae"]["start"].sharding.device_set) == 4
  assert four._step._cache_size() == 1  # no recompilation after the first step


def test_class_conditional_step_trains_only_the_classes_it_sees():
  trainer = train.Trainer(tiny("av-ade", **{"model.num_classes": 10}), SHAPE, devices=jax.devices()[:1])
  init = jax.device_get(trainer.init_state(0))
  labels = np.arange(8) % 10  # classes 8 and 9 absent from the batch
  state, metrics = trainer.step(trainer.init_state(0), trainer.global_batch(images()),
                                trainer.global_batch(labels))
  assert all(np.isfinite(v) for v in jax.tree.leaves(jax.device_get(metrics)))
  state = jax.device_get(state)
  moved = lambda new, old: np.abs(new - old).max(axis=tuple(range(1, new.ndim)))
  # projection discriminator: embedding rows of seen classes move, unseen ones are untouched
  rows = moved(state.disc_params["Embed_0"]["embedding"], init.disc_params["Embed_0"]["embedding"])
  assert np.all(rows[:8] > 0) and np.all(rows[8:] == 0)
  # conditional weight norm in the VAE: per-class scales of unseen classes are untouched
  g_new, g_old = state.params["vae"]["out"]["g"], init.params["vae"]["out"]["g"]
  rows = moved(g_new, g_old)
  assert np.all(rows[:8] > 0) and np.all(rows[8:] == 0)
  with pytest.raises(ValueError, match="class-conditional"):
    trainer.step(trainer.init_state(0), trainer.global_batch(images()))
  samples = trainer.sample(state, 4)  # default labels 0..3
  assert samples.shape == (4,) + SHAPE


def test_evaluation_uses_batch_norm_statistics_re_estimated_at_the_current_parameters():
  """A training step stores its batch's statistics; `with_eval_batch_stats` re-estimates them on
  given training images, so eval mode on those images reproduces the batch-statistics likelihood
  exactly (with an exponential running average it would not), and the training state is untouched."""
  trainer = train.Trainer(tiny("v-ade"), SHAPE, devices=jax.devices()[:1])
  state, _ = run_steps(trainer, 3)
  refresh = images(16, seed=7)
  view = trainer.with_eval_batch_stats(state, refresh, chunk=16)
  assert tree_max_diff(view.batch_stats, state.batch_stats) > 0  # re-estimated
  y = losses.dequantize(jnp.asarray(refresh), jax.random.PRNGKey(0))
  variables = lambda s: {"params": s.params, "batch_stats": s.batch_stats}
  batch_mode = trainer.model.apply(variables(state), y, jax.random.PRNGKey(1), train=True,
                                   mutable=["batch_stats"])[0]
  eval_mode = trainer.model.apply(variables(view), y, jax.random.PRNGKey(1), train=False)
  stale = trainer.model.apply(variables(state), y, jax.random.PRNGKey(1), train=False)
  np.testing.assert_allclose(eval_mode["features"], batch_mode["features"], rtol=1e-4, atol=1e-4)
  assert float(jnp.max(jnp.abs(stale["features"] - batch_mode["features"]))) > 1e-3


def test_bits_per_dim_at_28x28_count_784_dimensions():
  """Trainer.evaluate at Fashion-MNIST's native size: its bound is the per-example ELBO nats converted
  with D = 28*28*1 = 784 (a padded 32x32 model would divide by 1024)."""
  c = tiny("vae", **{"data.image_size": 28})
  shape = (28, 28, 1)
  trainer = train.Trainer(c, shape, devices=jax.devices()[:1])
  state = trainer.init_state(0)
  x = np.random.default_rng(0).integers(0, 256, (8,) + shape).astype(np.uint8)
  data = input_pipeline.ImageData(x, np.zeros(8, np.int32))
  out = trainer.evaluate(state, data, batch_size=8, seed=3)
  y = losses.dequantize(jnp.asarray(x), jax.random.fold_in(jax.random.PRNGKey(3), 0))
  nll = losses.heldout_nll(state.params, state.batch_stats, y, jax.random.fold_in(jax.random.PRNGKey(3), 0),
                           model=trainer.model)["elbo"]
  expected = (float(jnp.mean(nll)) + 784 * np.log(256.0)) / (784 * np.log(2.0))
  np.testing.assert_allclose(out["bpd_elbo"], expected, rtol=1e-5)
  assert abs(out["bpd_elbo"] - (float(jnp.mean(nll)) + 1024 * np.log(256.0)) / (1024 * np.log(2.0))) > 0.01
  np.testing.assert_allclose(losses.bits_per_dim(jnp.zeros(()), 784), 8.0, rtol=1e-7)  # uniform model


def test_per_example_bits_per_dim_average_to_the_evaluated_bound():
  """Trainer.per_example_bpd (notebooks: best- and worst-explained images) is each image's ELBO bound:
  image by image the bound of `losses.heldout_nll` in bits/dim, and with the same batches and seed
  its mean is `evaluate`'s bpd_elbo."""
  trainer = train.Trainer(tiny("v-ade"), SHAPE, devices=jax.devices()[:1])
  state, _ = run_steps(trainer, 2)
  x = images(16, seed=5)
  x[:4] = 0  # blank images: bounds far from those of noise (worse, for this untrained model)
  per_image = trainer.per_example_bpd(state, x, seed=3, chunk=8)
  out = trainer.evaluate(state, input_pipeline.ImageData(x, np.zeros(16, np.int32)), batch_size=8, seed=3)
  assert per_image.shape == (16,)
  np.testing.assert_allclose(per_image.mean(), out["bpd_elbo"], rtol=1e-5)
  rng = jax.random.fold_in(jax.random.PRNGKey(3), 1)  # the second chunk's key
  nll = losses.heldout_nll(state.params, state.batch_stats, losses.dequantize(jnp.asarray(x[8:]), rng), rng,
                           model=trainer.model)["elbo"]
  np.testing.assert_allclose(per_image[8:], losses.bits_per_dim(nll, 16 * 16), rtol=1e-5)
  assert abs(per_image[:4].mean() - per_image[4:].mean()) > 1.0


def test_the_ema_follows_its_formula_and_evaluation_sampling_and_samples_npz_read_it(tmp_path):
  from adejax import evaluate

  trainer = train.Trainer(tiny("av-ade", **{"train.ema_decay": 0.5}), SHAPE, devices=jax.devices()[:1])
  state = trainer.init_state(0)
  hand = jax.device_get(state.params)  # the EMA starts as a copy of the initial parameters
  for i in range(3):
    state, _ = trainer.step(state, trainer.global_batch(images(seed=i)))
    hand = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, hand, jax.device_get(state.params))
  assert tree_max_diff(state.ema_params, state.params) > 1e-4  # not vacuous
  assert tree_max_diff(state.ema_params, hand) < 1e-6
  # everything that shows the model reads the EMA: a state whose EMA is another model's parameters
  other = trainer.init_state(1).params
  swapped = state.replace(ema_params=other)
  as_params = state.replace(params=other, ema_params=other)
  data = input_pipeline.ImageData(images(16), np.zeros(16, np.int32))
  evaluate_kw = dict(batch_size=8, num_examples=16)
  assert trainer.evaluate(swapped, data, **evaluate_kw) == trainer.evaluate(as_params, data, **evaluate_kw)
  assert trainer.evaluate(swapped, data, **evaluate_kw) != trainer.evaluate(state, data, **evaluate_kw)
  np.testing.assert_array_equal(trainer.sample(swapped, 4), trainer.sample(as_params, 4))
  assert np.abs(trainer.sample(swapped, 4) - trainer.sample(state, 4)).max() > 1e-4
  np.testing.assert_array_equal(trainer.reconstruct(swapped, images(4)), trainer.reconstruct(as_params, images(4)))
  assert trainer.latent_use(swapped, data, 16) == trainer.latent_use(as_params, data, 16)
  npz = lambda s, d: np.load(evaluate.write_samples_npz(trainer, s, str(tmp_path / d), 8, 4))["images"]
  np.testing.assert_array_equal(npz(swapped, "a"), npz(as_params, "b"))
  assert not np.array_equal(npz(swapped, "a"), npz(state, "c"))


def test_flow_start_step_keeps_f_psi_still_until_then():
  trainer = train.Trainer(tiny("v-ade", **{"loss.flow_start_step": 2}), SHAPE, devices=jax.devices()[:1])
  init = trainer.init_state(0)
  state, _ = run_steps(trainer, 2)
  assert tree_max_diff(state.params["flow"], init.params["flow"]) == 0.0
  assert tree_max_diff(state.params["vae"], init.params["vae"]) > 0
  later, _ = trainer.step(state, trainer.global_batch(images(seed=5)))
  assert tree_max_diff(later.params["flow"], init.params["flow"]) > 0
