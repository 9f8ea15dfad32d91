"""Layers shared by every model family: weight norm, conditional weight norm, the residual block.

One place per concept (ARCHITECTURE.md): the VAE, the flow's coupling networks and the
discriminators all import their convolutions and residual blocks from here.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
  return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_DIMS)


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
      y = jax.lax.conv_general_dilated(x, w.astype(x.dtype), self.strides, self.padding, dimension_numbers=_DIMS)
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
    return x @ _normalise_direction(v, (0,)) * g + b


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
