"""The Glow layer of papers/003 against math: log-dets against slogdet(jacrev) (the Glow convolutions
define their reverse-mode derivative only), inverses to 1e-5, identity at init, actnorm's data-dependent
initialisation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax.models import flows, gaussian, glow

from tests.test_flows import _randomise

CASES = [((4, 4, 3), False), ((4, 4, 3), True), ((6, 6, 1), False), ((4, 4, 2), True)]


def _make(shape, lu, randomise=True):
  m = glow.Glow(shape, depth=3, width=8, lu=lu)
  x = jax.random.normal(jax.random.key(0), (2,) + shape)
  v = m.init(jax.random.key(1), x)
  return m, (_randomise(v, jax.random.key(2)) if randomise else v), x


@pytest.mark.parametrize("shape,lu", CASES)
def test_inverse_and_logdet_match_jacobian(shape, lu):
  m, v, x = _make(shape, lu)
  y, ld = m.apply(v, x, method="forward_and_log_det")
  assert float(jnp.max(jnp.abs(y - x))) > 1e-2, "the randomised layer should not be the identity"
  x2, ild = m.apply(v, y, method="inverse_and_log_det")
  np.testing.assert_allclose(x2, x, atol=1e-5)
  np.testing.assert_allclose(ild, -ld, rtol=1e-5, atol=1e-5)
  for i in range(2):
    f = lambda flat: m.apply(v, flat.reshape((1,) + shape), method="forward_and_log_det")[0].reshape(-1)
    sign, logabs = jnp.linalg.slogdet(jax.jacrev(f)(x[i].reshape(-1)))
    assert sign != 0
    np.testing.assert_allclose(ld[i], logabs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lu", [False, True])
def test_fresh_layer_is_the_identity(lu):
  m, v, x = _make((4, 4, 3), lu, randomise=False)
  y, ld = m.apply(v, x, method="forward_and_log_det")
  np.testing.assert_array_equal(y, x)
  np.testing.assert_array_equal(ld, 0.0)


@pytest.mark.parametrize("shape", [(4, 4, 3), (6, 6, 1)])
def test_actnorm_data_init_normalises_each_block_input(shape):
  m, v, _ = _make(shape, False)
  x = 3.0 + 0.2 * jax.random.normal(jax.random.key(5), (64,) + shape)
  init = m.apply(v, x, method="data_init")
  params = {**v["params"], **init}
  actnorm = lambda i: glow.actnorm_bijector(params["blocks"]["actnorm"]["shift"][i],
                                            params["blocks"]["actnorm"]["log_scale"][i])
  # The first actnorm's output on that batch: zero mean, unit variance per channel.
  first = actnorm(0).forward(x)
  np.testing.assert_allclose(jnp.mean(first, (0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(first, (0, 1, 2)), 1.0, atol=1e-4)
  # The last step's actnorm output too: steps are initialised in order, each on its real input.
  step, h = glow.GlowStep(shape[-1], width=8), x
  for i in range(2):
    block = jax.tree.map(lambda a: a[i], params["blocks"])
    h = step.apply({"params": block}, h, m._masks()[i], method="forward")[0]
  last = actnorm(2).forward(h)
  np.testing.assert_allclose(jnp.mean(last, (0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(last, (0, 1, 2)), 1.0, atol=1e-3)


def test_steps_are_stacked_and_distinct():
  """One scanned step per block: params on a leading `depth` axis, each block its own draw."""
  m, v, _ = _make((4, 4, 3), True, randomise=False)
  kernels = v["params"]["blocks"]["net"]["WNConv_0"]["v"]
  assert kernels.shape[0] == 3
  assert not np.allclose(kernels[0], kernels[1])


# ----------------------------------------------------------------------------- the standalone multi-scale Glow
MULTI = [((8, 8, 1), 2, "affine", True), ((4, 4, 3), 2, "additive", False), ((8, 8, 2), 3, "affine", False)]


def _multiscale(shape, levels, coupling, lu):
  m = glow.MultiScaleGlow(shape, levels=levels, depth=2, width=8, lu=lu, coupling=coupling)
  x = jax.random.normal(jax.random.key(0), (2,) + shape)
  # scale 0.1: a 1x1 weight I + s G on 24 channels stays well-conditioned (s = 0.3 nearly singular)
  return m, _randomise(m.init(jax.random.key(1), x), jax.random.key(2), scale=0.1), x


@pytest.mark.parametrize("shape,levels,coupling,lu", MULTI)
def test_multiscale_glow_density_is_exact(shape, levels, coupling, lu):
  """log p(x) as the model reports it (Gaussian terms of every level's z under its conditional prior +
  the steps' log-dets) against an independent change of variables: the standardised noise u(x), whose
  density is N(0, I), and log|det du/dx| from slogdet(jacrev)."""
  m, v, x = _multiscale(shape, levels, coupling, lu)
  zs, means, log_stds, logdet = m.apply(v, x)
  assert [z.shape[1:] for z in zs] == m.shapes() and sum(int(np.prod(z.shape[1:])) for z in zs) == x[0].size
  reported = sum(gaussian.log_prob(z, mu, s) for z, mu, s in zip(zs, means, log_stds)) + logdet
  d = x[0].size
  u_of = lambda flat: m.apply(v, flat.reshape((1,) + shape), method="standardise")[0][0]
  for i in range(2):
    sign, logabs = jnp.linalg.slogdet(jax.jacrev(u_of)(x[i].reshape(-1)))
    u = u_of(x[i].reshape(-1))
    assert sign != 0
    expected = -0.5 * jnp.sum(u ** 2) - 0.5 * d * np.log(2 * np.pi) + logabs
    np.testing.assert_allclose(reported[i], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape,levels,coupling,lu", MULTI)
def test_multiscale_glow_inverts_to_1e5(shape, levels, coupling, lu):
  m, v, x = _multiscale(shape, levels, coupling, lu)
  u, _ = m.apply(v, x, method="standardise")
  np.testing.assert_allclose(m.apply(v, u, method="unstandardise"), x, atol=1e-5)
  cold = m.apply(v, u, 0.5, method="unstandardise")
  assert float(jnp.max(jnp.abs(cold - x))) > 1e-3  # the temperature reaches every level


def test_multiscale_glow_data_init_normalises_every_level():
  m, v, _ = _multiscale((8, 8, 1), 2, "affine", True)
  x = 2.0 + 0.3 * jax.random.normal(jax.random.key(5), (64, 8, 8, 1))
  params = jax.tree.map(lambda a: a, v["params"])
  for level, new in m.apply(v, x, method="data_init").items():
    params[level] = {**params[level], **new}
  # the input of level 1's first actnorm is level 0's kept half: its output is normalised too
  h = flows.squeeze(x)
  h, _ = m.apply({"params": params}, h, method=lambda mod, h: mod.steps[0].forward_and_log_det(h))
  h = flows.squeeze(jnp.split(h, 2, axis=-1)[0])
  an = params["steps_1"]["blocks"]["actnorm"]
  out = glow.actnorm_bijector(an["shift"][0], an["log_scale"][0]).forward(h)
  np.testing.assert_allclose(jnp.mean(out, (0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(out, (0, 1, 2)), 1.0, atol=1e-3)


def test_multiscale_glow_refuses_sizes_it_cannot_squeeze():
  m = glow.MultiScaleGlow((12, 12, 1), levels=3, depth=1, width=4)
  with pytest.raises(ValueError, match="divisible by 8"):
    m.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)))


@pytest.mark.parametrize("kernel", [(3, 3), (1, 1)])
def test_scan_friendly_convolution_has_the_convolution_gradient(kernel):
  """`layers.conv_same`'s hand-written backward pass (the Glow steps' convolutions) against JAX's own
  derivative of the same convolution, for the input and the kernel."""
  from adejax.models import layers

  x = jax.random.normal(jax.random.key(0), (3, 5, 6, 4))
  w = jax.random.normal(jax.random.key(1), kernel + (4, 7))
  t = jax.random.normal(jax.random.key(2), (3, 5, 6, 7))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(layers.conv_same(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  ours = jax.grad(lambda x, w: jnp.sum(t * layers.conv_same(x, w)), argnums=(0, 1))(x, w)
  theirs = jax.grad(lambda x, w: jnp.sum(t * ref(x, w)), argnums=(0, 1))(x, w)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
