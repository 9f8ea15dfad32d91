"""The invertible map f_psi of AV-ADE: a Real-NVP built from Distrax bijectors (papers/002 sec. 4, app. C, F).

Structure for `num_scales` scales and `num_couplings` couplings per scale (Dinh et al. 2017):
  scale s < last:  couplings with alternating checkerboard masks, squeeze (H,W,C)->(H/2,W/2,4C),
                   couplings with alternating channel masks, factor out half the channels,
                   recurse on the other half, re-assemble and un-squeeze.
  last scale:      couplings with alternating checkerboard masks.
The factored parts are re-assembled, so the feature tensor always has the image's shape.

Every coupling is a `distrax.MaskedCoupling` whose conditioner is a small weight-normed ResNet with batch
norm. Batch norm does not enter the log-det (the conditioner only sees the masked half), but its
statistics do: `train=True` uses and stores batch statistics, `train=False` uses the stored ones
(`layers.batch_norm`; evaluation re-estimates them at the current parameters). The last layer of every conditioner starts at zero, so a fresh flow is the identity.
"""
from __future__ import annotations

import functools
from typing import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adejax.models import layers


# ----------------------------------------------------------------------------- fixed preprocessing
class Sigmoid(distrax.Sigmoid):
  """distrax.Sigmoid with gradients that stay finite in the tails.

  distrax computes sigmoid(x) as `where(x < -9, exp(x), sigmoid(x))`: for x above ~88.7 the unused
  branch's exp(x) overflows and its gradient, inf * 0, is NaN. Generated features reach that (an
  AV-ADE decoder's prior samples had |f| up to 2700 in logit space at step 1000 of a stacked run), so
  every adversarial gradient through f_psi^{-1} and the preprocessing was NaN and the updates were
  skipped until the run stopped. Here sigmoid and softplus are jax.nn's, stable everywhere."""

  def forward_log_det_jacobian(self, x):
    return -jax.nn.softplus(-x) - jax.nn.softplus(x)

  def forward_and_log_det(self, x):
    return jax.nn.sigmoid(x), self.forward_log_det_jacobian(x)


def logit_preprocess(alpha: float = 0.05) -> distrax.Bijector:
  """y in [0,1]^(H,W,C) -> s = logit(alpha + (1 - 2 alpha) y), with its log-det summed per example."""
  return distrax.Block(
      distrax.Chain([distrax.Inverse(Sigmoid()),
                     distrax.ScalarAffine(shift=alpha, scale=1.0 - 2.0 * alpha)]), ndims=3)


def centre_preprocess() -> distrax.Bijector:
  """y in [0,1]^(H,W,C) -> 2y - 1 in [-1,1], log-det D log 2 per example."""
  return distrax.Block(distrax.ScalarAffine(shift=-1.0, scale=2.0), ndims=3)


PREPROCESSORS = {"logit": logit_preprocess, "centre": lambda alpha=None: centre_preprocess()}


def preprocess_bijector(name: str, alpha: float = 0.05) -> distrax.Bijector:
  if name not in PREPROCESSORS:
    raise ValueError(f"Unknown preprocessing {name!r}; choose one of {sorted(PREPROCESSORS)}.")
  return PREPROCESSORS[name](alpha)


def saturated_fraction(y: jax.Array, preprocess: str, alpha: float) -> jax.Array:
  """Fraction of generated pixels in the flat tails of the inverse preprocessing: where its slope
  sigmoid'(s) is below 1% of its peak, so (almost) no gradient reaches the generator through them.
  The linear 'centre' preprocessing has no tails."""
  if preprocess != "logit":
    return jnp.zeros((), jnp.float32)
  p = alpha + (1.0 - 2.0 * alpha) * y  # = sigmoid(s)
  return jnp.mean((p * (1.0 - p) < 0.01 * 0.25).astype(jnp.float32))


# ----------------------------------------------------------------------------- volume-preserving parts
def squeeze(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f"Cannot squeeze a {h}x{w} feature map: spatial sizes must be even. Use fewer "
                     "flow scales or an image size divisible by 2**(num_scales - 1).")
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


def checkerboard_mask(shape: Sequence[int], parity: int) -> np.ndarray:
  h, w, c = shape
  board = (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == parity
  return np.broadcast_to(board[:, :, None], (h, w, c)).copy()


def channel_mask(shape: Sequence[int], parity: int) -> np.ndarray:
  h, w, c = shape
  first_half = np.arange(c) < c // 2
  return np.broadcast_to(first_half != bool(parity), (h, w, c)).copy()


class MultiScale(distrax.Bijector):
  """One Real-NVP scale: checkerboard couplings, then (unless last) squeeze, channel couplings,
  factor-out of half the channels, the next scale on the other half, and re-assembly."""

  def __init__(self, checkerboard: distrax.Bijector, channel: distrax.Bijector | None = None,
               next_scale: distrax.Bijector | None = None):
    super().__init__(event_ndims_in=3, event_ndims_out=3)
    self._checkerboard, self._channel, self._next = checkerboard, channel, next_scale

  def forward_and_log_det(self, x):
    x, log_det = self._checkerboard.forward_and_log_det(x)
    if self._channel is None:
      return x, log_det
    x, ld = self._channel.forward_and_log_det(squeeze(x))
    kept, rest = jnp.split(x, 2, axis=-1)
    rest, ld_next = self._next.forward_and_log_det(rest)
    return unsqueeze(jnp.concatenate([kept, rest], axis=-1)), log_det + ld + ld_next

  def inverse_and_log_det(self, y):
    log_det = 0.0
    if self._channel is not None:
      kept, rest = jnp.split(squeeze(y), 2, axis=-1)
      rest, ld_next = self._next.inverse_and_log_det(rest)
      y, ld = self._channel.inverse_and_log_det(jnp.concatenate([kept, rest], axis=-1))
      y, log_det = unsqueeze(y), ld + ld_next
    x, ld = self._checkerboard.inverse_and_log_det(y)
    return x, log_det + ld


# ----------------------------------------------------------------------------- Flax module
class CouplingNet(nn.Module):
  """Conditioner: a small ResNet (weight norm + batch norm) giving shift and log-scale."""
  out_channels: int
  width: int = 32
  num_blocks: int = 2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool):
    h = layers.WNConv(self.width)(x)
    for _ in range(self.num_blocks):
      h = layers.ResidualBlock(self.width, activation="relu", batch_norm=True)(h, train=train)
    h = nn.relu(layers.batch_norm(h, train))
    h = layers.WNConv(2 * self.out_channels, g_init=nn.initializers.zeros)(h)
    shift, raw_scale = jnp.split(h, 2, axis=-1)
    # Real-NVP's bounded log-scale: a learned per-channel factor times tanh.
    factor = self.param("log_scale_factor", nn.initializers.ones, (self.out_channels,))
    return shift, factor * jnp.tanh(raw_scale)


def affine(params) -> distrax.Bijector:
  """(shift, log_scale) -> the elementwise affine bijector of an affine coupling."""
  shift, log_scale = params
  return distrax.ScalarAffine(shift=shift, log_scale=log_scale)


class RealNVP(nn.Module):
  """f_psi. Call `forward_and_log_det(x, train=...)` / `inverse_and_log_det(y, train=...)`
  through `module.apply(variables, x, method=...)`; log-dets are per example."""
  image_shape: tuple[int, int, int]
  num_scales: int = 1
  num_couplings: int = 3
  num_blocks: int = 2
  width: int = 32
  remat: bool = False  # rematerialise each coupling network (`layers.remat`)

  def setup(self):
    h, w, c = self.image_shape
    if not 1 <= self.num_scales <= 6:
      raise ValueError(f"flow num_scales must be in 1..6, got {self.num_scales}")
    factor = 2 ** (self.num_scales - 1)
    if h % factor or w % factor:
      raise ValueError(f"A {self.num_scales}-scale flow needs image sizes divisible by {factor}; "
                       f"got {h}x{w}. Reduce flow scales or pad the images.")
    make = functools.partial(layers.remat(CouplingNet, self.remat, static_argnums=(2,)),
                             width=self.width, num_blocks=self.num_blocks)
    nets, shapes = [], []
    for s in range(self.num_scales):
      shape = (h >> s, w >> s, c << s)  # the part of the tensor this scale transforms
      shapes.append(shape)
      nets.append([make(shape[2]) for _ in range(self.num_couplings)])
      if s < self.num_scales - 1:
        nets.append([make(4 * shape[2]) for _ in range(self.num_couplings)])
    self.nets = nets
    self.shapes = shapes

  def bijector(self, train: bool) -> distrax.Bijector:
    """The whole f_psi as one Distrax bijector (composes with distrax.Transformed / Chain)."""
    def chain(nets, shape, mask_fn):
      couplings = [distrax.MaskedCoupling(mask_fn(shape, i % 2), lambda x, net=net: net(x, train),
                                          affine, event_ndims=3)
                   for i, net in enumerate(nets)]
      return distrax.Chain(couplings[::-1])  # Chain applies its last element first

    bij = None
    for s in reversed(range(self.num_scales)):
      shape = self.shapes[s]
      board = chain(self.nets[2 * s], shape, checkerboard_mask)
      if bij is None:
        bij = MultiScale(board)
      else:
        sq = (shape[0] // 2, shape[1] // 2, 4 * shape[2])
        bij = MultiScale(board, chain(self.nets[2 * s + 1], sq, channel_mask), bij)
    return bij

  def log_det_map(self, x: jax.Array, train: bool = False) -> jax.Array:
    """f_psi's log-det as a per-element map of x's shape: each coupling's log-scale at the element it
    scales, moved back through every squeeze and factor-out to that element's place in x. Summed over
    (H, W, C) it is exactly `forward_and_log_det`'s log-det (tested), so its channel sum shows where in
    the image f_psi expands or contracts volume."""
    self._check(x)

    def couplings(nets, shape, mask_fn, h):
      total = jnp.zeros_like(h)
      for i, net in enumerate(nets):
        mask = jnp.asarray(mask_fn(shape, i % 2), bool)
        shift, log_scale = net(jnp.where(mask, h, 0.0), train)
        h = jnp.where(mask, h, h * jnp.exp(log_scale) + shift)
        total = total + jnp.where(mask, 0.0, log_scale)
      return h, total

    def scale(s, h):
      h, board = couplings(self.nets[2 * s], self.shapes[s], checkerboard_mask, h)
      if s == self.num_scales - 1:
        return h, board
      sq = squeeze(h)
      sq, channel = couplings(self.nets[2 * s + 1], sq.shape[1:], channel_mask, sq)
      kept, rest = jnp.split(sq, 2, axis=-1)
      rest, deeper = scale(s + 1, rest)
      inner = jnp.concatenate([jnp.zeros_like(kept), deeper], axis=-1)
      return unsqueeze(jnp.concatenate([kept, rest], axis=-1)), board + unsqueeze(channel + inner)

    return scale(0, x)[1]

  def _check(self, x):
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"RealNVP expects a batch of shape (B, {', '.join(map(str, self.image_shape))})"
                       f", got {tuple(x.shape)}.")

  def forward_and_log_det(self, x: jax.Array, train: bool = False):
    self._check(x)
    return self.bijector(train).forward_and_log_det(x)

  def inverse_and_log_det(self, y: jax.Array, train: bool = False):
    self._check(y)
    return self.bijector(train).inverse_and_log_det(y)

  def __call__(self, x: jax.Array, train: bool = False):
    return self.forward_and_log_det(x, train)
