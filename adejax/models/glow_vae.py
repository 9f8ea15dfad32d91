"""The VAE with a Glow decoder of papers/003 (Morrow & Chiu), as one Flax module.

   x (uint8) --dequantize--> y in [0,1]^D --preprocess--> x^ --Glow f--> x- ~ N(g_mu(z), diag g_Sigma(z))
   z ~ q(z | x^) (the encoder sees the preprocessed image, not the Glow's output: eq. 4 of papers/003)
   p(z): a Real-NVP flow h on z with p(u) = N(0, I), p(z) = p(h(z)) |det dh/dz|, or N(0, I)
   sampling: z ~ p(z), x- = g_mu(z) + T g_Sigma(z)^(1/2) eps (T: the temperature on the Glow's base),
             y = preprocess^-1(f^-1(x-))

The underlying VAE is the ResNet VAE of Dai & Wipf (2019) with one latent vector: `scales` down-sampling
stages (paper: 3 for CIFAR-10, 4 for CelebA) of `blocks` residual blocks each, channels doubling from
`base_width`. Its decoder gives a diagonal covariance per pixel ("diagonal", papers/003 section 3.1) or
the isotropic learned gamma of Dai & Wipf ("gamma").

`__call__` returns the per-example terms every family returns (`losses.coverage_loss`): features (the
Glow's output), mean, log_sigma, kl, log_q, log_p, logdet (preprocessing + Glow) and flow_logdet (the
Glow's own part), so held-out bounds are computed and counted exactly as for AV-ADE (SPEC section 1).
"""
from __future__ import annotations


import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adejax.models import flows, gaussian, glow, layers

DECODERS = ("diagonal", "gamma")
PRIORS = ("flow", "normal", "two_stage")


class ResNetVAE(nn.Module):
  """Encoder q(z | x) and decoder N(g_mu(z), diag g_Sigma(z)) with one latent vector (Dai & Wipf)."""
  image_shape: tuple[int, int, int]
  scales: int = 3
  blocks: int = 1
  base_width: int = 64
  latent_dim: int = 64
  decoder: str = "diagonal"
  log_sigma_init: float = 0.0

  def setup(self):
    h, _, c = self.image_shape
    if h % 2 ** self.scales:
      raise ValueError(f"A ResNet VAE with {self.scales} scales needs an image size divisible by "
                       f"{2 ** self.scales}, got {h}.")
    if self.decoder not in DECODERS:
      raise ValueError(f"Unknown decoder {self.decoder!r}; choose one of {DECODERS}.")
    w = lambda s: self.base_width * 2 ** s
    self.stem = layers.WNConv(w(0))
    enc = []
    for s in range(self.scales):
      enc += [layers.ResidualBlock(w(s)) for _ in range(self.blocks)] + [layers.ResidualBlock(w(s + 1), "down")]
    self.encoder = enc
    self.posterior = layers.WNDense(2 * self.latent_dim, g_init=nn.initializers.zeros)
    self.bottom = (h >> self.scales, w(self.scales))
    self.dense = layers.Dense(self.bottom[0] ** 2 * self.bottom[1])
    dec = []
    for s in reversed(range(self.scales)):
      dec += [layers.ResidualBlock(w(s), "up")] + [layers.ResidualBlock(w(s)) for _ in range(self.blocks)]
    self.decoder_blocks = dec
    self.out_mean = layers.WNConv(c)
    if self.decoder == "diagonal":
      self.out_log_sigma = layers.WNConv(c, g_init=nn.initializers.zeros)
    self.log_sigma_bias = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())

  def encode(self, x):
    """(mean, log_std) of q(z | x), each (B, latent_dim)."""
    h = self.stem(x)
    for block in self.encoder:
      h = block(h)
    return jnp.split(self.posterior(nn.elu(h).reshape(h.shape[0], -1)), 2, axis=-1)

  def decode(self, z):
    """(g_mu(z), log of g_Sigma(z)^(1/2)): per-pixel for "diagonal", a scalar for "gamma"."""
    s, ch = self.bottom
    h = self.dense(z).reshape((-1, s, s, ch))
    for block in self.decoder_blocks:
      h = block(h)
    h = nn.elu(h)
    mean = self.out_mean(h)
    if self.decoder == "diagonal":
      return mean, self.out_log_sigma(h) + self.log_sigma_bias
    return mean, self.log_sigma_bias


class DenseCoupling(nn.Module):
  """The prior flow's conditioner: two dense layers with ReLU (papers/003 section 4.2), then a
  zero-initialised dense layer giving shift and a tanh-bounded log-scale."""
  dim: int
  width: int = 1024

  @nn.compact
  def __call__(self, z):
    h = nn.relu(layers.Dense(self.width)(z))
    h = nn.relu(layers.Dense(self.width)(h))
    shift, raw = jnp.split(layers.Dense(2 * self.dim, kernel_init=nn.initializers.zeros)(h), 2, axis=-1)
    factor = self.param("log_scale_factor", nn.initializers.ones, (self.dim,))
    return shift, factor * jnp.tanh(raw)


class FlowPrior(nn.Module):
  """p(z) = N(h(z); 0, I) |det dh/dz| with h a Real-NVP of `num_layers` affine couplings on vectors,
  the conditioned half alternating between the two halves of z."""
  dim: int
  num_layers: int = 16
  width: int = 1024

  def setup(self):
    self.nets = [DenseCoupling(self.dim, self.width) for _ in range(self.num_layers)]

  def bijector(self) -> distrax.Bijector:
    first = np.arange(self.dim) < self.dim // 2
    couplings = [distrax.MaskedCoupling(first if i % 2 == 0 else ~first, net, flows.affine, event_ndims=1)
                 for i, net in enumerate(self.nets)]
    return distrax.Chain(couplings[::-1])

  def log_prob(self, z):
    u, logdet = self.bijector().forward_and_log_det(z)
    return gaussian.log_prob(u, jnp.zeros_like(u), jnp.zeros_like(u)) + logdet

  def sample(self, rng, n: int, temperature: float = 1.0):
    return self.bijector().inverse(temperature * jax.random.normal(rng, (n, self.dim)))


class TwoStagePrior(nn.Module):
  """The second-stage VAE of Dai & Wipf (2019), the baseline of papers/003 Table 1: a VAE on the
  first stage's latent codes z, with a latent u of the same size, dense encoder and decoder of
  `num_layers` ReLU layers of `width`, and a learned isotropic gamma. log p(z) is replaced by its ELBO
  (a lower bound, so the model's bound on -log p(x) stays an upper bound); samples are z = the
  decoder's mean at u ~ N(0, I)."""
  dim: int
  num_layers: int = 3
  width: int = 1024

  def setup(self):
    self.enc = [layers.Dense(self.width) for _ in range(self.num_layers)]
    self.enc_out = layers.Dense(2 * self.dim, kernel_init=nn.initializers.zeros)
    self.dec = [layers.Dense(self.width) for _ in range(self.num_layers)]
    self.dec_out = layers.Dense(self.dim)
    self.log_gamma = self.param("log_gamma", nn.initializers.zeros, ())

  def _mlp(self, layers_, x):
    for layer in layers_:
      x = nn.relu(layer(x))
    return x

  def decode(self, u):
    return self.dec_out(self._mlp(self.dec, u))

  def log_prob(self, z, rng=None):
    """The single-sample ELBO of z under the second-stage VAE (a lower bound on its log-density)."""
    mean, log_std = jnp.split(self.enc_out(self._mlp(self.enc, z)), 2, axis=-1)
    rng = jax.random.PRNGKey(0) if rng is None else rng
    u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
    zeros = jnp.zeros_like(mean)
    rec = gaussian.log_prob(z, self.decode(u), jnp.broadcast_to(self.log_gamma, z.shape))
    return rec - gaussian.kl(mean, log_std, zeros, zeros)

  def sample(self, rng, n: int, temperature: float = 1.0):
    return self.decode(temperature * jax.random.normal(rng, (n, self.dim)))


class GlowVAEModel(nn.Module):
  image_shape: tuple[int, int, int]
  preprocess: str = "logit"
  logit_alpha: float = 0.05
  scales: int = 3
  blocks: int = 1
  base_width: int = 64
  latent_dim: int = 64
  decoder: str = "diagonal"
  log_sigma_init: float = 0.0
  glow_depth: int = 32
  glow_width: int = 512
  glow_lu: bool = False
  prior: str = "flow"
  prior_layers: int = 16
  prior_width: int = 1024

  def setup(self):
    if self.prior not in PRIORS:
      raise ValueError(f"Unknown prior {self.prior!r}; choose one of {PRIORS}.")
    self.vae = ResNetVAE(self.image_shape, self.scales, self.blocks, self.base_width, self.latent_dim,
                         self.decoder, self.log_sigma_init)
    self.glow = glow.Glow(self.image_shape, self.glow_depth, self.glow_width, self.glow_lu)
    self.latent_prior = {"flow": lambda: FlowPrior(self.latent_dim, self.prior_layers, self.prior_width),
                          "two_stage": lambda: TwoStagePrior(self.latent_dim, 3, self.prior_width),
                          "normal": lambda: None}[self.prior]()

  def _preprocess(self):
    return flows.preprocess_bijector(self.preprocess, self.logit_alpha)

  def _log_prior(self, z, rng, learned: bool):
    if self.latent_prior is None or not learned:
      return gaussian.log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))
    if self.prior == "two_stage":
      return self.latent_prior.log_prob(z, rng)
    return self.latent_prior.log_prob(z)

  def _prior_sample(self, rng, n):
    if self.latent_prior is None:
      return jax.random.normal(rng, (n, self.latent_dim))
    return self.latent_prior.sample(rng, n)

  def __call__(self, y: jax.Array, rng: jax.Array, train: bool = True, labels=None, glow: bool = True,
               learned_prior: bool = True):
    """The likelihood terms of y per example. `glow=False` leaves the Glow layer out (phase 1 trains
    the VAE alone: the fresh layer is the identity, so this is the same density, computed faster).
    `learned_prior=False` uses N(0, I) for p(z) (the first stage of a two-stage VAE)."""
    del train, labels  # no batch norm; unconditional
    s, logdet = self._preprocess().forward_and_log_det(y)
    f, glow_logdet = self.glow.forward_and_log_det(s) if glow else (s, jnp.zeros_like(logdet))
    mean, log_std = self.vae.encode(s)
    z_rng, prior_rng = jax.random.split(rng)
    z = mean + jnp.exp(log_std) * jax.random.normal(z_rng, mean.shape, mean.dtype)
    log_q, log_p = gaussian.log_prob(z, mean, log_std), self._log_prior(z, prior_rng, learned_prior)
    if self.latent_prior is None or not learned_prior:
      zeros = jnp.zeros_like(mean)
      kl = gaussian.kl(mean, log_std, zeros, zeros)
    else:
      kl = log_q - log_p  # single-sample estimate: the ELBO stays an unbiased bound estimate
    dec_mean, log_sigma = self.vae.decode(z)
    return {"features": f, "mean": dec_mean, "log_sigma": log_sigma, "kl": kl, "log_q": log_q,
            "log_p": log_p, "logdet": logdet + glow_logdet, "flow_logdet": glow_logdet}

  def from_features(self, f):
    return self._preprocess().inverse(self.glow.inverse_and_log_det(f)[0])

  def decode_z(self, z, rng, temperature: float = 1.0):
    """Images from latents z: f^-1(g_mu(z) + T g_Sigma(z)^(1/2) eps); T = 0 decodes the mean."""
    mean, log_sigma = self.vae.decode(z)
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    return self.from_features(mean + temperature * jnp.exp(log_sigma) * eps)

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0, noise: bool = True,
               labels=None, train: bool = False) -> jax.Array:
    """Samples in y-space: z ~ p(z), then `decode_z` at `temperature` on the Glow's base (0.5 is the
    paper's best)."""
    del noise, labels, train
    z_rng, eps_rng = jax.random.split(rng)
    return self.decode_z(self._prior_sample(z_rng, batch), eps_rng, temperature)

  def before_after(self, rng: jax.Array, batch: int, temperature: float = 0.5, columns: int = 3):
    """papers/003 Figure 4: (B, 1 + columns, H, W, C) in y-space: for each z ~ p(z), the underlying
    VAE's mean g_mu(z) without the Glow layer, then `columns` samples of the same z through it."""
    z_rng, eps_rng = jax.random.split(rng)
    z = self._prior_sample(z_rng, batch)
    before = self._preprocess().inverse(self.vae.decode(z)[0])
    after = [self.decode_z(z, k, temperature) for k in jax.random.split(eps_rng, columns)]
    return jnp.stack([before] + after, axis=1)

  def stage2_loss(self, y: jax.Array, rng: jax.Array) -> jax.Array:
    """-ELBO of the second-stage VAE per example on codes z ~ q(z | x) of the (frozen) first stage."""
    mean, log_std = jax.lax.stop_gradient(self.vae.encode(self._preprocess().forward(y)))
    z_rng, prior_rng = jax.random.split(rng)
    z = mean + jnp.exp(log_std) * jax.random.normal(z_rng, mean.shape, mean.dtype)
    return -self.latent_prior.log_prob(z, prior_rng)

  def glow_data_init(self, y: jax.Array) -> dict:
    """The Glow layer's params with its actnorms set by a data-dependent initialisation on batch y."""
    return self.glow.data_init(self._preprocess().forward(y))

  def latent_posterior(self, y: jax.Array, labels=None):
    """(mean, log_std) (B, latent_dim) of q(z | x)."""
    del labels
    return self.vae.encode(self._preprocess().forward(y))

  def latent_log_prior(self, z: jax.Array) -> jax.Array:
    """log p(z) of the model's prior (for a two-stage prior: its ELBO, a lower bound)."""
    return self._log_prior(z, jax.random.PRNGKey(0), True)

  def latent_prior_sample(self, rng: jax.Array, z_like: jax.Array) -> jax.Array:
    return self._prior_sample(rng, z_like.shape[0])

  def reconstruct(self, y: jax.Array, rng: jax.Array, labels=None) -> jax.Array:
    del labels
    mean, _ = self.vae.encode(self._preprocess().forward(y))
    return self.from_features(self.vae.decode(mean)[0])

  def interpolate(self, y_a: jax.Array, y_b: jax.Array, steps: int, labels=None) -> jax.Array:
    """Decoded (mean) linear interpolations between the posterior means of two batches:
    (B, steps, H, W, C), from y_a (first) to y_b (last)."""
    del labels
    za = self.vae.encode(self._preprocess().forward(y_a))[0]
    zb = self.vae.encode(self._preprocess().forward(y_b))[0]
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
    z = (za[:, None] * (1 - t) + zb[:, None] * t).reshape(-1, za.shape[-1])
    y = self.from_features(self.vae.decode(z)[0])
    return y.reshape((y_a.shape[0], steps) + y.shape[1:])
