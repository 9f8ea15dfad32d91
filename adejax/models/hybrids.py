"""The networks of papers/004's VAE-GAN hybrids (Rosca, Lakshminarayanan, Mohamed; appendix K).

Every hybrid shares one generator, one encoder and one image discriminator, so the comparison controls
the architecture (K.5): the generator is the latent-vector SNGAN generator of papers/002
(`generators.LatentVectorGenerator`, batch norm), the encoder its transpose (`vae.encoder_blocks`, then a
dense head with no output activation: the Gaussian q(z | x), or VEEGAN's deterministic reconstructor),
the image discriminator `discriminators.Discriminator("conv")` (leaky ReLU 0.2). Added here: the
adversarial autoencoders' code discriminator (a 3-layer MLP of 1000 leaky units on z) and VEEGAN's joint
discriminator on (x, z).

`HybridModel.__call__` returns the per-example terms every family returns (`losses.coverage_loss`) for
the quantized-normal likelihood: pixels centred to [-1, 1] (log-det D log 2), N(x | G(z), sigma^2 I) with
a learned sigma, the analytic KL of the Gaussian posterior. That is a bound on -log p(x) of the
dequantized 8-bit data only for the VAE trained with it (`likelihood="quantized_normal"`); the other
hybrids' held-out "bpd" is not reported (adejax.sweep drops it). The Bernoulli VAE's own bound is
`bernoulli_nll`, in nats on intensities in [0, 1], not a density of the 8-bit data.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import discriminators, gaussian, generators, vae
from adejax.models.ade import to_signed

MODELS = ("vae", "dcgan", "wgan_gp", "aae", "aae_pp", "aae_gan", "veegan")
LIKELIHOODS = ("bernoulli", "quantized_normal")
LEAKY = discriminators.LEAKY_SLOPE


class Encoder(nn.Module):
  """The generator's transpose: (B, H, W, C) in [-1, 1] -> (mean, log_std) of q(z | x), each (B, d)."""
  image_shape: tuple[int, int, int]
  width: float = 1.0
  latent_dim: int = 64

  @nn.compact
  def __call__(self, x):
    _, chans = vae.architecture("sngan", self.image_shape, self.width)
    for block in vae.encoder_blocks("sngan", chans):
      x = block(x)
    mean, log_std = jnp.split(nn.Dense(2 * self.latent_dim)(x.reshape(x.shape[0], -1)), 2, axis=-1)
    return mean, log_std


class CodeDiscriminator(nn.Module):
  """The adversarial autoencoder's discriminator on codes z: `num_layers` dense layers of `width` leaky
  ReLU units (papers/004: 3 x 1000), then a logit."""
  width: int = 1000
  num_layers: int = 3

  @nn.compact
  def __call__(self, z):
    for _ in range(self.num_layers):
      z = nn.leaky_relu(nn.Dense(self.width, kernel_init=discriminators.he_init(LEAKY))(z), LEAKY)
    return nn.Dense(1)(z)[:, 0]


class JointDiscriminator(nn.Module):
  """VEEGAN's discriminator on pairs (x, z): the image discriminator's convolutional trunk's features
  and a leaky MLP on z, concatenated, then a leaky dense layer and a logit."""
  width: float = 1.0
  code_width: int = 1000

  @nn.compact
  def __call__(self, x, z):
    h = x
    for c in (64, 128, 256):
      h = nn.leaky_relu(nn.Conv(max(8, int(c * self.width)), (4, 4), (2, 2),
                                kernel_init=discriminators.he_init(LEAKY))(h), LEAKY)
    h = h.reshape(h.shape[0], -1)
    g = nn.leaky_relu(nn.Dense(self.code_width, kernel_init=discriminators.he_init(LEAKY))(z), LEAKY)
    h = nn.leaky_relu(nn.Dense(self.code_width, kernel_init=discriminators.he_init(LEAKY))(
        jnp.concatenate([h, g], -1)), LEAKY)
    return nn.Dense(1)(h)[:, 0]


class HybridModel(nn.Module):
  """Encoder E, generator G and the likelihood's sigma. G's output is Bernoulli logits for
  likelihood "bernoulli" (the VAE of papers/004's main results), else an image in [-1, 1]."""
  image_shape: tuple[int, int, int]
  width: float = 1.0
  latent_dim: int = 64
  likelihood: str = "quantized_normal"
  log_sigma_init: float = -1.0

  def setup(self):
    self.encoder = Encoder(self.image_shape, self.width, self.latent_dim)
    self.generator = generators.LatentVectorGenerator(self.image_shape, "sngan", self.width)
    self.log_sigma = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())

  def posterior(self, y):
    """(mean, log_std) of q(z | x) for y in [0, 1]."""
    return self.encoder(to_signed(y))

  def decode_raw(self, z, train: bool = False):
    return self.generator(z, train=train)

  def to_image(self, raw):
    """G's output -> an image in [0, 1]: the Bernoulli mean, or the centred image mapped back."""
    return jax.nn.sigmoid(raw) if self.likelihood == "bernoulli" else jnp.clip((raw + 1.0) / 2.0, 0.0, 1.0)

  def decode(self, z, train: bool = False):
    return self.to_image(self.decode_raw(z, train))

  def sample_posterior(self, y, rng):
    mean, log_std = self.posterior(y)
    return mean, log_std, mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)

  def __call__(self, y, rng, train: bool = False, labels=None):
    del labels
    mean, log_std, z = self.sample_posterior(y, rng)
    zeros = jnp.zeros_like(mean)
    features = to_signed(y)
    logdet = jnp.full(y.shape[:1], math.prod(y.shape[1:]) * math.log(2.0))
    return {"features": features, "mean": self.decode_raw(z, train), "log_sigma": self.log_sigma,
            "kl": gaussian.kl(mean, log_std, zeros, zeros), "log_q": gaussian.log_prob(z, mean, log_std),
            "log_p": gaussian.log_prob(z, zeros, zeros), "logdet": logdet,
            "flow_logdet": jnp.zeros_like(logdet)}

  def bernoulli_nll(self, y, z, train: bool = False):
    """-log Bernoulli(y | sigmoid(G(z))) per example, on intensities y in [0, 1] (nats)."""
    logits = self.decode_raw(z, train)
    return jnp.sum(jax.nn.softplus(logits) - y * logits, axis=tuple(range(1, y.ndim)))

  def generate(self, rng, batch: int, temperature: float = 1.0, noise: bool = True, labels=None,
               train: bool = False):
    del noise, labels
    return self.decode(temperature * jax.random.normal(rng, (batch, self.latent_dim)), train)

  def reconstruct(self, y, rng, labels=None):
    del rng, labels
    return self.decode(self.posterior(y)[0])

  def interpolate(self, y_a, y_b, steps: int, labels=None):
    del labels
    za, zb = self.posterior(y_a)[0], self.posterior(y_b)[0]
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
    y = self.decode((za[:, None] * (1 - t) + zb[:, None] * t).reshape(-1, za.shape[-1]))
    return y.reshape((y_a.shape[0], steps) + y.shape[1:])

  def latent_posterior(self, y, labels=None):
    del labels
    return self.posterior(y)

  def latent_log_prior(self, z):
    return gaussian.log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))

  def latent_prior_sample(self, rng, z_like):
    return jax.random.normal(rng, z_like.shape, z_like.dtype)
