"""f_psi against math: inverses, log-dets against slogdet(jacfwd), identity at init, errors."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax.models import flows


def _randomise(variables, key, scale=0.3):
  """Perturb every parameter so the flow is far from the identity (its init)."""
  leaves, tree = jax.tree_util.tree_flatten(variables["params"])
  keys = jax.random.split(key, len(leaves))
  leaves = [l + scale * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
  return {**variables, "params": jax.tree_util.tree_unflatten(tree, leaves)}


def _make(shape, scales, key=0):
  m = flows.RealNVP(shape, num_scales=scales, num_couplings=3, num_blocks=1, width=8)
  x = jax.random.normal(jax.random.key(key), (2,) + shape)
  v = m.init(jax.random.key(1), x)
  v = _randomise(v, jax.random.key(2))
  # non-trivial running statistics for eval mode
  _, upd = m.apply(v, x * 1.5 + 0.3, train=True, method="forward_and_log_det", mutable=["batch_stats"])
  return m, {**v, **upd}, x


CASES = [((4, 4, 3), 1), ((4, 4, 3), 2), ((8, 8, 1), 1), ((8, 8, 1), 2)]


@pytest.mark.parametrize("shape,scales", CASES)
def test_inverse_and_logdet_consistency(shape, scales):
  m, v, x = _make(shape, scales)
  y, ld = m.apply(v, x, method="forward_and_log_det")
  x2, ild = m.apply(v, y, method="inverse_and_log_det")
  assert float(jnp.max(jnp.abs(y - x))) > 1e-2, "flow should not be the identity here"
  np.testing.assert_allclose(x2, x, atol=1e-5)
  np.testing.assert_allclose(ild, -ld, rtol=1e-5, atol=1e-5)
  assert ld.shape == (2,)


@pytest.mark.parametrize("shape,scales", CASES)
def test_logdet_matches_jacobian_eval_mode(shape, scales):
  m, v, x = _make(shape, scales)
  d = int(np.prod(shape))
  _, ld = m.apply(v, x, method="forward_and_log_det")
  for i in range(2):
    f = lambda flat: m.apply(v, flat.reshape((1,) + shape), method="forward_and_log_det")[0].reshape(-1)
    jac = jax.jacfwd(f)(x[i].reshape(-1))
    assert jac.shape == (d, d)
    sign, logabs = jnp.linalg.slogdet(jac)
    assert sign != 0
    np.testing.assert_allclose(ld[i], logabs, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape,scales", CASES)
def test_logdet_matches_jacobian_train_mode(shape, scales):
  """With batch statistics examples interact, yet the batch Jacobian stays block-triangular:
  its log-determinant equals the sum of the per-example log-dets."""
  m, v, x = _make(shape, scales)
  fwd = lambda xx: m.apply(v, xx, train=True, method="forward_and_log_det",
                           mutable=["batch_stats"])[0]
  _, ld = fwd(x)
  flat = lambda z: fwd(z.reshape(x.shape))[0].reshape(-1)
  sign, logabs = jnp.linalg.slogdet(jax.jacfwd(flat)(x.reshape(-1)))
  np.testing.assert_allclose(jnp.sum(ld), logabs, rtol=1e-3, atol=1e-3)


def test_zero_init_is_identity():
  m = flows.RealNVP((8, 8, 3), num_scales=2)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  v = m.init(jax.random.key(1), x)
  (y, ld), _ = m.apply(v, x, train=True, method="forward_and_log_det", mutable=["batch_stats"])
  np.testing.assert_allclose(y, x, atol=1e-6)
  np.testing.assert_allclose(ld, 0.0, atol=1e-6)


def test_eval_mode_treats_examples_independently_and_train_mode_does_not():
  """Eval mode uses the stored batch-norm statistics: an example's output and log-det are the same
  alone as in a batch. Train mode normalises with the batch's statistics: they change with the batch."""
  m, v, x = _make((4, 4, 3), 2)
  batch = jnp.concatenate([x, 3.0 * x[::-1] + 1.0])
  y, ld = m.apply(v, batch, method="forward_and_log_det")
  y0, ld0 = m.apply(v, batch[:1], method="forward_and_log_det")
  np.testing.assert_allclose(y[:1], y0, atol=1e-5)
  np.testing.assert_allclose(ld[:1], ld0, rtol=1e-5, atol=1e-4)
  train = lambda b: m.apply(v, b, train=True, method="forward_and_log_det", mutable=["batch_stats"])[0]
  assert float(jnp.max(jnp.abs(train(batch)[0][:1] - train(batch[:2])[0][:1]))) > 1e-3


def test_composes_with_distrax_transformed():
  """distrax's change of variables through our bijector equals the base density plus the log-det of
  the Jacobian computed by autodiff (not the flow's own log-det)."""
  m, v, x = _make((4, 4, 3), 1)
  base = distrax.Independent(distrax.Normal(jnp.zeros((4, 4, 3)), 1.0), 3)
  # The bijector closes over bound modules, so it is used inside apply.
  def log_prob(mod, x):
    return distrax.Transformed(base, distrax.Inverse(mod.bijector(False))).log_prob(x)
  lp = m.apply(v, x, method=log_prob)
  forward = lambda xi: m.apply(v, xi.reshape((1, 4, 4, 3)), method="forward_and_log_det")[0].reshape(-1)
  for i in range(2):
    _, logabs = jnp.linalg.slogdet(jax.jacfwd(forward)(x[i].reshape(-1)))
    np.testing.assert_allclose(lp[i], base.log_prob(forward(x[i]).reshape(4, 4, 3)) + logabs,
                               rtol=1e-4, atol=1e-3)


def test_squeeze_roundtrip_and_errors():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  np.testing.assert_array_equal(flows.unsqueeze(flows.squeeze(x)), x)
  with pytest.raises(ValueError, match="spatial sizes must be even"):
    flows.squeeze(jnp.zeros((1, 3, 4, 1)))
  m = flows.RealNVP((6, 6, 1), num_scales=3)
  with pytest.raises(ValueError, match="divisible by 4"):
    m.init(jax.random.key(0), jnp.zeros((1, 6, 6, 1)))
  m = flows.RealNVP((4, 4, 1))
  with pytest.raises(ValueError, match=r"expects a batch of shape \(B, 4, 4, 1\)"):
    m.init(jax.random.key(0), jnp.zeros((4, 4, 1)))


@pytest.mark.parametrize("name", ["logit", "centre"])
def test_preprocessing_logdet(name):
  bij = flows.preprocess_bijector(name, 0.05)
  y = jax.random.uniform(jax.random.key(0), (2, 2, 2, 1))
  s, ld = bij.forward_and_log_det(y)
  jac = jax.jacfwd(lambda t: bij.forward(t.reshape(1, 2, 2, 1)).reshape(-1))(y[0].reshape(-1))
  np.testing.assert_allclose(ld[0], jnp.linalg.slogdet(jac)[1], rtol=1e-5)
  np.testing.assert_allclose(bij.inverse(s), y, atol=1e-5)
  if name == "centre":
    np.testing.assert_allclose(ld, 4 * np.log(2.0), rtol=1e-6)
  with pytest.raises(ValueError, match="Unknown preprocessing"):
    flows.preprocess_bijector("bogus")


def test_logit_preprocessing_gradients_are_finite_in_the_tails():
  """Generated features far in the tails (seen: |f| ~ 2700) must give finite gradients back through the
  inverse preprocessing: distrax.Sigmoid's gradient is NaN above x ~ 88.7 (an overflowing unused branch)."""
  a = 0.05
  bij = flows.logit_preprocess(a)
  s = jnp.array([-3000.0, -200.0, -9.5, -1.0, 0.0, 2.0, 95.0, 3000.0]).reshape(1, 2, 2, 2)
  grad = jax.grad(lambda t: jnp.sum(bij.inverse(t)))(s)
  np.testing.assert_allclose(grad, jax.nn.sigmoid(s) * jax.nn.sigmoid(-s) / (1 - 2 * a), rtol=1e-4,
                             atol=1e-30)
  # d/ds of log|d sigmoid/ds| = -softplus(-s) - softplus(s) (the affine part is constant) is 1 - 2 sigmoid(s)
  grad_ld = jax.grad(lambda t: jnp.sum(bij.inverse_and_log_det(t)[1]))(s)
  np.testing.assert_allclose(grad_ld, 1.0 - 2.0 * jax.nn.sigmoid(s), atol=1e-6)
  np.testing.assert_allclose(np.asarray(bij.inverse(s)).reshape(-1)[[0, -1]], [-a / (1 - 2 * a), (1 - a) / (1 - 2 * a)],
                             rtol=1e-6)


@pytest.mark.parametrize("shape,scales", CASES + [((8, 8, 3), 3)])
def test_log_det_map_sums_to_the_log_det(shape, scales):
  m, v, x = _make(shape, scales)
  _, ld = m.apply(v, x, method="forward_and_log_det")
  log_det_map = m.apply(v, x, method="log_det_map")
  assert log_det_map.shape == x.shape
  assert float(jnp.std(log_det_map)) > 1e-2  # not a constant spread of the total
  np.testing.assert_allclose(jnp.sum(log_det_map, axis=(1, 2, 3)), ld, rtol=1e-5, atol=1e-4)


def test_log_det_map_puts_each_coupling_at_the_elements_it_scales():
  """One checkerboard coupling scales only the unmasked half: the map is zero on the masked half."""
  m = flows.RealNVP((4, 4, 1), num_scales=1, num_couplings=1, num_blocks=1, width=8)
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
  v = _randomise(m.init(jax.random.key(1), x), jax.random.key(2))
  log_det_map = m.apply(v, x, method="log_det_map")
  mask = flows.checkerboard_mask((4, 4, 1), 0).astype(bool)
  assert float(jnp.max(jnp.abs(log_det_map[:, mask]))) == 0.0
  assert float(jnp.min(jnp.abs(log_det_map[:, ~mask]))) > 0.0
