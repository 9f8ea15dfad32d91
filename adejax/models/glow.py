"""The Glow layer of papers/003 (Kingma & Dhariwal 2018, additive version), as Distrax bijectors.

One block = actnorm -> invertible 1x1 convolution -> additive coupling; `depth` blocks (32 in the paper),
no squeeze and no split, so the layer maps an (H, W, C) image to an (H, W, C) image. The blocks'
parameters are stacked on a leading axis and the layer scans over them (one compiled block).

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
import flax
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

  @staticmethod
  def _matmul(x, w):  # as one 2-D matmul: its weight gradient stays a plain GEMM inside a lax.scan
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(x.shape)

  def forward_and_log_det(self, x):
    return self._matmul(x, self._w), self._log_det(x)

  def inverse_and_log_det(self, y):
    return self._matmul(y, self._w_inv), -self._log_det(y)


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
  """Glow's coupling network: conv 3x3 -> ReLU -> conv 1x1 -> ReLU -> conv 3x3 (zero-initialised).
  `affine`: it gives (shift, log_scale) with Glow's scale = sigmoid(raw + 2), else the shift alone."""
  out_channels: int
  width: int = 512
  affine: bool = False

  @nn.compact
  def __call__(self, x):
    h = nn.relu(layers.WNConv(self.width, scan_friendly=True)(x))
    h = nn.relu(layers.WNConv(self.width, (1, 1), scan_friendly=True)(h))
    out = layers.WNConv(self.out_channels * (2 if self.affine else 1), g_init=nn.initializers.zeros,
                        scan_friendly=True)(h)
    if not self.affine:
      return out
    shift, raw = jnp.split(out, 2, axis=-1)
    return shift, jax.nn.log_sigmoid(raw + 2.0)


COUPLINGS = ("additive", "affine")


def coupling_mask(shape, parity: int) -> np.ndarray:
  """The half of the tensor the coupling conditions on: channels for C >= 2, else a checkerboard."""
  return (flows.channel_mask if shape[-1] >= 2 else flows.checkerboard_mask)(shape, parity)


class GlowStep(nn.Module):
  """One step of flow: actnorm -> invertible 1x1 convolution -> coupling, whose conditioning half is
  `mask` (True: unchanged). `Glow` stacks `depth` of them and scans over them."""
  channels: int
  width: int = 512
  lu: bool = False
  coupling: str = "additive"

  def setup(self):
    self.actnorm = ActNorm(self.channels)
    self.conv = Conv1x1(self.channels, self.lu)
    self.net = CouplingShift(self.channels, self.width, self.coupling == "affine")

  def _coupling(self, mask) -> distrax.Bijector:
    inner = flows.affine if self.coupling == "affine" else (lambda shift: distrax.ScalarAffine(shift=shift))
    return distrax.MaskedCoupling(mask, self.net, inner, event_ndims=3)

  def forward(self, x, mask):
    return distrax.Chain([self._coupling(mask), self.conv(), self.actnorm()]).forward_and_log_det(x)

  def inverse(self, y, mask):
    return distrax.Chain([self._coupling(mask), self.conv(), self.actnorm()]).inverse_and_log_det(y)

  def after_actnorm(self, x, mask):
    """The step's 1x1 convolution and coupling alone (the data-dependent initialisation's second half)."""
    return self._coupling(mask).forward(self.conv().forward(x))


class Glow(nn.Module):
  """The Glow layer f: image -> image. `forward_and_log_det` / `inverse_and_log_det` through
  `module.apply(variables, x, method=...)`; `data_init(x)` gives the layer's params with every actnorm
  set by the data-dependent initialisation on batch x. `coupling` "additive" (papers/003's layer,
  log-det 0) or "affine" (Glow's, scale sigmoid(raw + 2): a fresh affine layer is not the identity).

  The `depth` steps' parameters are stacked on a leading axis (params["blocks"], one `GlowStep` each)
  and the layer is a `lax.scan` over them: XLA compiles one step, not `depth` (a 3 x 32 Glow unrolled
  did not compile in 15 minutes on CPU). The coupling masks alternate parity from step to step."""
  image_shape: tuple[int, int, int]
  depth: int = 32
  width: int = 512
  lu: bool = False
  coupling: str = "additive"

  def _step(self) -> GlowStep:
    return GlowStep(self.image_shape[-1], self.width, self.lu, self.coupling, parent=None)

  def _masks(self) -> np.ndarray:
    return np.stack([coupling_mask(self.image_shape, i % 2) for i in range(self.depth)])

  def setup(self):
    if self.coupling not in COUPLINGS:
      raise ValueError(f"Unknown coupling {self.coupling!r}; choose one of {COUPLINGS}.")
    if self.depth < 1:
      raise ValueError(f"A Glow layer needs depth >= 1, got {self.depth}.")
    step, mask, x = self._step(), self._masks()[0], jnp.zeros((1,) + tuple(self.image_shape), jnp.float32)

    def init(rng):
      one = lambda k: step.init(k, x, mask, method="forward")["params"]
      return jax.vmap(one)(jax.random.split(rng, self.depth))

    self.blocks = self.param("blocks", init)

  def _scan(self, method: str, x, reverse: bool = False):
    step = self._step()

    def body(carry, block):
      params, mask = block
      h, logdet = step.apply({"params": params}, carry[0], mask, method=method)
      return (h, carry[1] + logdet), None

    logdet = jnp.zeros(x.shape[:-3], x.dtype)
    return jax.lax.scan(body, (x, logdet), (self.blocks, self._masks()), reverse=reverse)[0]

  def forward_and_log_det(self, x):
    return self._scan("forward", x)

  def inverse_and_log_det(self, y):
    return self._scan("inverse", y, reverse=True)

  def __call__(self, x):
    return self.forward_and_log_det(x)

  def data_init(self, x) -> dict:
    """The layer's params ({"blocks": ...}) with each actnorm set, in order, so that its output on the
    batch x has zero mean and unit variance per channel (later steps see the earlier ones' new
    actnorms)."""
    return self.data_init_and_forward(x)[0]

  def data_init_and_forward(self, x) -> tuple[dict, jax.Array]:
    """`data_init(x)` and the layer's output on x with those actnorms."""
    step = self._step()

    def body(h, block):
      params, mask = block
      axes = tuple(range(h.ndim - 1))
      mean, std = jnp.mean(h, axes), jnp.std(h, axes) + 1e-6
      actnorm = {"shift": -mean / std, "log_scale": -jnp.log(std)}
      h = actnorm_bijector(actnorm["shift"], actnorm["log_scale"]).forward(h)
      h = step.apply({"params": {**params, "actnorm": actnorm}}, h, mask, method="after_actnorm")
      return h, actnorm

    x, actnorms = jax.lax.scan(body, x, (self.blocks, self._masks()))
    return {"blocks": {**flax.core.unfreeze(self.blocks), "actnorm": actnorms}}, x


# ----------------------------------------------------------------------------- the standalone Glow
class MultiScaleGlow(nn.Module):
  """The standalone multi-scale Glow of Kingma & Dhariwal (2018), papers/003's baseline (Tables 2-4).

  `levels` levels, each: squeeze (H, W, C) -> (H/2, W/2, 4C), a `Glow` of `depth` steps, then (except
  the last level) a split: the first half of the channels goes on to the next level, the second half z_l
  is factored out with a conditional prior N(z_l; mu_l(h), sigma_l(h)) given by a zero-initialised conv
  of the half h that goes on. The last level's output has a learned (`learn_top`) or standard-normal
  prior. The map x -> (z_0, ..., z_{L-1}) is a bijection; `standardise` gives
  u_l = (z_l - mu_l) / sigma_l, which is N(0, I) under the model, with log|det du/dx| =
  log|det dz/dx| - sum log sigma: the whole density is exact (tested against slogdet(jacrev)).
  """
  image_shape: tuple[int, int, int]
  levels: int = 3
  depth: int = 32
  width: int = 512
  lu: bool = True
  coupling: str = "affine"
  learn_top: bool = True

  def shapes(self) -> list[tuple[int, int, int]]:
    """The shape of each level's factored-out z_l (the last: the top), in order."""
    h, w, c = self.image_shape
    out = []
    for level in range(self.levels):
      h, w, c = h // 2, w // 2, 4 * c
      if level < self.levels - 1:
        c //= 2
      out.append((h, w, c))
    return out

  def setup(self):
    h, w, c = self.image_shape
    if h % 2 ** self.levels or w % 2 ** self.levels:
      raise ValueError(f"A Glow of {self.levels} levels squeezes {self.levels} times: it needs an image "
                       f"size divisible by {2 ** self.levels}, got {h}x{w}.")
    shapes = self.shapes()
    self.steps = [Glow((s[0], s[1], 4 * (c if i == 0 else shapes[i - 1][-1])), self.depth, self.width,
                       self.lu, self.coupling) for i, s in enumerate(shapes)]
    self.split_priors = [layers.WNConv(2 * s[-1], g_init=nn.initializers.zeros) for s in shapes[:-1]]
    top = shapes[-1]
    self.top = self.param("top_prior", nn.initializers.zeros, top[:2] + (2 * top[-1],)) if self.learn_top else None

  def _prior(self, level: int, h, batch: int):
    """(mean, log_std) of z_level's prior given the half h that goes on (the top: its own)."""
    if level < self.levels - 1:
      return jnp.split(self.split_priors[level](h), 2, axis=-1)
    if self.top is None:
      zeros = jnp.zeros((batch,) + self.shapes()[-1], jnp.float32)
      return zeros, zeros
    return jnp.split(jnp.broadcast_to(self.top, (batch,) + self.top.shape), 2, axis=-1)

  def forward(self, x):
    """x (B, H, W, C) -> (zs, means, log_stds, log|det dz/dx| per example), lists over levels."""
    zs, means, log_stds, logdet = [], [], [], jnp.zeros(x.shape[:1], x.dtype)
    h = x
    for level in range(self.levels):
      h, ld = self.steps[level].forward_and_log_det(flows.squeeze(h))
      logdet = logdet + ld
      if level < self.levels - 1:
        h, z = jnp.split(h, 2, axis=-1)
      else:
        z = h
      mean, log_std = self._prior(level, h, x.shape[0])
      zs, means, log_stds = zs + [z], means + [mean], log_stds + [log_std]
    return zs, means, log_stds, logdet

  def __call__(self, x):
    return self.forward(x)

  def standardise(self, x):
    """x -> u (B, D) flat, N(0, I) under the model, and log|det du/dx| per example."""
    zs, means, log_stds, logdet = self.forward(x)
    us = [((z - m) * jnp.exp(-s)).reshape(x.shape[0], -1) for z, m, s in zip(zs, means, log_stds)]
    return jnp.concatenate(us, -1), logdet - sum(jnp.sum(s.reshape(x.shape[0], -1), -1) for s in log_stds)

  def unstandardise(self, u, temperature: float = 1.0):
    """The inverse of `standardise` with the noise scaled by `temperature`: u (B, D) -> x (B, H, W, C).
    Sampling: u ~ N(0, I); temperature 1 inverts `standardise` exactly."""
    shapes = self.shapes()
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    us = [p.reshape((u.shape[0],) + s) for p, s in zip(jnp.split(u, sizes, axis=-1), shapes)]
    h = None
    for level in reversed(range(self.levels)):
      mean, log_std = self._prior(level, h, u.shape[0])
      z = mean + temperature * jnp.exp(log_std) * us[level]
      h = z if h is None else jnp.concatenate([h, z], axis=-1)
      h = flows.unsqueeze(self.steps[level].inverse_and_log_det(h)[0])
    return h

  def data_init(self, x) -> dict:
    """The actnorm parameters of every level's steps from a data-dependent initialisation on batch x:
    {"steps_l": <that level's Glow params, actnorms set>} to merge into the params."""
    out, h = {}, x
    for level in range(self.levels):
      out[f"steps_{level}"], h = self.steps[level].data_init_and_forward(flows.squeeze(h))
      if level < self.levels - 1:
        h = jnp.split(h, 2, axis=-1)[0]
    return out


class GlowModel(nn.Module):
  """The standalone Glow as a likelihood model: y in [0,1]^D --preprocess--> x^ --MultiScaleGlow--> z.
  `__call__` returns the per-example terms of every family (`losses.coverage_loss`): features z (all
  levels, flat), their prior's mean and log std, kl = log_q = log_p = 0 (no latent variable to infer:
  the bound is the exact log-likelihood, and IWAE-K equals it for every K) and logdet (preprocessing +
  Glow; flow_logdet the Glow's own part)."""
  image_shape: tuple[int, int, int]
  preprocess: str = "centre"
  logit_alpha: float = 0.05
  levels: int = 3
  depth: int = 32
  width: int = 512
  lu: bool = True
  coupling: str = "affine"
  learn_top: bool = True

  def setup(self):
    self.flow = MultiScaleGlow(self.image_shape, self.levels, self.depth, self.width, self.lu, self.coupling,
                               self.learn_top)

  def _preprocess(self):
    return flows.preprocess_bijector(self.preprocess, self.logit_alpha)

  def __call__(self, y: jax.Array, rng: jax.Array = None, train: bool = True, labels=None):
    del rng, train, labels  # deterministic, no batch norm, unconditional
    s, logdet = self._preprocess().forward_and_log_det(y)
    zs, means, log_stds, glow_logdet = self.flow(s)
    flat = lambda parts: jnp.concatenate([p.reshape(y.shape[0], -1) for p in parts], -1)
    zero = jnp.zeros_like(logdet)
    return {"features": flat(zs), "mean": flat(means), "log_sigma": flat(log_stds), "kl": zero,
            "log_q": zero, "log_p": zero, "logdet": logdet + glow_logdet, "flow_logdet": glow_logdet}

  def to_noise(self, y: jax.Array) -> jax.Array:
    """The standard-normal noise u (B, D) that `from_noise` maps back to y."""
    return self.flow.standardise(self._preprocess().forward(y))[0]

  def from_noise(self, u: jax.Array, temperature: float = 1.0) -> jax.Array:
    return self._preprocess().inverse(self.flow.unstandardise(u, temperature))

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0, noise: bool = True,
               labels=None, train: bool = False) -> jax.Array:
    """Samples in y-space: u ~ N(0, I), every level's z at `temperature` x its prior's std."""
    del noise, labels, train
    return self.from_noise(jax.random.normal(rng, (batch, int(np.prod(self.image_shape)))), temperature)

  def reconstruct(self, y: jax.Array, rng: jax.Array, labels=None) -> jax.Array:
    """f^-1(f(y)): a flow reconstructs exactly (up to float error); shown for a uniform evaluation."""
    del rng, labels
    return self.from_noise(self.to_noise(y))

  def interpolate(self, y_a: jax.Array, y_b: jax.Array, steps: int, labels=None) -> jax.Array:
    """Linear interpolations between the noises of two batches, decoded: (B, steps, H, W, C)."""
    del labels
    ua, ub = self.to_noise(y_a), self.to_noise(y_b)
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
    y = self.from_noise((ua[:, None] * (1 - t) + ub[:, None] * t).reshape(-1, ua.shape[-1]))
    return y.reshape((y_a.shape[0], steps) + y.shape[1:])

  def data_init(self, y: jax.Array) -> dict:
    """{"steps_l": <Glow params>}: each level's params of `self.flow` after a data-dependent
    initialisation on batch y."""
    return self.flow.data_init(self._preprocess().forward(y))
