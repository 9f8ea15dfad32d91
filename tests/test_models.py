"""Model parts: shapes and parameter counts at every size, KL against Monte Carlo, IAF log-det, errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import losses
from adejax.models import ade, discriminators, flows, vae


def count(params) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def _shapes(module, *args, **kw):
  """Variables' shapes without computing them (cheap even for 128x128 models)."""
  return jax.eval_shape(lambda *a: module.init(jax.random.key(0), *a, **kw), *args)


SIZES = [(28, 1), (32, 3), (48, 3), (64, 3), (128, 3)]


@pytest.mark.parametrize("arch", ["sngan", "resnet"])
@pytest.mark.parametrize("size,channels", SIZES)
def test_vae_shapes_every_size(arch, size, channels):
  shape = (size, size, channels)
  m = vae.HierarchicalVAE(shape, arch=arch)
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  variables = _shapes(m, x, jax.random.key(1))
  out = jax.eval_shape(lambda v: m.apply(v, jnp.zeros((2,) + shape), jax.random.key(1)), variables)
  assert out["mean"].shape == (2,) + shape
  assert out["kl"].shape == out["log_q"].shape == out["log_p"].shape == (2,)
  gen = jax.eval_shape(lambda v: m.apply(v, jax.random.key(2), 3, method="generate"), variables)
  assert gen.shape == (3,) + shape
  sizes, _ = vae.architecture(arch, shape)
  assert sizes[-1] == size and sizes[0] in (4, 6, 7)
  print(f"{arch} VAE {shape}: {count(variables['params']):,} parameters, levels {sizes}")


@pytest.mark.parametrize("arch", ["conv", "resnet"])
@pytest.mark.parametrize("size,channels", SIZES)
def test_discriminator_shapes_every_size(arch, size, channels):
  d = discriminators.Discriminator(arch)
  x = jax.ShapeDtypeStruct((2, size, size, channels), jnp.float32)
  variables = _shapes(d, x)
  out = jax.eval_shape(lambda v: d.apply(v, jnp.zeros((2, size, size, channels))), variables)
  assert out.shape == (2,)
  print(f"{arch} discriminator {size}x{size}x{channels}: {count(variables['params']):,} parameters")


@pytest.mark.parametrize("height,width", [(32, 32), (28, 28), (7, 7), (14, 15), (5, 8)])
def test_space_to_depth_down_conv_is_the_strided_conv_and_its_derivatives(height, width):
  """DownConv4 (the conv discriminator's stride-2 layers) is nn.Conv(c, (4, 4), (2, 2)) with the same
  parameters: the same outputs, input gradients and penalty gradients (second derivatives)."""
  x = jax.random.normal(jax.random.key(height), (3, height, width, 2))
  ref, new = nn.Conv(5, (4, 4), (2, 2)), discriminators.DownConv4(5)
  params = ref.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, new.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, params)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape), params)
  np.testing.assert_allclose(new.apply(params, x), ref.apply(params, x), atol=1e-5)
  logit = lambda m, p, x: jnp.sum(jnp.tanh(m.apply(p, x)), axis=(1, 2, 3))
  penalty = lambda m: jax.grad(lambda p: losses.gradient_penalty(lambda x: logit(m, p, x), x, -x,
                                                                 jax.random.key(2)))(params)
  for a, b in zip(jax.tree.leaves(penalty(new)), jax.tree.leaves(penalty(ref))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_conv_discriminator_keeps_its_parameter_names():
  """Checkpoints of the conv discriminator written before DownConv4 restore unchanged."""
  v = _shapes(discriminators.Discriminator("conv"), jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert sorted(v["params"]) == [f"Conv_{i}" for i in range(7)] + ["Dense_0"]
  assert v["params"]["Conv_1"]["kernel"].shape == (4, 4, 64, 64)


def test_flow_is_a_small_fraction_of_the_ablation_model():
  """Paper: f_psi adds about 1.4% of the weights (3 couplings x 2 residual blocks at 32 channels)."""
  shape = (32, 32, 3)
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  n_vae = count(_shapes(vae.HierarchicalVAE(shape, "sngan"), x, jax.random.key(0))["params"])
  n_flow = count(_shapes(flows.RealNVP(shape, 1, 3, 2, 32), x)["params"])
  fraction = n_flow / n_vae
  print(f"ablation VAE {n_vae:,} parameters; f_psi {n_flow:,} = {100 * fraction:.2f}%")
  assert 100_000 < n_flow < 140_000
  assert 0.005 < fraction < 0.03


def _tiny_vae(iaf=False):
  m = vae.HierarchicalVAE((8, 8, 1), arch="resnet", width=0.25, latent_channels=4, iaf=iaf)
  f = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  v = m.init(jax.random.key(1), f, jax.random.key(2))
  # move the posterior/prior heads away from their zero initialisation
  leaves, tree = jax.tree_util.tree_flatten(v)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  v = jax.tree_util.tree_unflatten(tree, [l + 0.2 * jax.random.normal(k, l.shape)
                                          for l, k in zip(leaves, keys)])
  return m, v, f


@pytest.mark.parametrize("iaf", [False, True])
def test_hierarchical_kl_against_monte_carlo(iaf):
  """E_rng[kl] (analytic per layer given the samples above it) == E_rng[log q - log p]."""
  m, v, f = _tiny_vae(iaf)
  keys = jax.random.split(jax.random.key(4), 4000)
  out = jax.jit(jax.vmap(lambda k: m.apply(v, f, k)))(keys)
  mc = out["log_q"] - out["log_p"]
  kl = out["kl"]
  assert float(jnp.min(kl.mean(0))) > 0.5  # a non-trivial KL
  stderr = mc.std(0) / np.sqrt(len(keys))
  np.testing.assert_array_less(jnp.abs(kl.mean(0) - mc.mean(0)), 4 * stderr + 1e-3)


def test_iaf_step_logdet_matches_jacobian():
  step = vae.IAFStep(hidden=16)
  z0 = jax.random.normal(jax.random.key(0), (1, 1, 1, 6))
  ctx = jax.random.normal(jax.random.key(1), (1, 1, 1, 16))
  v = step.init(jax.random.key(2), z0, ctx)
  leaves, tree = jax.tree_util.tree_flatten(v)
  v = jax.tree_util.tree_unflatten(tree, [l + 0.5 for l in leaves])
  z, ld = step.apply(v, z0, ctx)
  jac = jax.jacfwd(lambda t: step.apply(v, t.reshape(z0.shape), ctx)[0].reshape(-1))(z0.reshape(-1))
  np.testing.assert_allclose(jnp.triu(jac, 1), 0.0, atol=1e-7)  # autoregressive: triangular
  np.testing.assert_allclose(jnp.sum(ld[0]), jnp.linalg.slogdet(jac)[1], rtol=1e-5)
  assert float(jnp.max(jnp.abs(z - z0))) > 1e-3


def test_ade_model_likelihood_and_sampling():
  shape = (8, 8, 1)
  m = ade.ADEModel(shape, arch="resnet", width=0.25, latent_channels=4, flow_width=8, flow_blocks=1)
  y = jax.random.uniform(jax.random.key(0), (2,) + shape)
  v = m.init(jax.random.key(1), y, jax.random.key(2))
  out, upd = m.apply(v, y, jax.random.key(2), mutable=["batch_stats"])
  loss, terms = losses.coverage_loss(out)
  assert loss.shape == (2,) and set(terms) == {"nll", "kl", "logdet"}
  # at initialisation the flow is the identity: only the logit preprocessing contributes a log-det
  _, pre = flows.logit_preprocess(0.05).forward_and_log_det(y)
  np.testing.assert_allclose(out["logdet"], pre, rtol=1e-5)
  samples = m.apply(v, jax.random.key(3), 5, method="generate")
  assert samples.shape == (5,) + shape
  rec = m.apply(v, y, jax.random.key(4), method="reconstruct")
  assert rec.shape == y.shape


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="Unknown VAE architecture 'bogus'"):
    vae.architecture("bogus", (32, 32, 3))
  with pytest.raises(ValueError, match="square"):
    vae.architecture("sngan", (32, 16, 3))
  m = vae.HierarchicalVAE((8, 8, 1), arch="resnet", width=0.25)
  with pytest.raises(ValueError, match=r"expects \(B, 8, 8, 1\)"):
    m.init(jax.random.key(0), jnp.zeros((8, 8, 1)), jax.random.key(0))
  with pytest.raises(ValueError, match="latent_levels"):
    vae.HierarchicalVAE((8, 8, 1), latent_levels=7).init(
        jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jax.random.key(0))
  with pytest.raises(ValueError, match="Unknown discriminator"):
    discriminators.Discriminator("bogus").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="expects images"):
    discriminators.Discriminator("conv").init(jax.random.key(0), jnp.zeros((8, 8, 1)))


def test_latent_interpolation_endpoints_and_midpoint():
  shape = (8, 8, 1)
  m = ade.ADEModel(shape, arch="resnet", width=0.25, latent_channels=4, flow_width=8, flow_blocks=1)
  ya, yb = (jax.random.uniform(jax.random.key(i), (2,) + shape) for i in (0, 1))
  v = m.init(jax.random.key(2), ya, jax.random.key(3))
  leaves, tree = jax.tree_util.tree_flatten(v["params"])
  keys = jax.random.split(jax.random.key(9), len(leaves))
  v = {**v, "params": jax.tree_util.tree_unflatten(  # away from the zero-initialised heads
      tree, [l + 0.05 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])}
  lerp = m.apply(v, ya, yb, 5, method="interpolate")
  assert lerp.shape == (2, 5) + shape

  def decode_mix(w):
    def fn(mod):
      key = jax.random.PRNGKey(0)
      za = mod.vae.encode(mod.to_features(ya, train=False)[0], key)
      zb = mod.vae.encode(mod.to_features(yb, train=False)[0], key)
      return mod.from_features(mod.vae.decode([(1 - w) * a + w * b for a, b in zip(za, zb)]))
    return m.apply(v, method=fn)

  for idx, w in ((0, 0.0), (2, 0.5), (4, 1.0)):
    np.testing.assert_allclose(lerp[:, idx], decode_mix(w), atol=1e-5)
  assert bool(jnp.all(jnp.isfinite(lerp)))
  assert float(jnp.max(jnp.abs(lerp[:, 0] - lerp[:, 4]))) > 1e-3


def test_conditional_weight_norm():
  from adejax.models import layers

  conv = layers.WNConv(3, num_classes=4)
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 2))
  v = conv.init(jax.random.key(1), x, jnp.array([0, 1]))
  p = jax.tree.map(lambda a: a, v["params"])
  p["g"] = jnp.arange(12.0).reshape(4, 3) + 1.0  # a different scale g(y) per class
  y0 = conv.apply({"params": p}, x, jnp.array([0, 0]))
  y1 = conv.apply({"params": p}, x, jnp.array([1, 1]))
  # eq. 16: w = g(y) v / ||v||, so the outputs of two classes differ by the ratio of their scales
  np.testing.assert_allclose(y1, y0 * (p["g"][1] / p["g"][0]), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="needs class labels"):
    conv.apply({"params": p}, x)


def _perturbed(params, scale=0.05, seed=9):
  """Parameters moved off their zero-initialised heads, so label dependence is visible."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [l + scale * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])


@pytest.mark.parametrize("arch", ["sngan", "resnet"])
def test_class_conditional_vae_uses_conditional_weight_norm_everywhere(arch):
  shape, k = (8, 8, 1), 3
  m = ade.ADEModel(shape, arch=arch, width=0.125, latent_channels=4, flow_width=8, flow_blocks=1,
                   num_classes=k)
  y = jax.random.uniform(jax.random.key(0), (2,) + shape)
  labels = jnp.array([0, 2])
  v = m.init(jax.random.key(1), y, jax.random.key(2), labels=labels)
  # every weight-normed layer of the VAE has a scale and a bias per class (eq. 16); the flow does not
  vae_g = [p for path, p in jax.tree_util.tree_leaves_with_path(v["params"]["vae"])
           if getattr(path[-1], "key", "") in ("g", "b") and "iaf" not in str(path)]
  assert vae_g and all(p.shape[0] == k and p.ndim == 2 for p in vae_g)
  flow_g = [p for path, p in jax.tree_util.tree_leaves_with_path(v["params"]["flow"])
            if getattr(path[-1], "key", "") == "g"]
  assert all(p.ndim == 1 for p in flow_g)
  v = {**v, "params": _perturbed(v["params"])}
  key = jax.random.key(3)
  out = lambda lab: m.apply(v, y, key, train=False, labels=lab)
  a, b = out(labels), out(jnp.array([1, 2]))
  # the first example's terms change with its label, the second's (same label) do not
  assert abs(float(a["kl"][0] - b["kl"][0])) > 1e-6
  np.testing.assert_allclose(a["kl"][1], b["kl"][1], rtol=1e-6)
  gen = lambda lab: m.apply(v, key, 2, labels=lab, method="generate")
  g0, g1 = gen(jnp.array([0, 0])), gen(jnp.array([1, 0]))
  assert float(jnp.max(jnp.abs(g0[0] - g1[0]))) > 1e-4
  np.testing.assert_allclose(g0[1], g1[1], atol=1e-6)
  with pytest.raises(ValueError, match="class-conditional"):
    m.apply(v, key, 2, method="generate")


def test_projection_discriminator_matches_its_formula():
  """logit(x, y) = w . phi(x) + b + embed(y) . phi(x) (Miyato & Koyama 2018). With embedding rows
  set to alpha_y * w the formula predicts logit(x, y) = b + (1 + alpha_y) (logit_uncond(x) - b)."""
  k, x = 4, jax.random.normal(jax.random.key(0), (3, 16, 16, 1))
  labels = jnp.array([0, 3, 2])
  d = discriminators.Discriminator("resnet", 0.25, num_classes=k)
  params = _perturbed(d.init(jax.random.key(1), x, labels)["params"])
  w, b = params["Dense_0"]["kernel"][:, 0], params["Dense_0"]["bias"][0]
  alpha = jnp.array([0.5, -2.0, 3.0, 0.25])
  params["Embed_0"]["embedding"] = alpha[:, None] * w[None, :]
  plain = {name: p for name, p in params.items() if name != "Embed_0"}
  base = discriminators.Discriminator("resnet", 0.25).apply({"params": plain}, x)
  logits = d.apply({"params": params}, x, labels)
  np.testing.assert_allclose(logits, b + (1 + alpha[labels]) * (base - b), rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="class-conditional"):
    d.apply({"params": params}, x)


def test_iaf_posterior_log_q_against_a_monte_carlo_density_estimate():
  """log q(z) of the IAF posterior (Gaussian log-density minus the IAF log-det) against the fraction of
  400k posterior samples that fall in a small box around a point: an estimate that never sees the
  log-det code."""
  layer = vae.StochasticLayer(features=4, latent_channels=2, iaf=True)
  x = jax.random.normal(jax.random.key(0), (1, 1, 1, 4))
  h = jax.random.normal(jax.random.key(1), (1, 1, 1, 4))
  params = _perturbed(layer.init(jax.random.key(2), x, h, jax.random.key(3))["params"], scale=0.4)
  sample = jax.jit(jax.vmap(lambda k: layer.apply({"params": params}, x, h, k)[1:]))
  stats, z = sample(jax.random.split(jax.random.key(4), 400_000))
  z = np.asarray(z).reshape(-1, 2)
  log_q = np.asarray(stats["log_q"]).reshape(-1)
  # points in the denser half of q; each box sized for ~3000 expected samples (the code's density only
  # picks the box size, so the estimate stays independent of it)
  for i in np.flatnonzero(log_q > np.median(log_q))[:5]:
    half = 0.5 * np.sqrt(3000 / (len(z) * np.exp(log_q[i])))
    inside = np.all(np.abs(z - z[i]) < half, axis=1)
    assert inside.sum() > 1500  # a ~3% estimate
    estimate = np.log(inside.mean() / (2 * half) ** 2)
    np.testing.assert_allclose(log_q[i], estimate, atol=0.1)


def test_full_model_logdet_with_a_trained_flow_matches_the_jacobian():
  """ADEModel's log|det df/dy| (logit preprocessing + a non-identity f_psi, eval mode) against
  slogdet(jacfwd) of the whole map y -> f."""
  shape = (4, 4, 1)
  m = ade.ADEModel(shape, arch="resnet", width=0.25, latent_channels=2, flow_width=4, flow_blocks=1)
  y = jax.random.uniform(jax.random.key(0), (2,) + shape, minval=0.05, maxval=0.95)
  v = m.init(jax.random.key(1), y, jax.random.key(2))
  v = {**v, "params": {**v["params"], "flow": _perturbed(v["params"]["flow"], scale=0.3)}}
  _, upd = m.apply(v, y * 0.8 + 0.1, jax.random.key(3), train=True, mutable=["batch_stats"])
  v = {**v, **upd}  # non-trivial running statistics too
  f, logdet, flow_logdet = m.apply(v, y, False, method="to_features")
  assert float(jnp.min(jnp.abs(flow_logdet))) > 1e-2  # f_psi is not the identity
  for i in range(2):
    fn = lambda t: m.apply(v, t.reshape((1,) + shape), False, method="to_features")[0].reshape(-1)
    sign, logabs = jnp.linalg.slogdet(jax.jacfwd(fn)(y[i].reshape(-1)))
    assert sign != 0
    np.testing.assert_allclose(logdet[i], logabs, rtol=1e-4, atol=1e-3)
