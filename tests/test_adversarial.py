"""The adversarial half: a discriminator that leads on real data, matching ranges, the paper's GAN
generator, the gradient-penalty forms and the instruments that show whether L_Q matters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import config_lib, input_pipeline, losses, train
from adejax.families import base
from adejax.families.ade import MODES, generator_kind
from adejax.models import discriminators, flows
from configs import default
from test_train import SHAPE, images, tiny


@pytest.mark.slow
def test_discriminator_leads_on_real_fashion_mnist_with_the_papers_penalty(fashion_mnist_dir):
  """A few dozen GAN steps at small width on real data, two-sided penalty of weight 100: the
  discriminator classifies most real and generated images right (it was behind, with fake logits far
  above real ones, under LeCun initialisation) and the penalty stays finite."""
  c = default.get_config()
  c.mode, c.data.idx_dir = "gan", fashion_mnist_dir
  c.model.width = c.model.disc_width = 0.125
  c.train.batch_size = 32
  c.optim.lr, c.optim.b1 = 2e-4, 0.5
  assert c.loss.gp_weight == 100.0 and c.loss.gp_form == "two-sided"
  data = input_pipeline.load_split(c.data, "train", limit=4096)
  trainer = train.Trainer(c, data.images.shape[1:], devices=jax.devices()[:1])
  order = input_pipeline.BatchOrder(len(data), c.train.batch_size, c.seed)
  state, history = trainer.init_state(0), []
  for _, (batch, _) in zip(range(60), input_pipeline.train_batches(data, order, 0)):
    state, metrics = trainer.step(state, trainer.global_batch(batch))
    history.append(jax.device_get(metrics))
  last = history[-20:]
  accuracy = np.mean([m["disc_accuracy"] for m in last])
  margin = np.mean([m["real_logit"] - m["fake_logit"] for m in last])
  print(f"last 20 steps: discriminator accuracy {accuracy:.2f}, real - fake logit {margin:.2f}")
  assert accuracy > 0.5 and margin > 0.0
  assert all(np.isfinite(m["gradient_penalty"]) for m in history)
  assert int(state.skipped) == 0


def test_fresh_discriminator_slope_is_near_one():
  """The input gradient of a fresh discriminator has a norm of order 1 on images in [-1, 1] other
  than the noise it was calibrated on, so the two-sided penalty starts near zero (Flax's default
  initialisation gave about 0.06 for the conv and 0.08 for the residual discriminator)."""
  x = jnp.sign(jax.random.normal(jax.random.key(0), (16, 28, 28, 1)))  # binary images
  for arch in discriminators.DISCRIMINATORS:
    d = discriminators.Discriminator(arch, 0.25)
    params = {"params": jax.jit(discriminators.init_params, static_argnums=(0, 2))(d, jax.random.key(1),
                                                                                 (28, 28, 1))}
    grads = jax.jit(jax.grad(lambda v: d.apply(params, v).sum()))(x)
    slope = float(jnp.mean(jnp.linalg.norm(grads.reshape(16, -1), axis=1)))
    print(arch, "input slope at initialisation", slope)
    assert 0.3 < slope < 3.0, (arch, slope)


def test_real_and_generated_images_reach_the_discriminator_in_the_same_interval():
  trainer = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:1])
  state = trainer.init_state(0)
  # a decoder whose output lies far outside the data's feature range (bias of the output layer)
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 8.0 if "out" in jax.tree_util.keystr(path) and path[-1].key == "b" else p,
      state.params)
  fake = trainer.model.apply({"params": params, "batch_stats": state.batch_stats},
                             jax.random.key(0), 8, method="generate")
  assert float(fake.max()) > 1.0  # the inverse logit overshoots the data range [0, 1]
  real = losses.dequantize(jnp.asarray(images()), jax.random.key(1))
  for batch in (discriminators.discriminator_input(fake), discriminators.discriminator_input(real)):
    assert float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0
  # and those overshooting pixels lie in the flat tail of the inverse preprocessing
  assert float(flows.saturated_fraction(fake, "logit", 0.05)) > 0.5
  assert float(flows.saturated_fraction(real, "logit", 0.05)) == 0.0


@pytest.mark.parametrize("form", config_lib.GP_FORMS)
def test_gradient_penalty_forms_on_a_linear_discriminator(form):
  """logit = w . x has input gradient w everywhere: two-sided (|w| - 1)^2, one-sided
  max(0, |w| - 1)^2, R1 |w|^2."""
  real = jax.random.normal(jax.random.key(0), (4, 2, 2, 1))
  fake = jax.random.normal(jax.random.key(1), (4, 2, 2, 1))
  for norm in (0.5, 3.0):
    w = norm * jnp.ones(4) / 2.0
    logit_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    gp = float(losses.gradient_penalty(logit_fn, real, fake, jax.random.key(2), form))
    expected = {"two-sided": (norm - 1) ** 2, "one-sided": max(0.0, norm - 1) ** 2, "r1": norm ** 2}[form]
    np.testing.assert_allclose(gp, expected, rtol=1e-5, atol=1e-6)


def test_discriminator_optimiser_follows_the_generator_unless_set():
  c = tiny("av-ade")
  c.optim.lr = 1e-4
  assert base.discriminator_optim(c.optim) == (1e-4, c.optim.b1, c.optim.b2)
  c.optim.disc_lr, c.optim.disc_b1 = 3e-4, 0.0
  assert base.discriminator_optim(c.optim) == (3e-4, 0.0, c.optim.b2)
  c.optim.disc_b2 = 1.5
  with pytest.raises(config_lib.ConfigError, match="optim.disc_b2"):
    config_lib.validate(c)


@pytest.mark.parametrize("mode", ["av-ade", "gan", "vae"])
def test_gradient_norm_instruments(mode):
  trainer = train.Trainer(tiny(mode), SHAPE, devices=jax.devices()[:1])
  state, metrics = trainer.step(trainer.init_state(0), trainer.global_batch(images()))
  norms = jax.device_get(trainer.gradient_norms(state, trainer.global_batch(images(seed=1))))
  _, adversarial, mle = MODES[mode]
  assert ("grad_norm_coverage" in norms) == mle and ("grad_norm_adversarial" in norms) == adversarial
  assert all(np.isfinite(v) and v > 0 for v in norms.values()), norms
  metrics = jax.device_get(metrics)
  if adversarial:
    for key in ("real_logit", "fake_logit", "disc_accuracy", "gradient_penalty", "saturated_fraction"):
      assert np.isfinite(metrics[key]), key
  if mle:
    assert "flow_logdet_bpd" in metrics


def test_gan_generator_is_the_sngan_generator_from_one_latent_vector():
  c = tiny("gan")
  assert generator_kind(c) == "vector"
  trainer = train.Trainer(c, SHAPE, devices=jax.devices()[:1])
  params = trainer.init_state(0).params["vae"]
  assert not any(k.startswith("stochastic_") for k in params)  # no top-down latent levels
  dense = params["generator"]["Dense_0"]["kernel"]
  assert dense.shape[0] == c.model.latent_dim  # dense from z to the lowest resolution
  state = trainer.init_state(0)
  assert "generator" in state.batch_stats["vae"]  # SNGAN's batch norm
  new, _ = trainer.step(state, trainer.global_batch(images()))
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new.batch_stats, trainer.init_state(0).batch_stats)
  assert max(jax.tree.leaves(moved)) > 0  # a training step updates the running averages
  # the likelihood models keep the hierarchical generator
  assert generator_kind(tiny("av-ade")) == "hierarchical"


def _changed(a, b) -> bool:
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_adv_start_step_no_adversarial_gradient_before_it_and_the_full_weight_after():
  """loss.adv_start_step = 3 in the GAN mode (whose generator has only the adversarial term): at step 0
  the generator gets no gradient (Adamax moves nothing) and its loss is 0; at step 3 it moves, and its
  loss is the full adv_weight times the quality term."""
  config = tiny("gan", **{"loss.adv_start_step": 3})
  trainer = train.Trainer(config, SHAPE, devices=jax.devices()[:1])
  for step, active in ((0, False), (2, False), (3, True), (7, True)):
    state = trainer.init_state(0).replace(step=jnp.array(step, jnp.int32))
    before = jax.device_get(state.params)
    new, metrics = jax.device_get(trainer.step(state, trainer.global_batch(images())))
    assert _changed(before, new.params) == active, step
    expected = config.loss.adv_weight * metrics["quality_loss"] if active else 0.0
    np.testing.assert_allclose(metrics["generator_loss"], expected, rtol=1e-6, err_msg=str(step))
    assert abs(metrics["quality_loss"]) > 1e-3  # the term exists either way; only its weight changes


def test_disc_steps_update_the_discriminator_that_often_on_distinct_fake_batches(monkeypatch):
  """train.disc_steps = 2 (family ade, GAN mode): two discriminator updates per generator update, each
  against its own generated batch (read from inside the compiled step)."""
  config = tiny("gan", **{"train.disc_steps": 2})
  seen = []
  real_input = discriminators.discriminator_input

  def recorded(y):
    jax.debug.callback(lambda v: seen.append(np.asarray(v)), y)
    return real_input(y)

  monkeypatch.setattr(discriminators, "discriminator_input", recorded)
  train.clear_compiled_cache()  # traced afresh, with the recording (not an earlier test's compiled step)
  trainer = train.Trainer(config, SHAPE, devices=jax.devices()[:1])
  new, _ = trainer.step(trainer.init_state(0), trainer.global_batch(images()))
  jax.block_until_ready(new)
  distinct = []  # [array, times seen]
  for y in seen:
    match = next((d for d in distinct if d[0].shape == y.shape and np.array_equal(d[0], y)), None)
    if match:
      match[1] += 1
    else:
      distinct.append([y, 1])
  # the real batch reaches the discriminator once per update, each update with a new generated batch
  assert sorted(n for _, n in distinct) == [1, 1, 2], [n for _, n in distinct]
  counts = lambda tree: {int(x) for path, x in jax.tree_util.tree_leaves_with_path(tree)
                         if getattr(path[-1], "name", "") == "count"}
  assert counts(new.opt_state["disc"]) == {2} and counts(new.opt_state["generator"]) == {1}
