"""Discriminators of papers/002 (section 5.1 and Table 6); both return one logit per image.

  "conv":   the non-residual SNGAN-style discriminator (no spectral norm; leaky ReLU 0.2).
  "resnet": the residual discriminator "rd" of Table 6: conv 3x3 16, ResBlock 32, down 64, down 128,
            down 256, ReLU, global average pooling, dense 1.
With `num_classes > 0` the discriminator is class-conditional by projection (Miyato & Koyama 2018, used in
papers/002 appendix E.1): logit(x, y) = w . phi(x) + b + embed(y) . phi(x), phi the pooled features.
No normalisation layers: the gradient penalty is taken per example on the logit, so examples must not
interact. Inputs are images in [-1, 1] (real and generated in the same space, SPEC section 8).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import layers

DISCRIMINATORS = ("conv", "resnet")


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
      for c in (64, 128, 256):
        x = act(nn.Conv(self._ch(c), (3, 3))(x))
        x = act(nn.Conv(self._ch(c), (4, 4), (2, 2))(x))
      x = act(nn.Conv(self._ch(512), (3, 3))(x))
    else:
      x = nn.Conv(self._ch(16), (3, 3))(x)
      for c, resample in ((32, None), (64, "down"), (128, "down"), (256, "down")):
        if resample == "down" and (x.shape[1] % 2 or x.shape[2] % 2):
          resample = None  # odd sizes (e.g. 7x7 from 28x28) keep their resolution
        x = layers.ResidualBlock(self._ch(c), resample, activation="relu")(x)
      x = nn.relu(x)
    x = jnp.mean(x, axis=(1, 2)) if self.arch == "resnet" else x.reshape(x.shape[0], -1)
    logit = nn.Dense(1)(x)[:, 0]
    if not self.num_classes:
      return logit  # an unconditional discriminator ignores labels
    if labels is None or labels.shape != x.shape[:1]:
      raise ValueError(f"This discriminator is class-conditional ({self.num_classes} classes): pass "
                       f"labels of shape ({x.shape[0]},).")
    embed = nn.Embed(self.num_classes, x.shape[-1], embedding_init=nn.initializers.normal(0.02))
    return logit + jnp.sum(embed(labels) * x, axis=-1)
