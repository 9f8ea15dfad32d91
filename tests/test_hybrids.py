"""papers/004's VAE-GAN hybrids (family "hybrid"): one step of every model on a tiny config, which
groups each schedule updates, WGAN-GP's 5 critic updates per generator update, the likelihoods against
their closed forms, the sign of the adversarial terms, and evaluation of a trained run."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adejax import config_lib, losses, train
from adejax.models import hybrids

from tests.test_glow_vae import steps
from tests.test_train import images, tree_max_diff

SHAPE = (16, 16, 1)
# model -> the groups its step updates
GROUPS = {"vae": {"generator", "encoder"}, "dcgan": {"generator", "disc"}, "wgan_gp": {"generator", "disc"},
          "aae": {"generator", "encoder", "code"}, "aae_pp": {"generator", "encoder", "disc", "code"},
          "aae_gan": {"generator", "encoder", "disc", "code"}, "veegan": {"generator", "encoder", "disc"}}


def tiny(model, **overrides):
  c = config_lib.base_config()
  c.model.family, c.optim.name, c.optim.b1, c.optim.b2 = "hybrid", "adam", 0.5, 0.9
  config_lib.make_tiny(c, num_steps=4)
  c.data.image_size, c.data.resize = 16, "resize"
  c.hybrid.model = model
  for k, v in overrides.items():
    c.hybrid[k] = v
  config_lib.validate(c)
  return c


@pytest.mark.parametrize("model,likelihood", [(m, "bernoulli") for m in hybrids.MODELS] +
                         [("vae", "quantized_normal"), ("aae", "quantized_normal")])
def test_one_step_of_every_model_updates_exactly_its_groups(model, likelihood):
  trainer = train.Trainer(tiny(model, likelihood=likelihood), SHAPE, devices=jax.devices()[:1])
  assert set(trainer.family.groups) == GROUPS[model]
  init = jax.device_get(trainer.init_state(0))
  state, (m,) = steps(trainer, trainer.init_state(0), 1)
  assert int(state.step) == 1 and int(state.skipped) == 0 and np.isfinite(m["generator_loss"]), m
  for name, group in trainer.family.groups.items():
    before, after = (group.select(getattr(s, group.tree)) for s in (init, state))
    assert tree_max_diff(after, before) > 0, name
  for key in set(init.params) - {k for g in trainer.family.groups.values() if g.tree == "params" for k in g.keys}:
    assert tree_max_diff(state.params[key], init.params[key]) == 0.0, key
  images = trainer.sample(state, 4)
  assert images.shape == (4,) + SHAPE and np.all(np.isfinite(images))


def test_one_list_of_hybrid_models_with_one_schedule_each():
  """models/hybrids.MODELS is the list: the family's schedule table, papers/004's learning-rate grids
  and the config file's variants all have exactly its models; each schedule's declared groups are the
  family's parameter groups."""
  from adejax.families import hybrids as family
  from configs import cifar_hybrids
  from configs.papers import p004

  assert tuple(family.SCHEDULES) == hybrids.MODELS == tuple(p004.HYBRID_LR_GRIDS) == cifar_hybrids.MODELS
  for model, schedule in family.SCHEDULES.items():
    assert set(schedule.groups) == GROUPS[model] and hasattr(family.HybridFamily, schedule.step), model


@pytest.mark.parametrize("arch", hybrids.ARCHS)
def test_veegan_and_the_sngan_networks_step(arch):
  trainer = train.Trainer(tiny("veegan", arch=arch), SHAPE, devices=jax.devices()[:1])
  state, (m,) = steps(trainer, trainer.init_state(0), 1)
  assert int(state.skipped) == 0 and np.isfinite(m["generator_loss"]), m


def test_paper_networks_are_papers_004_tables_6_and_7_at_28x28_and_the_wgan_dcgan_at_32():
  """Kernel shapes layer by layer: the ColorMNIST generator (Table 7: linear 3136, transposed 5x5 convs
  of 64 (stride 2), 32 (1), C (2)), its transposed encoder, the discriminator (Table 6: 5x5 convs of 8,
  16, 32, 64, 64 with strides 2, 1, 2, 1, 2, then one logit); at 32x32 the DCGAN of the WassersteinGAN
  code (4x4 start of 256 channels, halving to 64, 4x4 kernels). Generators use ReLU, not ELU."""
  for size, dense, gen, enc, disc in [
      (28, 7 * 7 * 64, [(5, 5, 64, 64), (5, 5, 64, 32), (5, 5, 32, 3)],
       [(5, 5, 3, 32), (5, 5, 32, 64), (5, 5, 64, 64)],
       [(5, 5, 3, 8), (5, 5, 8, 16), (5, 5, 16, 32), (5, 5, 32, 64), (5, 5, 64, 64)]),
      (32, 4 * 4 * 256, [(4, 4, 256, 128), (4, 4, 128, 64), (4, 4, 64, 3)],
       [(4, 4, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256)], [(4, 4, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256)])]:
    shape = (size, size, 3)
    m = hybrids.HybridModel(shape, latent_dim=10)
    y = jnp.full((2,) + shape, 0.5)
    v = jax.eval_shape(lambda: m.init(jax.random.key(0), y, jax.random.key(1), train=True))["params"]
    g, e = v["generator"], v["encoder"]
    assert g["Dense_0"]["kernel"].shape == (10, dense)
    assert [g[f"ConvTranspose_{i}"]["kernel"].shape for i in range(len(gen))] == gen
    assert [e[f"Conv_{i}"]["kernel"].shape for i in range(len(enc))] == enc
    assert e["Dense_0"]["kernel"].shape[-1] == 20 and len(e) == len(enc) + 1
    d = hybrids.PaperDiscriminator(shape)
    dv = jax.eval_shape(lambda: d.init(jax.random.key(0), y))["params"]
    assert [dv[f"Conv_{i}"]["kernel"].shape for i in range(len(disc))] == disc
    assert dv["Dense_0"]["kernel"].shape == (4 * 4 * disc[-1][-1], 1)  # the strides end at 4x4
    out = jax.eval_shape(lambda p: m.apply({"params": p}, jnp.zeros((2, 10)), train=True, method="decode_raw",
                                           mutable=["batch_stats"])[0], v)
    assert out.shape == (2,) + shape
  params = m.init(jax.random.key(0), jnp.full((2, 32, 32, 3), 0.5), jax.random.key(1), train=True)
  jaxpr = str(jax.make_jaxpr(lambda z: m.apply(params, z, method="decode_raw"))(jnp.zeros((2, 10))))
  assert "max" in jaxpr and "expm1" not in jaxpr and " exp " not in jaxpr
  with pytest.raises(config_lib.ConfigError, match="hybrid.arch='sngan'"):
    c = tiny("vae")
    c.data.image_size = 24
    config_lib.validate(c)


def test_veegans_joint_discriminator_is_table_8s_head_on_both_trunks():
  """papers/004 Table 8 at 28x28: the image discriminator's trunk (Table 6's convolutions, no logit)
  and the code discriminator's trunk (3 x 1000 leaky dense, no logit) on z, the code features tiled
  over the trunk's 4x4 map and concatenated (64 + 1000 channels), conv 3x3 and conv 2x2 of 512
  (unpadded: 4x4 -> 2x2 -> 1x1), then the logit. It reads both x and z. The "small" head stays an
  option: one dense layer on z, one on both."""
  shape = (28, 28, 3)
  x, z = jnp.full((2,) + shape, 0.5), jnp.zeros((2, 10))
  d = hybrids.JointDiscriminator(image_shape=shape)
  p = d.init(jax.random.key(0), x, z)["params"]
  kernels = {k: v["kernel"].shape for k, v in p.items()}
  table6 = [(5, 5, 3, 8), (5, 5, 8, 16), (5, 5, 16, 32), (5, 5, 32, 64), (5, 5, 64, 64)]
  assert [kernels[f"Conv_{i}"] for i in range(7)] == table6 + [(3, 3, 64 + 1000, 512), (2, 2, 512, 512)]
  assert [kernels[f"Dense_{i}"] for i in range(4)] == [(10, 1000), (1000, 1000), (1000, 1000), (512, 1)]
  assert len(kernels) == 11
  p = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(1), a.shape), p)
  base = d.apply({"params": p}, x, z)
  assert base.shape == (2,)
  assert float(jnp.max(jnp.abs(d.apply({"params": p}, x, z + 1.0) - base))) > 1e-4
  assert float(jnp.max(jnp.abs(d.apply({"params": p}, x * 0.2, z) - base))) > 1e-4
  small = hybrids.JointDiscriminator(image_shape=shape, head="small")
  sp = jax.eval_shape(lambda: small.init(jax.random.key(0), x, z))["params"]
  assert {k: v["kernel"].shape for k, v in sp.items() if k.startswith("Dense")} == {
      "Dense_0": (10, 1000), "Dense_1": (4 * 4 * 64 + 1000, 1000), "Dense_2": (1000, 1)}
  c = tiny("veegan")
  assert c.hybrid.joint_head == "table8" and config_lib.base_config().hybrid.joint_head_width == 512
  c.hybrid.joint_head = "big"
  with pytest.raises(config_lib.ConfigError, match="hybrid.joint_head"):
    config_lib.validate(c)


@pytest.mark.parametrize("model", ["aae_pp", "aae_gan"])
def test_the_adversarial_autoencoders_update_in_algorithm_4s_order(model, monkeypatch):
  """papers/004 Algorithm 4: encoder, then generator, then data discriminator, then code discriminator,
  each seeing the updates before it. Recorded from an eager step: which groups each update moved, and
  which groups had already moved (relative to the step's start) when it began."""
  from adejax.families import base

  trainer = train.Trainer(tiny(model), SHAPE, devices=jax.devices()[:1])
  family, start = trainer.family, jax.device_get(trainer.init_state(0))
  moved = lambda s, name: tree_max_diff(family.groups[name].select(getattr(s, family.groups[name].tree)),
                                        family.groups[name].select(getattr(start, family.groups[name].tree))) > 0
  log, original = [], base.update_groups

  def recording(state, groups, names, loss_fn):
    log.append((tuple(names), sorted(n for n in groups if moved(state, n))))
    return original(state, groups, names, loss_fn)

  monkeypatch.setattr(base, "update_groups", recording)
  state = trainer.init_state(0)
  family.train_step(state, jnp.asarray(images(seed=0)), None, jax.random.key(0), lambda x: x)
  assert log == [(("encoder",), []), (("generator",), ["encoder"]), (("disc",), ["encoder", "generator"]),
                 (("code",), ["disc", "encoder", "generator"])]


def test_wgan_gp_takes_exactly_five_critic_updates_per_generator_update():
  trainer = train.Trainer(tiny("wgan_gp"), SHAPE, devices=jax.devices()[:1])
  state, _ = steps(trainer, trainer.init_state(0), 2)
  count = lambda name: int(optax.tree_utils.tree_get(state.opt_state[name], "count"))
  assert (count("disc"), count("generator")) == (10, 2)


def test_likelihoods_match_their_closed_forms():
  m = hybrids.HybridModel(SHAPE, width=0.0625, latent_dim=4)
  y = jax.random.uniform(jax.random.key(0), (3,) + SHAPE)
  z = jax.random.normal(jax.random.key(1), (3, 4))
  v = m.init(jax.random.key(2), y, jax.random.key(3))
  logits = m.apply(v, z, method="decode_raw")
  p = jax.nn.sigmoid(logits)
  expected = -jnp.sum(y * jnp.log(p) + (1 - y) * jnp.log1p(-p), axis=(1, 2, 3))
  np.testing.assert_allclose(m.apply(v, y, z, method="bernoulli_nll"), expected, rtol=1e-5)
  # quantized normal: -log N(2y - 1 | G(z), sigma) - D log 2 = -log of the density of y itself
  out = m.apply(v, y, jax.random.key(4))
  sigma = float(jnp.exp(v["params"]["log_sigma"]))
  d = y[0].size
  direct = jnp.sum(jax.scipy.stats.norm.logpdf(y, (out["mean"] + 1) / 2, sigma / 2), axis=(1, 2, 3))
  np.testing.assert_allclose(-losses.gaussian_nll(out["features"], out["mean"], out["log_sigma"])
                             + out["logdet"], direct, rtol=1e-5)
  assert out["logdet"].shape == (3,) and np.allclose(out["logdet"], d * np.log(2.0))


def test_adversarial_terms_push_towards_what_the_discriminator_calls_real():
  """R(d) = -logit d decreases when the generated input moves towards the discriminator's 'real' side,
  for the image discriminator (GAN terms) and the code discriminator (the AAEs' encoder term)."""
  w = jnp.arange(1.0, 5.0)
  logit = lambda z: z @ w  # "real" lies along +w
  z = jnp.zeros((2, 4))
  grad = jax.grad(lambda z: losses.quality_loss(logit(z)))(z)
  assert jnp.all(-grad @ w > 0)  # a descent step on R increases the logit
  # the code discriminator is trained with prior samples as "real": its logit rises on them
  c = hybrids.CodeDiscriminator(width=16)
  k = jax.random.split(jax.random.key(0), 3)
  prior, posterior = jax.random.normal(k[0], (256, 4)), 3.0 + 0.1 * jax.random.normal(k[1], (256, 4))
  params = c.init(k[2], prior)
  for _ in range(50):
    g = jax.grad(lambda p: losses.discriminator_loss(c.apply(p, prior), c.apply(p, posterior)))(params)
    params = jax.tree.map(lambda a, b: a - 0.05 * b, params, g)
  assert float(jnp.mean(c.apply(params, prior))) > 0 > float(jnp.mean(c.apply(params, posterior)))


def test_a_trained_hybrid_evaluates_with_the_critic_and_marginal_kl(tmp_path):
  from adejax import estimate_kl, evaluate, input_pipeline
  from tests.test_input_pipeline import make_idx_dir

  (tmp_path / "idx").mkdir()
  make_idx_dir(tmp_path / "idx", n_train=40, n_test=16)
  c = tiny("aae_gan")
  c.data.idx_dir = str(tmp_path / "idx")
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(c, workdir)
  c = config_lib.load_run_config(workdir)
  evaluate.apply_overrides(c, ["eval.critic_steps=5"])  # (tiny configs skip the critic)
  out = evaluate.evaluate_run(c, workdir)
  assert np.isfinite(out["wasserstein_critic"]) and out["nonfinite_sample_fraction"] == 0.0
  kl = estimate_kl.estimate_run(c, workdir, num_posteriors=40, num_samples=100, classifier_steps=10)
  assert np.isfinite(kl["marginal_kl_monte_carlo"]) and np.isfinite(kl["marginal_kl_density_model_maf"])
  # N(0, I) prior: the average KL is the closed form over the 40 posteriors (papers/004 Table 1), not
  # a Monte Carlo mean; here computed in float64 numpy from the posteriors estimate_kl reads
  trainer, state, _ = evaluate.restore_trainer(c, workdir)
  data = input_pipeline.load_split(c.data, "train", limit=40)
  means, log_stds = (np.asarray(a, np.float64) for a in estimate_kl.posteriors(
      trainer, state, data.images, data.labels, 8))
  closed = np.mean(np.sum(0.5 * (np.exp(2 * log_stds) + means ** 2 - 1.0) - log_stds, axis=1))
  np.testing.assert_allclose(kl["average_kl"], closed, rtol=1e-5)


class _Linear(nn.Module):
  """logit = <w, flatten(x)> + b: a discriminator whose every term has a closed form."""

  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


def _sub_steps(fam, state, monkeypatch, rng):
  """One eager step of `fam` with every group update replaced by a recorder (the state is left as it
  is, so every sub-step sees the same parameters): {group names: (loss, loss_fn, tree)}."""
  from adejax.families import base

  log = {}

  def record(state, groups, names, loss_fn):
    tree = getattr(state, groups[names[0]].tree)
    loss, aux = loss_fn(tree)
    log[tuple(names)] = (float(loss), loss_fn, tree)
    return state, loss, aux, jnp.array(True)

  with monkeypatch.context() as m:
    m.setattr(base, "update_groups", record)
    fam.train_step(state, jnp.asarray(images(seed=5)), None, rng, lambda x: x)
  return log


def _fresh(model, linear=False, **overrides):
  """A family of its own (not a Trainer's, which later tests share) and a state at its initialisation;
  with `linear`, both discriminators are `_Linear`."""
  from adejax import families

  fam = families.make(tiny(model, **overrides), SHAPE)
  params, batch_stats, disc_params = jax.jit(fam.init)(jax.random.key(0))
  if linear:
    fam.disc, fam.code_disc = _Linear(), _Linear()
    disc_params = {"data": _Linear().init(jax.random.key(1), jnp.zeros((1,) + SHAPE))["params"],
                   "code": _Linear().init(jax.random.key(2), jnp.zeros((1, fam.h.latent_dim)))["params"]}
  zero = jnp.array(0, jnp.int32)
  state = train.TrainState(step=zero, rng=jax.random.key_data(jax.random.key(0)), params=params,
                           batch_stats=batch_stats, disc_params=disc_params, opt_state={}, ema_params={},
                           skipped=zero, skip_streak=zero)
  return fam, state


def _step_inputs(fam, state, rng):
  """y, ẑ ~ q(z | y), x̂ = G(ẑ) and z ~ p(z) as the step draws them (its key split)."""
  k = dict(zip(("deq", "post", "prior", "gp", "gen"), jax.random.split(rng, 5)))
  y = losses.dequantize(jnp.asarray(images(seed=5)), k["deq"])
  z_hat = fam._posterior(state.params, y, k["post"])[2]
  z = jax.random.normal(k["prior"], (y.shape[0], fam.h.latent_dim))
  gen = lambda codes: np.asarray(fam._generate(state.params, state.batch_stats, codes)[0], np.float64)
  return np.asarray(y, np.float64), np.asarray(z_hat, np.float64), gen(z_hat), np.asarray(z, np.float64), gen(z)


@pytest.mark.parametrize("model", ["aae_pp", "aae_gan"])
def test_the_adversarial_autoencoders_sub_step_losses_are_eqs_10_to_13(model, monkeypatch):
  """papers/004 appendix C with linear discriminators, every term computed here in float64 numpy:
  R_D(x) = -log D(x) + log(1 - D(x)) = -logit D(x) and R_C likewise, ||.||_1 summed over pixels.
  Encoder (eq. 12): lambda_E ||x - x̂||_1 + R_C(ẑ), no image-discriminator term (its loss is the
  same whatever D is). Generator (eq. 10; AAE-GAN eq. 11): lambda_G ||x - x̂||_1 + R_D(x̂) [+ R_D(G(z))].
  Data discriminator (Algorithm 4 line 8, halved): -log D(x) - log(1 - D(x̂)), AAE-GAN's two fakes
  each weighted one half. Code discriminator (eq. 13): -log(1 - C(ẑ)) - log C(z)."""
  rng = jax.random.key(7)
  fam, state = _fresh(model, linear=True, rec_weight_encoder=2.0, rec_weight_generator=0.5)
  log = _sub_steps(fam, state, monkeypatch, rng)
  y, z_hat, x_hat, z, x_gen = _step_inputs(fam, state, rng)
  n = y.shape[0]
  lin = lambda p, v: v.reshape(len(v), -1) @ np.asarray(p["Dense_0"]["kernel"], np.float64)[:, 0] + float(
      p["Dense_0"]["bias"][0])
  d = lambda x: lin(state.disc_params["data"], 2.0 * np.clip(x, 0.0, 1.0) - 1.0)  # discriminator_input
  c = lambda v: lin(state.disc_params["code"], v)
  l1 = lambda a, b: np.abs(a - b).reshape(n, -1).sum(1)
  softplus = lambda v: np.logaddexp(0.0, v)
  gan = model == "aae_gan"
  expected = {
      ("encoder",): np.mean(fam.h.rec_weight_encoder * l1(y, x_hat) - c(z_hat)),
      ("generator",): np.mean(fam.h.rec_weight_generator * l1(y, x_hat) - d(x_hat) - (d(x_gen) if gan else 0.0)),
      ("disc",): np.mean(softplus(-d(y))) + (0.5 * (np.mean(softplus(d(x_hat))) + np.mean(softplus(d(x_gen))))
                                             if gan else np.mean(softplus(d(x_hat)))),
      ("code",): np.mean(softplus(c(z_hat))) + np.mean(softplus(-c(z))),
  }
  assert set(log) == set(expected)
  for names, value in expected.items():
    np.testing.assert_allclose(log[names][0], value, rtol=2e-5, err_msg=str(names))
  assert abs(np.mean(d(x_hat))) > 1e-3 and abs(np.mean(c(z_hat))) > 1e-3  # the terms are not vacuous
  # another data discriminator: the encoder's loss is unchanged, the generator's is not
  other = state.replace(disc_params={**state.disc_params, "data": jax.tree.map(
      lambda p: 3.0 * p + 0.5, state.disc_params["data"])})
  again = _sub_steps(fam, other, monkeypatch, rng)
  assert again[("encoder",)][0] == log[("encoder",)][0]
  assert abs(again[("generator",)][0] - log[("generator",)][0]) > 1e-3


def test_veegans_inverse_network_gets_only_the_code_reconstruction_gradient(monkeypatch):
  """VEEGAN (Srivastava et al. 2017, papers/004's baseline): the generator and the inverse network F
  minimise R(D(G(z), z)) + ||z - F(G(z))||_1 together, but the adversarial term does not involve F, so
  F's gradient equals that of the code reconstruction alone (computed here separately, with jax.grad),
  while the generator's gradient holds both terms."""
  rng = jax.random.key(3)
  fam, state = _fresh("veegan")
  log = _sub_steps(fam, state, monkeypatch, rng)
  _, loss_fn, tree = log[("encoder", "generator")]
  k = dict(zip(("deq", "post", "prior", "gp", "gen"), jax.random.split(rng, 5)))
  z = jax.random.normal(k["prior"], (8, fam.h.latent_dim))

  def code_reconstruction(t):
    x_gen = fam._generate(t, state.batch_stats, z)[0]
    return jnp.mean(jnp.sum(jnp.abs(z - fam._posterior(t, x_gen, k["post"])[0]), axis=-1))

  full = jax.grad(lambda t: loss_fn(t)[0])(tree)
  rec_only = jax.grad(code_reconstruction)(tree)
  encoder, generator = fam.groups["encoder"].keys, fam.groups["generator"].keys
  assert max(float(jnp.max(jnp.abs(g))) for key in encoder for g in jax.tree.leaves(full[key])) > 1e-4
  for key in encoder:
    for a, b in zip(jax.tree.leaves(full[key]), jax.tree.leaves(rec_only[key])):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)
  adversarial = [float(jnp.max(jnp.abs(a - b))) for key in generator
                 for a, b in zip(jax.tree.leaves(full[key]), jax.tree.leaves(rec_only[key]))]
  assert max(adversarial) > 1e-4  # the generator also gets the adversarial term
