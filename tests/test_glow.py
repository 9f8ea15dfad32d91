"""The Glow layer of papers/003 against math: log-dets against slogdet(jacfwd), inverses to 1e-5,
identity at init, actnorm's data-dependent initialisation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax.models import glow

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
  d = int(np.prod(shape))
  for i in range(2):
    f = lambda flat: m.apply(v, flat.reshape((1,) + shape), method="forward_and_log_det")[0].reshape(-1)
    sign, logabs = jnp.linalg.slogdet(jax.jacfwd(f)(x[i].reshape(-1)))
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
  # The first actnorm's output on that batch: zero mean, unit variance per channel.
  first = glow.actnorm_bijector(params["actnorms_0"]["shift"], params["actnorms_0"]["log_scale"]).forward(x)
  np.testing.assert_allclose(jnp.mean(first, (0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(first, (0, 1, 2)), 1.0, atol=1e-4)
  # The last block's actnorm output too: blocks are initialised in order, each on its real input.
  h = x
  for i in range(2):
    h = m.apply({"params": params}, i, method="block").forward(h)
  last = glow.actnorm_bijector(params["actnorms_2"]["shift"], params["actnorms_2"]["log_scale"]).forward(h)
  np.testing.assert_allclose(jnp.mean(last, (0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(jnp.std(last, (0, 1, 2)), 1.0, atol=1e-3)
