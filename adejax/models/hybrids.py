"""The networks of papers/004's VAE-GAN hybrids (Rosca, Lakshminarayanan, Mohamed; appendix K).

Every hybrid shares one generator, one encoder and one image discriminator, so the comparison controls
the architecture (K.5). `arch` picks them:
  "paper"  papers/004 K.5: all generators ReLU with batch norm, the encoder the generator's transpose
           (ReLU, no output activation), the discriminator leaky ReLU 0.2 (`paper_layout`): at 28x28 the
           ColorMNIST networks of its Tables 6 and 7 (5x5 kernels; 7x7x64 start), at power-of-two sizes
           (CIFAR-10 32, CelebA 64) the DCGAN of the WassersteinGAN code it names (4x4 kernels, 4x4 start,
           channels 64 at the image's half size doubling per halving). Departures, all for the shared
           training and evaluation: no batch norm in the discriminator (the gradient penalty is per example)
           or the encoder (a posterior must not depend on its batch); no dropout in DCGAN's discriminator
           (Table 6's "dropout of 0.8"); the generator's output is linear (Bernoulli logits, or the
           quantized normal's mean), not tanh.
  "sngan"  the latent-vector SNGAN generator of papers/002 (`generators.LatentVectorGenerator`, ELU,
           batch norm), its transpose (`vae.encoder_blocks`), `discriminators.Discriminator("conv")`.
Added here: the adversarial autoencoders' code discriminator (a 3-layer MLP of 1000 leaky units on z) and
VEEGAN's joint discriminator on (x, z) (Table 8's head on both trunks).

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

from adejax.models import discriminators, gaussian, generators, layers, vae

MODELS = ("vae", "dcgan", "wgan_gp", "aae", "aae_pp", "aae_gan", "veegan")
LIKELIHOODS = ("bernoulli", "quantized_normal")
ARCHS = ("paper", "sngan")
LEAKY = discriminators.LEAKY_SLOPE


def paper_layout(image_shape, width: float = 1.0):
  """papers/004 K.5's networks for an image shape: (start size, start channels, the generator's
  (channels, stride) per transposed convolution up to the image, the discriminator's (channels, stride)
  per convolution, kernel size). `width` multiplies every hidden channel count."""
  h, w, c = image_shape
  ch = lambda n: max(4, int(round(n * width)))
  if h != w:
    raise ValueError(f"papers/004's networks take square images, got {h}x{w}.")
  if h == 28:  # ColorMNIST, Tables 7 and 6
    return 7, ch(64), ((ch(64), 2), (ch(32), 1), (c, 2)), tuple((ch(f), s) for f, s in (
        (8, 2), (16, 1), (32, 2), (64, 1), (64, 2))), 5
  n = int(round(math.log2(h / 4))) if h >= 8 else 0
  if n < 1 or 4 * 2 ** n != h:
    raise ValueError(f"papers/004's networks are defined for 28x28 (ColorMNIST) and power-of-two sizes "
                     f"from 8 (CIFAR-10 32, CelebA 64), not {h}x{w}: set hybrid.arch='sngan' or resize.")
  ups = tuple((ch(64 * 2 ** (n - 2 - i)), 2) for i in range(n - 1)) + ((c, 2),)
  return 4, ch(64 * 2 ** (n - 1)), ups, tuple((ch(64 * 2 ** i), 2) for i in range(n)), 4


class PaperGenerator(nn.Module):
  """papers/004's generator: z -> dense -> (s, s, c0) -> [BN, ReLU, transposed conv] per layer; the
  last layer's output (B, H, W, C) is linear."""
  image_shape: tuple[int, int, int]
  width: float = 1.0

  @nn.compact
  def __call__(self, z, train: bool = False):
    size, c0, ups, _, k = paper_layout(self.image_shape, self.width)
    x = layers.Dense(size * size * c0)(z).reshape((-1, size, size, c0))
    for features, stride in ups:
      x = nn.relu(layers.batch_norm(x, train))
      x = layers.ConvTranspose(features, (k, k), (stride, stride), padding="SAME")(x)
    return x


class Encoder(nn.Module):
  """The generator's transpose: (B, H, W, C) in [-1, 1] -> (mean, log_std) of q(z | x), each (B, d)."""
  image_shape: tuple[int, int, int]
  width: float = 1.0
  latent_dim: int = 64
  arch: str = "paper"

  @nn.compact
  def __call__(self, x):
    if self.arch == "paper":
      _, c0, ups, _, k = paper_layout(self.image_shape, self.width)
      inputs = (c0,) + tuple(f for f, _ in ups[:-1])  # each transposed conv's input channels
      for features, (_, stride) in zip(reversed(inputs), reversed(ups)):
        x = nn.relu(layers.Conv(features, (k, k), (stride, stride))(x))
    else:
      _, chans = vae.architecture("sngan", self.image_shape, self.width)
      for block in vae.encoder_blocks("sngan", chans):
        x = block(x)
    mean, log_std = jnp.split(layers.Dense(2 * self.latent_dim)(x.reshape(x.shape[0], -1)), 2, axis=-1)
    return mean, log_std


def paper_disc_trunk(x, image_shape, width: float):
  """The convolutional trunk of papers/004's discriminator (Table 6 at 28x28), its last feature map;
  called inside a compact module, whose parameters it creates."""
  *_, convs, k = paper_layout(image_shape, width)
  for features, stride in convs:
    x = nn.leaky_relu(layers.Conv(features, (k, k), (stride, stride), kernel_init=discriminators.he_init(LEAKY))(x),
                      LEAKY)
  return x


def paper_disc_features(x, image_shape, width: float):
  """`paper_disc_trunk`, flattened."""
  x = paper_disc_trunk(x, image_shape, width)
  return x.reshape(x.shape[0], -1)


class PaperDiscriminator(nn.Module):
  """papers/004's image discriminator: its trunk, then one logit ("Linear adv"). Initialised with
  `discriminators.init_params` (the last layer is `Dense_0`), like the papers/002 discriminators."""
  image_shape: tuple[int, int, int]
  width: float = 1.0

  @nn.compact
  def __call__(self, x, labels=None):
    del labels
    h = paper_disc_features(x, self.image_shape, self.width)
    return layers.Dense(1, kernel_init=discriminators.he_init(LEAKY), name="Dense_0")(h)[:, 0]


class CodeDiscriminator(nn.Module):
  """The adversarial autoencoder's discriminator on codes z: `num_layers` dense layers of `width` leaky
  ReLU units (papers/004: 3 x 1000), then a logit."""
  width: int = 1000
  num_layers: int = 3

  @nn.compact
  def __call__(self, z):
    for _ in range(self.num_layers):
      z = nn.leaky_relu(layers.Dense(self.width, kernel_init=discriminators.he_init(LEAKY))(z), LEAKY)
    return layers.Dense(1)(z)[:, 0]


JOINT_HEADS = ("table8", "small")


class JointDiscriminator(nn.Module):
  """VEEGAN's discriminator on pairs (x, z).

  head "table8" (papers/004 Table 8): data features from the image discriminator's trunk (its last
  feature map, without the classification layer: "paper": `paper_disc_trunk`; "sngan": three 4x4
  stride-2 leaky convolutions) and code features from the code discriminator's trunk (`code_layers`
  leaky dense layers of `code_width` on z, without its logit); the code features tiled over the feature
  map's positions and concatenated on channels; then Table 8's head: conv 3x3 and conv 2x2, stride 1,
  `head_width` leaky units (the paper's [512, 1024]), unpadded, so the trunks' 4x4 map becomes 1x1
  (a map smaller than a kernel is zero-padded instead); then "Linear adv" (Table 8's two-way output
  written as its one logit difference).
  head "small" (adejax's earlier, cheaper one): the flattened data features beside one leaky dense
  layer on z, then one leaky dense layer and the logit.
  """
  width: float = 1.0
  code_width: int = 1000
  arch: str = "paper"
  image_shape: tuple = ()
  head: str = "table8"
  head_width: int = 512
  code_layers: int = 3

  @nn.compact
  def __call__(self, x, z):
    if self.head not in JOINT_HEADS:
      raise ValueError(f"Unknown joint discriminator head {self.head!r}; choose one of {JOINT_HEADS}.")
    leaky_dense = lambda n, v: nn.leaky_relu(layers.Dense(n, kernel_init=discriminators.he_init(LEAKY))(v), LEAKY)
    leaky_conv = lambda n, k, s, v, pad="SAME": nn.leaky_relu(
        layers.Conv(n, (k, k), (s, s), padding=pad, kernel_init=discriminators.he_init(LEAKY))(v), LEAKY)
    if self.arch == "paper":
      h = paper_disc_trunk(x, self.image_shape or x.shape[1:], self.width)
    else:
      h = x
      for c in (64, 128, 256):
        h = leaky_conv(max(8, int(c * self.width)), 4, 2, h)
    if self.head == "small":
      g = leaky_dense(self.code_width, z)
      h = leaky_dense(self.code_width, jnp.concatenate([h.reshape(h.shape[0], -1), g], -1))
      return layers.Dense(1)(h)[:, 0]
    g = z
    for _ in range(self.code_layers):
      g = leaky_dense(self.code_width, g)
    g = jnp.broadcast_to(g[:, None, None, :], h.shape[:3] + g.shape[-1:])
    h = jnp.concatenate([h, g], axis=-1)
    for k in (3, 2):
      h = leaky_conv(self.head_width, k, 1, h, "VALID" if min(h.shape[1:3]) >= k else "SAME")
    return layers.Dense(1)(h.reshape(h.shape[0], -1))[:, 0]


class HybridModel(nn.Module):
  """Encoder E, generator G and the likelihood's sigma. G's output is Bernoulli logits for
  likelihood "bernoulli" (the VAE of papers/004's main results), else an image in [-1, 1]."""
  image_shape: tuple[int, int, int]
  width: float = 1.0
  latent_dim: int = 64
  likelihood: str = "quantized_normal"
  log_sigma_init: float = -1.0
  arch: str = "paper"

  def setup(self):
    if self.arch not in ARCHS:
      raise ValueError(f"Unknown hybrid architecture {self.arch!r}; choose one of {list(ARCHS)}.")
    self.encoder = Encoder(self.image_shape, self.width, self.latent_dim, self.arch)
    self.generator = (PaperGenerator(self.image_shape, self.width) if self.arch == "paper"
                      else generators.LatentVectorGenerator(self.image_shape, "sngan", self.width))
    self.log_sigma = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())

  def posterior(self, y):
    """(mean, log_std) of q(z | x) for y in [0, 1]."""
    return self.encoder(discriminators.to_signed(y))

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
    features = discriminators.to_signed(y)
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
