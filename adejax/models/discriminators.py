"""Discriminators of papers/002 (section 5.1 and Table 6); both return one logit per image.

  "conv":   the non-residual SNGAN-style discriminator (no spectral norm; leaky ReLU 0.2).
  "resnet": the residual discriminator "rd" of Table 6: conv 3x3 16, ResBlock 32, down 64, down 128,
            down 256, ReLU, global average pooling, dense 1.
With `num_classes > 0` the discriminator is class-conditional by projection (Miyato & Koyama 2018, used in
papers/002 appendix E.1): logit(x, y) = w . phi(x) + b + embed(y) . phi(x), phi the pooled features.
No normalisation layers: the gradient penalty is taken per example on the logit, so examples must not
interact. Inputs are images in [-1, 1] (real and generated in the same space, SPEC section 8).

Initialisation (`init_params`): kernels are He-initialised for the activation that follows them (gain
2 / (1 + 0.2^2) for leaky ReLU 0.2, 2 for ReLU), then the last dense layer is scaled so that the input
gradient of the logit has a mean norm of exactly 1 on uniform-noise images: the two-sided penalty starts
at its minimum whatever the architecture (average pooling alone divides the residual discriminator's
slope by ~7). A much smaller starting slope lets the paper's penalty (weight 100) dominate the first
updates, and Adamax's infinity-norm accumulator then shrinks the discriminator's steps while the generator
runs ahead (the measurements: docs/results/adversarial_small.md; tests/test_adversarial.py checks that the
discriminator leads on real data).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import layers


def to_signed(y: jax.Array) -> jax.Array:
  """Images in [0,1] -> [-1,1]."""
  return 2.0 * y - 1.0


def discriminator_input(y: jax.Array) -> jax.Array:
  """The one way any y-space image, real or generated, reaches the discriminator: clipped to the data
  range [0, 1], then mapped to [-1, 1] (SPEC section 8). The logit inverse maps feature space onto
  (-a/(1-2a), 1 + a/(1-2a)) = (-0.056, 1.056) for a = 0.05, so without the clip generated images
  span (-1.11, 1.11) while real ones stay in [-1, 1) and the range alone tells them apart."""
  return to_signed(jnp.clip(y, 0.0, 1.0))


DISCRIMINATORS = ("conv", "resnet")
LEAKY_SLOPE = 0.2


def he_init(negative_slope: float = 0.0):
  """He et al. (2015) normal initialisation for a (leaky) ReLU with the given negative slope."""
  return nn.initializers.variance_scaling(2.0 / (1.0 + negative_slope ** 2), "fan_in", "normal")


class DownConv4(nn.Module):
  """A 4x4 convolution with stride 2 and SAME padding, exactly as `layers.Conv(c, (4, 4), (2, 2))` (same
  parameters, same names), computed as a stride-1 2x2 convolution on the space-to-depth of the padded
  input: output i's window, padded rows 2i..2i+3, is blocks i and i+1. The gradient penalty
  differentiates the discriminator twice, and XLA:CPU runs the second derivative of a strided
  convolution (a dilated one) about 10x slower than that of a stride-1 convolution (benchmark
  --breakdown: the penalty took 36% of a CIFAR AV-ADE step at 13 GFLOP/s)."""
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    kernel = self.param("kernel", self.kernel_init, (4, 4, c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    pads = []
    for n in (h, w):
      total = max(2 * (-(-n // 2) - 1) + 4 - n, 0)  # lax's SAME: before = total // 2
      pads.append((total // 2, total - total // 2))
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    hp, wp = x.shape[1], x.shape[2]
    x = x.reshape(b, hp // 2, 2, wp // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hp // 2, wp // 2, 4 * c)
    k = kernel.reshape(2, 2, 2, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, -1)
    # Padding the blocks by one more and dropping that last output row and column is exact and costs a
    # few % of FLOPs, but XLA:CPU runs the penalty's second derivative of a VALID convolution about 15x
    # slower than that of a padded one (measured: 5.5 s vs 0.4 s for the CIFAR discriminator's penalty).
    y = layers.conv_general_dilated(x, k.astype(x.dtype), (1, 1), ((0, 1), (0, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y[:, :hp // 2 - 1, :wp // 2 - 1] + bias


class Discriminator(nn.Module):
  arch: str = "conv"
  width: float = 1.0
  num_classes: int = 0

  def _ch(self, c: int) -> int:
    return max(8, int(round(c * self.width)))

  @nn.compact
  def __call__(self, x: jax.Array, labels=None) -> jax.Array:
    if self.arch not in DISCRIMINATORS:
      raise ValueError(f"Unknown discriminator {self.arch!r}; choose one of {list(DISCRIMINATORS)}.")
    if x.ndim != 4:
      raise ValueError(f"Discriminator expects images (B, H, W, C), got shape {tuple(x.shape)}.")
    if self.arch == "conv":
      act = layers.get_activation("leaky_relu")
      init = he_init(LEAKY_SLOPE)
      names = (f"Conv_{i}" for i in range(7))  # the parameter names of nn.Conv's own numbering
      for c in (64, 128, 256):
        x = act(layers.Conv(self._ch(c), (3, 3), kernel_init=init, name=next(names))(x))
        x = act(DownConv4(self._ch(c), kernel_init=init, name=next(names))(x))
      x = act(layers.Conv(self._ch(512), (3, 3), kernel_init=init, name=next(names))(x))
    else:
      x = layers.Conv(self._ch(16), (3, 3))(x)
      for c, resample in ((32, None), (64, "down"), (128, "down"), (256, "down")):
        if resample == "down" and (x.shape[1] % 2 or x.shape[2] % 2):
          resample = None  # odd sizes (e.g. 7x7 from 28x28) keep their resolution
        x = layers.ResidualBlock(self._ch(c), resample, activation="relu")(x)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2)) if self.arch == "resnet" else x.reshape(x.shape[0], -1)
    logit = layers.Dense(1, kernel_init=he_init(LEAKY_SLOPE if self.arch == "conv" else 0.0))(x)[:, 0]
    if not self.num_classes:
      return logit  # an unconditional discriminator ignores labels
    if labels is None or labels.shape != x.shape[:1]:
      raise ValueError(f"This discriminator is class-conditional ({self.num_classes} classes): pass "
                       f"labels of shape ({x.shape[0]},).")
    embed = nn.Embed(self.num_classes, x.shape[-1], embedding_init=nn.initializers.normal(0.02))
    return logit + jnp.sum(embed(labels) * x, axis=-1)


def init_params(disc: Discriminator, rng: jax.Array, image_shape, labels=None):
  """Parameters of a fresh discriminator whose logit has a mean input-gradient norm of 1 on a batch of
  uniform-noise images in [-1, 1] (the last dense layer rescaled; see the module docstring)."""
  k_init, k_noise = jax.random.split(rng)
  batch = 8 if labels is None else labels.shape[0]
  x = jax.random.uniform(k_noise, (batch,) + tuple(image_shape), minval=-1.0, maxval=1.0)
  params = disc.init(k_init, x, labels)["params"]
  grads = jax.grad(lambda v: jnp.sum(disc.apply({"params": params}, v, labels)))(x)
  slope = jnp.mean(jnp.sqrt(jnp.sum(jnp.square(grads.reshape(batch, -1)), axis=-1)))
  return {**params, "Dense_0": jax.tree.map(lambda p: p / slope, params["Dense_0"])}
