"""Layers shared by every model family: the compute precision, weight norm, conditional weight norm,
the residual block, rematerialisation.

One place per concept (ARCHITECTURE.md): the VAE, the flow's coupling networks and the
discriminators all import their convolutions and residual blocks from here.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# ----------------------------------------------------------------------------- compute precision
# Mixed precision (train.compute_dtype): the models' convolutions and matmuls take their operands in
# the compute dtype (bfloat16 on accelerators) and hand back float32, so parameters, optimiser states,
# activations between layers, batch-norm statistics, log-dets, KLs and every loss reduction stay in
# float32 and the likelihood bookkeeping loses no precision. It is a trace-time policy, like
# jax.default_matmul_precision: `train.Trainer` traces its compiled functions inside `compute_dtype(...)`;
# every model layer reads it through `conv_general_dilated` / `dot_general` below (flax's own
# nn.Conv / nn.Dense through `Conv` / `Dense`). Outside the context everything is float32, as before.
# It is read when a function is traced and jax.jit caches traces by function, so jit each function
# under one policy (Trainer jits its own functions for its config's dtype).
_COMPUTE_DTYPE: contextvars.ContextVar = contextvars.ContextVar("adejax_compute_dtype", default=None)
COMPUTE_DTYPES = ("float32", "bfloat16")


@contextlib.contextmanager
def compute_dtype(dtype):
  """Trace the models' convolutions and matmuls with operands in `dtype` (None or "float32": as they
  are) while inside."""
  dtype = None if dtype is None else jnp.dtype(dtype)
  token = _COMPUTE_DTYPE.set(None if dtype == jnp.float32 else dtype)
  try:
    yield
  finally:
    _COMPUTE_DTYPE.reset(token)


def _in_compute_dtype(op):
  """`op(lhs, rhs, ...)` on operands cast to the compute dtype, its result cast back to theirs."""
  def wrapped(lhs, rhs, *args, **kwargs):
    dtype, out = _COMPUTE_DTYPE.get(), jnp.result_type(lhs, rhs)
    if dtype is None or dtype == out or not jnp.issubdtype(out, jnp.floating):
      return op(lhs, rhs, *args, **kwargs)
    return op(lhs.astype(dtype), rhs.astype(dtype), *args, **kwargs).astype(out)
  wrapped.__name__ = op.__name__
  return wrapped


conv_general_dilated = _in_compute_dtype(jax.lax.conv_general_dilated)
dot_general = _in_compute_dtype(jax.lax.dot_general)


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """x @ w over x's last axis, in the compute dtype."""
  return dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def Conv(*args, **kwargs) -> nn.Conv:  # noqa: N802 (a module constructor)
  """flax's nn.Conv (same parameters and names) computing in the compute dtype."""
  return nn.Conv(*args, conv_general_dilated=conv_general_dilated, **kwargs)


def Dense(*args, **kwargs) -> nn.Dense:  # noqa: N802
  """flax's nn.Dense (same parameters and names) computing in the compute dtype."""
  return nn.Dense(*args, dot_general=dot_general, **kwargs)


class ConvTranspose(nn.Module):
  """flax's nn.ConvTranspose (NHWC, kernel (kh, kw, in, out), bias; the same parameters, names and
  function, tested) computing in the compute dtype: its operands go through the policy as every other
  convolution's do, so its backward pass runs in the compute dtype too (nn.ConvTranspose's own
  `dtype` with a float32 result would leave the backward convolutions in float32)."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = "SAME"
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return conv_transpose(x, kernel, tuple(self.strides), self.padding) + bias


conv_transpose = _in_compute_dtype(jax.lax.conv_transpose)


def remat(module_class, enabled: bool = True, static_argnums=()):
  """`module_class`, rematerialised when `enabled` (train.remat): its activations are recomputed in the
  backward pass rather than stored, trading about one more forward pass for memory. Parameter names
  do not change (the modules are named by the attribute or name they are given). Python values that
  steer a call (e.g. `train`) must be passed positionally and listed in `static_argnums` (self is 0)."""
  return nn.remat(module_class, static_argnums=static_argnums) if enabled else module_class


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "elu": nn.elu,
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.2),
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


def _normalise_direction(v: jax.Array, reduce_axes: Sequence[int]) -> jax.Array:
  """v / ||v|| per output unit (Salimans & Kingma 2016); the norm runs over all but the last axis."""
  return v * jax.lax.rsqrt(jnp.sum(jnp.square(v), axis=tuple(reduce_axes), keepdims=True) + 1e-12)


_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, padding="SAME"):
  return conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_DIMS)


@jax.custom_vjp
def conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
  """A stride-1 "SAME" convolution (NHWC images, HWIO kernel of odd size) whose backward pass is two
  convolutions in the forward layout. Inside a `lax.scan` body XLA CPU cannot re-lay-out the kernel
  gradient's convolution (batch as features) and runs it on a generic path: measured 40x slower than
  unrolled (8 x 16 x 16 x 12 images, width 512). Same values as `jax.lax.conv_general_dilated`; used by
  the scanned Glow steps. Reverse mode only (jax.grad, jax.jacrev): forward mode (jax.jacfwd) raises."""
  return _conv(x, w)


def _conv_same_fwd(x, w):
  return _conv(x, w), (x, w)


def _conv_same_bwd(res, g):
  x, w = res
  kh, kw = w.shape[:2]
  dx = _conv(g, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2))
  # dw[i, j, c, o] = sum_{b, h, w} x[b, h + i, w + j, c] g[b, h, w, o]: a convolution of the image, with
  # its channels as the batch and its batch as the features, by g as the kernel.
  pad = ((kh // 2, kh // 2), (kw // 2, kw // 2))
  dw = _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), pad).transpose(1, 2, 0, 3)
  return dx, dw.astype(w.dtype)


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


class WNConv(nn.Module):
  """Weight-normalised convolution w = g / ||v|| * v.

  With `num_classes > 0` it becomes the conditional weight norm of papers/002 appendix E.1:
  the scale g(y) and the bias b(y) are looked up per class label y (eq. 16).
  `g_init=zeros` gives a layer whose output starts at exactly zero (used for the flow's last layers).
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: str = "SAME"
  num_classes: int = 0
  g_init: Callable = nn.initializers.ones
  kernel_init: Callable = nn.initializers.normal(0.05)
  scan_friendly: bool = False  # `conv_same` (stride 1, "SAME", odd kernel): fast inside a lax.scan on CPU

  @nn.compact
  def __call__(self, x: jax.Array, label: Optional[jax.Array] = None) -> jax.Array:
    in_features = x.shape[-1]
    if self.scan_friendly and (tuple(self.strides) != (1, 1) or self.padding != "SAME"
                               or any(k % 2 == 0 for k in self.kernel_size)):
      raise ValueError("scan_friendly WNConv needs stride 1, SAME padding and an odd kernel")
    v = self.param("v", self.kernel_init, (*self.kernel_size, in_features, self.features))
    if self.num_classes:
      if label is None:
        raise ValueError("A conditional WNConv (num_classes > 0) needs class labels.")
      g = self.param("g", lambda k, s: self.g_init(k, s), (self.num_classes, self.features))[label]
      b = self.param("b", nn.initializers.zeros, (self.num_classes, self.features))[label]
      g, b = g[:, None, None, :], b[:, None, None, :]
    else:
      g = self.param("g", self.g_init, (self.features,))
      b = self.param("b", nn.initializers.zeros, (self.features,))
    w = _normalise_direction(v, (0, 1, 2))
    if self.scan_friendly:
      y = conv_same(x, w.astype(x.dtype))
    else:
      y = conv_general_dilated(x, w.astype(x.dtype), self.strides, self.padding, dimension_numbers=_DIMS)
    return y * g + b


class WNDense(nn.Module):
  """Weight-normalised dense layer (same parametrisation as WNConv)."""
  features: int
  g_init: Callable = nn.initializers.ones

  @nn.compact
  def __call__(self, x: jax.Array, mask=None) -> jax.Array:
    """`mask` (in_features, features) zeroes connections, e.g. MADE masks for autoregressive flows."""
    v = self.param("v", nn.initializers.normal(0.05), (x.shape[-1], self.features))
    if mask is not None:
      v = v * mask
    g = self.param("g", self.g_init, (self.features,))
    b = self.param("b", nn.initializers.zeros, (self.features,))
    return matmul(x, _normalise_direction(v, (0,))) * g + b


def batch_norm(x: jax.Array, train: bool) -> jax.Array:
  """The batch norm of every model (f_psi's coupling networks, the GAN generator), one definition.

  train=True normalises with the batch's statistics and stores them as the "running" statistics
  (momentum 0: the latest batch's, not an average over past parameters); train=False uses the stored
  ones. Why momentum 0: with an exponential average (momentum 0.9) the stored statistics lag behind
  parameters that move every step; f_psi, which has channels of variance ~1e-5, then computed a
  different function in eval mode (a held-out bound of 52 bits/dim against 4.4 with batch statistics,
  measured). With momentum 0 the sampling direction of a training step, f_psi^{-1} on the stored
  statistics, inverts exactly the map that step's likelihood pass trained; and evaluation re-estimates
  the statistics at the current parameters over many training batches (train.Trainer.refresh_batch_stats).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.0)(x)


def upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling (NHWC)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array) -> jax.Array:
  """2x2 average pooling (NHWC); spatial sizes must be even."""
  return nn.avg_pool(x, (2, 2), (2, 2))


class ResidualBlock(nn.Module):
  """Pre-activation residual block used by all families.

  resample: None, "up" (nearest upsampling first) or "down" (average pooling last).
  batch_norm: only the flow's coupling networks use it (Real-NVP); VAEs and the
  gradient-penalised discriminators must not.
  """
  features: int
  resample: Optional[str] = None
  activation: str = "elu"
  batch_norm: bool = False
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False, label=None) -> jax.Array:
    if self.resample not in (None, "up", "down"):
      raise ValueError(f"resample must be None, 'up' or 'down', got {self.resample!r}")
    act = get_activation(self.activation)

    def norm_act(h):
      if self.batch_norm:
        h = batch_norm(h, train)
      return act(h)

    h = norm_act(x)
    if self.resample == "up":
      h, x = upsample(h), upsample(x)
    h = WNConv(self.features, num_classes=self.num_classes)(h, label)
    h = norm_act(h)
    h = WNConv(self.features, num_classes=self.num_classes)(h, label)
    if self.resample == "down":
      h, x = downsample(h), downsample(x)
    if x.shape[-1] != self.features:
      x = WNConv(self.features, (1, 1), num_classes=self.num_classes)(x, label)
    return x + h
