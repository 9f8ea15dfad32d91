"""The Glow layer of papers/003 (Kingma & Dhariwal 2018, additive version), as Distrax bijectors.

One block = actnorm -> invertible 1x1 convolution -> additive coupling; `depth` blocks (32 in the paper),
no squeeze and no split, so the layer maps an (H, W, C) image to an (H, W, C) image.

- ActNorm: y = exp(log_scale) * x + shift per channel. Data-dependent initialisation (`Glow.data_init`)
  sets each block's actnorm so that its output has zero mean and unit variance per channel on a batch.
- Invertible 1x1 convolution: y = x W at every pixel, log|det| = H W log|det W|; or LU-parametrised,
  W = P L (U + diag(sign * exp(log_s))) with P fixed, L unit lower- and U strictly upper-triangular,
  log|det| = H W sum(log_s).
- Additive coupling (NICE): y_b = x_b + t(x_a), log-det 0. x_a / x_b are the two halves of the channels
  when C >= 2; for one-channel images (Fashion-MNIST) the halves are the two colours of a checkerboard
  (Real-NVP's spatial mask), alternating parity from block to block.

A fresh layer is exactly the identity (actnorm 0/0, W = I, coupling networks' last layer zero), so the
VAE it sits on is trained in phase 1 as if it were absent, and phase 2 starts from the VAE's density.
"""
from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adejax.models import flows, layers


class Invertible1x1(distrax.Bijector):
  """x -> x W over the channel axis of (B, H, W, C) images; `log_abs_det` is log|det W| (per pixel)."""

  def __init__(self, weight: jax.Array, log_abs_det: jax.Array, inverse_weight: jax.Array):
    super().__init__(event_ndims_in=3, event_ndims_out=3)
    self._w, self._log_abs_det, self._w_inv = weight, log_abs_det, inverse_weight

  def _log_det(self, x):
    return jnp.broadcast_to(self._log_abs_det * (x.shape[-3] * x.shape[-2]), x.shape[:-3])

  def forward_and_log_det(self, x):
    return x @ self._w, self._log_det(x)

  def inverse_and_log_det(self, y):
    return y @ self._w_inv, -self._log_det(y)


def actnorm_bijector(shift: jax.Array, log_scale: jax.Array) -> distrax.Bijector:
  return distrax.Block(distrax.ScalarAffine(shift=shift, log_scale=log_scale), ndims=3)


class ActNorm(nn.Module):
  channels: int

  @nn.compact
  def __call__(self) -> distrax.Bijector:
    shift = self.param("shift", nn.initializers.zeros, (self.channels,))
    log_scale = self.param("log_scale", nn.initializers.zeros, (self.channels,))
    return actnorm_bijector(shift, log_scale)


class Conv1x1(nn.Module):
  channels: int
  lu: bool = False

  @nn.compact
  def __call__(self) -> distrax.Bijector:
    c = self.channels
    if not self.lu:
      w = self.param("weight", lambda k, s: jnp.eye(c), (c, c))
      log_abs_det = jnp.linalg.slogdet(w)[1]
      return Invertible1x1(w, log_abs_det, jnp.linalg.inv(w))
    lower = self.param("lower", nn.initializers.zeros, (c, c))
    upper = self.param("upper", nn.initializers.zeros, (c, c))
    log_s = self.param("log_s", nn.initializers.zeros, (c,))
    # P and sign(s) are fixed at their values for W = I (Glow draws them from a random rotation).
    strict = np.tril(np.ones((c, c), np.float32), -1)
    l = lower * strict + jnp.eye(c)
    u = upper * strict.T + jnp.diag(jnp.exp(log_s))
    w = l @ u
    eye = jnp.eye(c)
    w_inv = jax.scipy.linalg.solve_triangular(
        u, jax.scipy.linalg.solve_triangular(l, eye, lower=True, unit_diagonal=True), lower=False)
    return Invertible1x1(w, jnp.sum(log_s), w_inv)


class CouplingShift(nn.Module):
  """Glow's coupling network: conv 3x3 -> ReLU -> conv 1x1 -> ReLU -> conv 3x3 (zero-initialised)."""
  out_channels: int
  width: int = 512

  @nn.compact
  def __call__(self, x):
    h = nn.relu(layers.WNConv(self.width)(x))
    h = nn.relu(layers.WNConv(self.width, (1, 1))(h))
    return layers.WNConv(self.out_channels, g_init=nn.initializers.zeros)(h)


def coupling_mask(shape, parity: int) -> np.ndarray:
  """The half of the tensor the coupling conditions on: channels for C >= 2, else a checkerboard."""
  return (flows.channel_mask if shape[-1] >= 2 else flows.checkerboard_mask)(shape, parity)


class Glow(nn.Module):
  """The Glow layer f: image -> image. `forward_and_log_det` / `inverse_and_log_det` through
  `module.apply(variables, x, method=...)`; `data_init(x)` gives the actnorm parameters of the
  data-dependent initialisation on batch x (merge them into the params)."""
  image_shape: tuple[int, int, int]
  depth: int = 32
  width: int = 512
  lu: bool = False

  def setup(self):
    c = self.image_shape[-1]
    self.actnorms = [ActNorm(c) for _ in range(self.depth)]
    self.convs = [Conv1x1(c, self.lu) for _ in range(self.depth)]
    self.nets = [CouplingShift(c, self.width) for _ in range(self.depth)]

  def _coupling(self, i: int) -> distrax.Bijector:
    return distrax.MaskedCoupling(coupling_mask(self.image_shape, i % 2), self.nets[i],
                                  lambda shift: distrax.ScalarAffine(shift=shift), event_ndims=3)

  def block(self, i: int) -> distrax.Bijector:
    return distrax.Chain([self._coupling(i), self.convs[i](), self.actnorms[i]()])  # last applied first

  def bijector(self) -> distrax.Bijector:
    return distrax.Chain([self.block(i) for i in reversed(range(self.depth))])

  def forward_and_log_det(self, x):
    return self.bijector().forward_and_log_det(x)

  def inverse_and_log_det(self, y):
    return self.bijector().inverse_and_log_det(y)

  def __call__(self, x):
    return self.forward_and_log_det(x)

  def data_init(self, x) -> dict:
    """{"actnorms_i": {"shift", "log_scale"}}: each actnorm set, in order, so that its output on the
    batch x has zero mean and unit variance per channel (the later blocks see the earlier ones' new
    actnorms)."""
    out = {}
    for i in range(self.depth):
      axes = tuple(range(x.ndim - 1))
      mean, std = jnp.mean(x, axes), jnp.std(x, axes) + 1e-6
      log_scale, shift = -jnp.log(std), -mean / std
      out[f"actnorms_{i}"] = {"shift": shift, "log_scale": log_scale}
      x = actnorm_bijector(shift, log_scale).forward(x)
      x = self._coupling(i).forward(self.convs[i]().forward(x))
    return out
