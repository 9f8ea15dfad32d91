"""The GAN generator of papers/002 section 5.1 and the latent-vector VAE built around it.

papers/002's GAN is the non-residual SNGAN generator drawn from one latent vector (section 5.1,
footnote 2: top-down sampling as in the hierarchical VAE "is not effective for the GAN model"):

  z ~ N(0, I_latent_dim) -> dense -> (s0, s0, c0) -> BN -> ELU -> [up, conv 4x4, BN, ELU] per level
    -> ELU -> conv 3x3 -> C channels (feature space; the model's inverse preprocessing maps it to y)

The up-sampling stack is `vae.decoder_blocks`, the very blocks of the hierarchical VAE's decoder, plus the
batch norm SNGAN's generator has. Batch norm runs on batch statistics while training (`train=True`,
storing them) and on the stored statistics otherwise (evaluation and sampling; `layers.batch_norm`).

`VectorVAE` puts an inference network q(z | f) (the mirrored encoder, then a dense Gaussian head) and an
isotropic sigma around this generator: p(f) = ∫ N(f | G(z), sigma^2 I) N(z | 0, I) dz. It has the
hierarchical VAE's interface, so the same model serves GAN mode (only `generate` is used) and "BPD for a
GAN" (papers/002 section 5: the generator frozen, the encoder and sigma trained, the ELBO reported).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import gaussian, layers, vae


class LatentVectorGenerator(nn.Module):
  """G(z): a (B, latent_dim) vector -> a (B, H, W, C) feature-space image (section 5.1)."""
  image_shape: tuple[int, int, int]
  arch: str = "sngan"
  width: float = 1.0
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, labels=None, train: bool = False) -> jax.Array:
    if z.ndim != 2:
      raise ValueError(f"LatentVectorGenerator takes latent vectors (B, latent_dim), got {tuple(z.shape)}.")
    sizes, chans = vae.architecture(self.arch, self.image_shape, self.width)
    x = layers.Dense(sizes[0] * sizes[0] * chans[0])(z).reshape((-1, sizes[0], sizes[0], chans[0]))
    x = nn.elu(layers.batch_norm(x, train))
    for block in vae.decoder_blocks(self.arch, chans, self.num_classes, batch_norm=True):
      x = block(x, label=labels, train=train)
    return layers.WNConv(self.image_shape[-1], num_classes=self.num_classes)(nn.elu(x), labels)


class VectorVAE(nn.Module):
  """A VAE with one global latent vector whose decoder is the SNGAN generator (same methods as
  vae.HierarchicalVAE). `decoder_train=False` keeps the decoder's batch norm on its stored statistics
  (a frozen GAN generator is evaluated as it samples)."""
  image_shape: tuple[int, int, int]
  arch: str = "sngan"
  width: float = 1.0
  latent_dim: int = 128
  log_sigma_init: float = 0.0
  num_classes: int = 0
  decoder_train: bool = True

  def setup(self):
    _, chans = vae.architecture(self.arch, self.image_shape, self.width)
    self.encoder = vae.encoder_blocks(self.arch, chans, self.num_classes)
    self.posterior = layers.WNDense(2 * self.latent_dim, g_init=nn.initializers.zeros)
    self.generator = LatentVectorGenerator(self.image_shape, self.arch, self.width, self.num_classes)
    self.log_sigma = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())

  def _posterior(self, f, labels):
    h = f
    for block in self.encoder:
      h = block(h, label=labels)
    mean, log_std = jnp.split(self.posterior(h.reshape(h.shape[0], -1)), 2, axis=-1)
    return mean, log_std

  def _decode(self, z, labels, train: bool):
    return self.generator(z, labels, train=train and self.decoder_train)

  def __call__(self, f: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None,
               train: bool = False):
    mean, log_std = self._posterior(f, labels)
    z = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
    zeros = jnp.zeros_like(mean)
    log_q, log_p = gaussian.log_prob(z, mean, log_std), gaussian.log_prob(z, zeros, zeros)
    return {"mean": self._decode(z, labels, train), "log_sigma": self.log_sigma,
            "kl": gaussian.kl(mean, log_std, zeros, zeros), "log_q": log_q, "log_p": log_p}

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0,
               labels: Optional[jax.Array] = None, train: bool = False) -> jax.Array:
    z = temperature * jax.random.normal(rng, (batch, self.latent_dim))
    return self._decode(z, labels, train)

  def encode(self, f: jax.Array, rng: jax.Array, temperature: float = 0.0,
             labels: Optional[jax.Array] = None) -> list[jax.Array]:
    mean, log_std = self._posterior(f, labels)
    return [mean + temperature * jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)]

  def latent_diagnostics(self, f: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None):
    """One latent level: `kl` (B, 1) nats per example and `means` [(B, latent_dim)] (as
    vae.HierarchicalVAE.latent_diagnostics)."""
    del rng
    mean, log_std = self._posterior(f, labels)
    zeros = jnp.zeros_like(mean)
    return {"kl": gaussian.kl(mean, log_std, zeros, zeros)[:, None], "means": [mean]}

  def top_posterior(self, f: jax.Array, labels: Optional[jax.Array] = None):
    """(mean, log_std) of q(z | f), each (B, latent_dim); the prior is N(0, I)."""
    return self._posterior(f, labels)

  def decode(self, zs: list[jax.Array], labels: Optional[jax.Array] = None) -> jax.Array:
    return self._decode(zs[0], labels, train=False)
