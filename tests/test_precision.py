"""train.compute_dtype (bfloat16 convolutions and matmuls, float32 bookkeeping) and train.remat
(rematerialised top-down VAE and f_psi): what they change, and what they must leave alone."""
import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import config_lib, train
from adejax.models import layers
from configs import cifar_glow, cifar_glow_vae, default, fmnist_hybrids
from tests.test_train import SHAPE, images, tiny, tree_max_diff


def _ops(jaxpr, acc):
  """(primitive, lhs dtype, rhs dtype) -> count of every convolution and dot_general, sub-jaxprs
  (scans, custom derivatives, remat) included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
      acc[(eqn.primitive.name, str(eqn.invars[0].aval.dtype), str(eqn.invars[1].aval.dtype))] += 1
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (list, tuple)) else [param]):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          _ops(inner, acc)
  return acc


def _step_ops(config, shape=SHAPE):
  trainer = train.Trainer(config, shape, devices=jax.devices()[:1])
  state = trainer.init_state(0)
  batch = trainer.global_batch(np.zeros((config.train.batch_size,) + shape, np.uint8))
  phase = trainer.family.num_phases - 1  # the last phase trains the most (glow_vae: the Glow layer)
  jaxpr = jax.make_jaxpr(lambda s, x: trainer._step.__wrapped__(s, x, None, phase))(state, batch)
  return _ops(jaxpr.jaxpr, collections.Counter())


def _with_dtype(config, dtype):
  config.train.compute_dtype = dtype
  config_lib.validate(config)
  return config


@pytest.mark.parametrize("name", ["av-ade", "gan", "glow_vae", "glow", "veegan"])
def test_bfloat16_reaches_every_convolution_and_matmul_of_a_train_step(name):
  """Every convolution and matmul of the step (forward, backward, the penalty's double backward)
  takes bfloat16 operands, except the Glow's invertible 1x1 convolutions, which stay float32 (their
  inverse must invert them); in float32 there is no bfloat16 at all."""
  shape = SHAPE
  if name in ("av-ade", "gan"):
    make = lambda: tiny(name)
  elif name == "veegan":
    make = lambda: fmnist_hybrids.get_config("veegan,tiny")
  else:
    make = lambda: (cifar_glow_vae if name == "glow_vae" else cifar_glow).get_config("tiny")
    shape = (16, 16, 3)
  f32, bf16 = _step_ops(_with_dtype(make(), "float32"), shape), _step_ops(_with_dtype(make(), "bfloat16"), shape)
  assert not any("bfloat16" in key for key in f32)
  assert sum(f32.values()) == sum(bf16.values()) > 0
  in_float32 = sum(n for key, n in bf16.items() if "float32" in key)
  if name in ("glow_vae", "glow"):
    assert 0 < in_float32 <= bf16[("dot_general", "float32", "float32")]  # the 1x1 convolutions
  else:
    assert in_float32 == 0, bf16


def test_bfloat16_keeps_bits_per_dim_within_001_and_the_state_in_float32():
  """The same trained parameters evaluated with bfloat16 compute: held-out bits/dim and each of its
  terms within 0.01 of float32's (and not identical: the policy is applied). A bfloat16 train step
  keeps parameters, optimiser state and batch-norm statistics in float32 and moves them as float32 does."""
  f32 = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:1])
  state = f32.init_state(0)
  for i in range(12):
    state, _ = f32.step(state, f32.global_batch(images(seed=i)))
  bf16 = train.Trainer(_with_dtype(tiny("av-ade"), "bfloat16"), SHAPE, devices=jax.devices()[:1])
  held_out = images(n=64, seed=100)
  a, b = f32.per_example_bpd(state, held_out), bf16.per_example_bpd(state, held_out)
  assert abs(float(np.mean(a) - np.mean(b))) < 0.01
  assert 0 < float(np.max(np.abs(a - b))) < 0.05

  stepped = {}
  for name, trainer in (("f32", f32), ("bf16", bf16)):
    start = jax.tree.map(jnp.copy, state)
    new, metrics = trainer.step(start, trainer.global_batch(images(seed=50)))
    stepped[name] = (new, jax.device_get(metrics))
  new, metrics = stepped["bf16"]
  floats = jax.tree.leaves((new.params, new.opt_state, new.batch_stats, new.disc_params))
  assert all(x.dtype == jnp.float32 for x in floats if jnp.issubdtype(x.dtype, jnp.floating))
  assert int(new.skipped) == 0
  ref, ref_metrics = stepped["f32"]
  assert abs(metrics["bpd"] - ref_metrics["bpd"]) < 0.01
  move = tree_max_diff(ref.params, state.params)
  assert tree_max_diff(new.params, ref.params) < 0.5 * move  # the same update, to bf16 rounding


def test_compute_dtype_context_is_scoped():
  x, w = jnp.ones((2, 3)), jnp.ones((3, 4))
  with layers.compute_dtype("bfloat16"):  # fresh functions: jax caches a function's trace
    inner = jax.make_jaxpr(lambda a, b: layers.matmul(a, b))(x, w)
  outer = jax.make_jaxpr(lambda a, b: layers.matmul(a, b))(x, w)
  dtypes = lambda jp: [str(v.aval.dtype) for e in jp.jaxpr.eqns if e.primitive.name == "dot_general"
                       for v in e.invars]
  assert dtypes(inner) == ["bfloat16", "bfloat16"] and dtypes(outer) == ["float32", "float32"]
  assert inner.out_avals[0].dtype == jnp.float32  # the result comes back in the operands' dtype


def test_conv_transpose_is_flax_s():
  """layers.ConvTranspose: flax's nn.ConvTranspose's parameters, names and outputs (old checkpoints
  of the hybrids load), at stride 1 and 2."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
  for strides in ((1, 1), (2, 2)):
    ours, ref = layers.ConvTranspose(4, (5, 5), strides), nn.ConvTranspose(4, (5, 5), strides, padding="SAME")
    params = ref.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias too
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(params)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)


def test_remat_keeps_parameters_and_step_and_recomputes():
  """train.remat: the same parameter tree and the same step (to float rounding), with the top-down
  VAE's blocks and f_psi's coupling networks under jax.checkpoint."""
  plain = train.Trainer(tiny("av-ade"), SHAPE, devices=jax.devices()[:1])
  remat = train.Trainer(tiny("av-ade", **{"train.remat": True}), SHAPE, devices=jax.devices()[:1])
  s0, s1 = plain.init_state(0), remat.init_state(0)
  assert jax.tree.structure(s0.params) == jax.tree.structure(s1.params)
  assert tree_max_diff(s0.params, s1.params) == 0
  batch = images()
  a, _ = plain.step(s0, plain.global_batch(batch))
  b, _ = remat.step(s1, remat.global_batch(batch))
  assert tree_max_diff(a.params, b.params) < 1e-5

  def checkpoints(trainer):
    state = trainer.init_state(0)
    jp = jax.make_jaxpr(lambda s, x: trainer._step.__wrapped__(s, x, None, 0))(state, trainer.global_batch(batch))
    count = collections.Counter()

    def walk(jaxpr):
      for eqn in jaxpr.eqns:
        count[eqn.primitive.name] += 1
        for param in eqn.params.values():
          inner = getattr(param, "jaxpr", param)
          if hasattr(inner, "eqns"):
            walk(inner)
    walk(jp.jaxpr)
    return sum(n for name, n in count.items() if "checkpoint" in name or "remat" in name)

  assert checkpoints(plain) == 0 and checkpoints(remat) > 0


@pytest.mark.parametrize("key,value,message", [
    ("train.compute_dtype", "float16", "train.compute_dtype"),
])
def test_precision_settings_are_validated(key, value, message):
  c = default.get_config("tiny")
  section, name = key.split(".")
  c[section][name] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(c)


def test_remat_is_refused_where_it_is_not_built():
  c = cifar_glow.get_config("tiny")
  c.train.remat = True
  with pytest.raises(config_lib.ConfigError, match="train.remat"):
    config_lib.validate(c)
  c = tiny("gan")
  c.train.remat = True
  with pytest.raises(config_lib.ConfigError, match="latent-vector generator"):
    config_lib.validate(c)
