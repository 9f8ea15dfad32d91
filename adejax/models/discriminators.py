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
slope by ~7). With LeCun's default the slope started near 0.06: the paper's penalty (weight 100) then
dominated the first updates, and Adamax's infinity-norm accumulator remembers those large penalty
gradients for ~1/(1 - b2) steps, shrinking the cross-entropy's effective step 20-70x while the generator
ran ahead (measured; tests/test_adversarial.py checks that the discriminator now leads on real data).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import layers

DISCRIMINATORS = ("conv", "resnet")
LEAKY_SLOPE = 0.2


def he_init(negative_slope: float = 0.0):
  """He et al. (2015) normal initialisation for a (leaky) ReLU with the given negative slope."""
  return nn.initializers.variance_scaling(2.0 / (1.0 + negative_slope ** 2), "fan_in", "normal")


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
      conv = lambda c, k, s=1: nn.Conv(self._ch(c), (k, k), (s, s), kernel_init=he_init(LEAKY_SLOPE))
      for c in (64, 128, 256):
        x = act(conv(c, 3)(x))
        x = act(conv(c, 4, 2)(x))
      x = act(conv(512, 3)(x))
    else:
      x = nn.Conv(self._ch(16), (3, 3))(x)
      for c, resample in ((32, None), (64, "down"), (128, "down"), (256, "down")):
        if resample == "down" and (x.shape[1] % 2 or x.shape[2] % 2):
          resample = None  # odd sizes (e.g. 7x7 from 28x28) keep their resolution
        x = layers.ResidualBlock(self._ch(c), resample, activation="relu")(x)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2)) if self.arch == "resnet" else x.reshape(x.shape[0], -1)
    logit = nn.Dense(1, kernel_init=he_init(LEAKY_SLOPE if self.arch == "conv" else 0.0))(x)[:, 0]
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
