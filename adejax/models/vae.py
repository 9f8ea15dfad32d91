"""Hierarchical VAE with top-down inference (papers/002 appendix B.1, B.2, Table 6 and section 5.1).

Latent-variable model in feature space: p(f) = ∫ N(f | mu(z), sigma^2 I) p(z) dz with a trainable
isotropic sigma. Stochastic layers of `latent_channels` (paper: 32) channels sit at the decoder's
resolutions, lowest first:
  bottom-up pass:  encoder features h_l at every resolution level l;
  top-down pass:   x starts as a learned constant at the lowest resolution, plus a dense map of the
                   global latent vector z_g ~ N(0, I) when `global_latent` > 0 (`GlobalLatent`); at each
                   stochastic level the prior p(z_l | x) and posterior q(z_l | x, h_l) are diagonal
                   Gaussians (without z_g the lowest level's prior is N(0, I)), z_l is merged into x,
                   then x is upsampled.
Optionally one IAF step (weight norm only, autoregressive over latent channels) refines each posterior.

Architectures:
  "sngan":  the non-residual SNGAN generator shape of the Table 1 ablation (no spectral norm, ELU), with
            a mirrored encoder; channels 512 -> 256 -> 128 -> 64 from the lowest resolution up.
  "resnet": the residual IAF-VAE shape of Table 6 (stem 16; blocks 32, down 64, down 128, down 256).
`width` multiplies channels (wg = 2). 64x64 images get one more level at 64x64, 128x128 two.
"""
from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adejax.models import gaussian, layers

ARCHITECTURES = {
    # channels per level from the lowest resolution up, for 32x32 images
    "sngan": (512, 256, 128, 64),
    "resnet": (256, 128, 64, 32),
}


def architecture(arch: str, image_shape, width: float = 1.0):
  """(sizes, channels) per resolution level, lowest resolution first."""
  if arch not in ARCHITECTURES:
    raise ValueError(f"Unknown VAE architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}.")
  if len(image_shape) != 3:
    raise ValueError(f"image_shape must be (H, W, C), got {image_shape!r}")
  h, w, _ = image_shape
  if h != w:
    raise ValueError(f"Only square images are supported, got {h}x{w}.")
  n = 4 + (max(0, int(round(math.log2(h / 32)))) if h >= 64 else 0)
  while n > 1 and h % 2 ** (n - 1):
    n -= 1
  if n < 2:
    raise ValueError(f"Image size {h} must be divisible by 2 at least once (e.g. 28, 32, 48, 64, 128).")
  base = ARCHITECTURES[arch]
  chans = list(base[-n:]) if n <= len(base) else list(base) + [base[-1]] * (n - len(base))
  chans = [max(8, int(round(c * width))) for c in chans]
  sizes = [h >> (n - 1 - l) for l in range(n)]
  return sizes, chans


class ConvBlock(nn.Module):
  """Non-residual SNGAN-style block: [upsample] -> weight-normed conv -> [batch norm] -> ELU.
  Batch norm only in the GAN generator (SNGAN's generator has it); VAEs must not use it."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  up: bool = False
  num_classes: int = 0
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, *, label=None, train: bool = False):
    if self.up:
      x = layers.upsample(x)
    x = layers.WNConv(self.features, self.kernel_size, self.strides, num_classes=self.num_classes)(x, label)
    if self.batch_norm:
      x = layers.batch_norm(x, train)
    return nn.elu(x)


def decoder_blocks(arch: str, chans, num_classes: int = 0, batch_norm: bool = False,
                   remat: bool = False) -> list:
  """The up-sampling stack from the lowest resolution to the image's, one block per level: the one
  definition shared by the hierarchical VAE's decoder and the latent-vector GAN generator. `remat`
  rematerialises each block (`layers.remat`; not with batch norm, whose `train` steers the call)."""
  if remat and batch_norm:
    raise ValueError("rematerialised decoder blocks cannot have batch norm")
  if arch == "sngan":
    return [layers.remat(ConvBlock, remat)(chans[l + 1], (4, 4), up=True, num_classes=num_classes,
                                           batch_norm=batch_norm) for l in range(len(chans) - 1)]
  return [layers.remat(layers.ResidualBlock, remat)(chans[l + 1], "up", num_classes=num_classes,
                                                    batch_norm=batch_norm) for l in range(len(chans) - 1)]


def encoder_blocks(arch: str, chans, num_classes: int = 0, remat: bool = False) -> list:
  """The mirrored down-sampling stack, image resolution first (the decoder's transpose)."""
  top = len(chans) - 1
  if arch == "sngan":
    return [layers.remat(ConvBlock, remat)(chans[l], (3, 3) if l == top else (4, 4),
                                           (1, 1) if l == top else (2, 2), num_classes=num_classes)
            for l in reversed(range(len(chans)))]
  return [layers.remat(layers.ResidualBlock, remat)(chans[l], None if l == top else "down",
                                                    num_classes=num_classes)
          for l in reversed(range(len(chans)))]


def _made_masks(channels: int, hidden: int):
  """MADE masks making outputs autoregressive over channels (output j sees inputs < j)."""
  d_in = np.arange(1, channels + 1)
  d_hid = np.arange(hidden) % max(channels - 1, 1) + 1
  m_in = (d_hid[None, :] >= d_in[:, None]).astype(np.float32)
  m_out = (d_in[None, :] > d_hid[:, None]).astype(np.float32)
  return m_in, m_out


class IAFStep(nn.Module):
  """z = sig * z0 + (1 - sig) * m with (m, sig) autoregressive in z0 over channels (Kingma et al. 2016).

  Returns (z, log|det dz/dz0| per element); the Jacobian is triangular with diagonal sig.
  """
  hidden: int = 64

  @nn.compact
  def __call__(self, z0, context):
    c = z0.shape[-1]
    m_in, m_out = _made_masks(c, self.hidden)
    h = layers.WNDense(self.hidden)(z0, mask=m_in) + layers.WNDense(self.hidden)(context)
    h = nn.elu(h)
    m = layers.WNDense(c, g_init=nn.initializers.zeros)(h, mask=m_out)
    s = layers.WNDense(c, g_init=nn.initializers.zeros)(h, mask=m_out)
    sig = nn.sigmoid(s + 2.0)  # starts close to the identity
    z = sig * z0 + (1.0 - sig) * m
    return z, jnp.log(sig)


def posterior_sample(q_mean, q_log_std, p_mean, p_log_std, noise, context, iaf_step, group):
  """z = q_mean + exp(q_log_std) * noise (then `iaf_step`, if any) and its terms, each summed by `group`
  over the elements of one free-bits group, (B, ...) -> (B, G): `kl_channels` (analytic without IAF,
  log q - log p of the sample with it), and per example `kl`, `log_q`, `log_p`, with the posterior's
  `q_mean` and `q_log_std`. The one computation of every stochastic layer's posterior terms."""
  z = q_mean + jnp.exp(q_log_std) * noise
  log_q = group(gaussian.log_prob_elements(z, q_mean, q_log_std))
  if iaf_step is not None:
    z, log_det_elements = iaf_step(z, context)
    log_q = log_q - group(log_det_elements)
  log_p = group(gaussian.log_prob_elements(z, p_mean, p_log_std))
  kl = (log_q - log_p if iaf_step is not None
        else group(gaussian.kl_elements(q_mean, q_log_std, p_mean, p_log_std)))
  return z, {"kl": jnp.sum(kl, -1), "kl_channels": kl, "log_q": jnp.sum(log_q, -1),
             "log_p": jnp.sum(log_p, -1), "q_mean": q_mean, "q_log_std": q_log_std}


class StochasticLayer(nn.Module):
  """One top-down stochastic layer: prior p(z|x), posterior q(z|x,h), merge of z into x."""
  features: int
  latent_channels: int = 32
  standard_prior: bool = False
  iaf: bool = False
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, h_enc: Optional[jax.Array], rng, temperature: float = 1.0,
               z: Optional[jax.Array] = None, label: Optional[jax.Array] = None):
    """Returns (x with z merged in, posterior stats or None, z). A given `z` is used as is."""
    zc = self.latent_channels
    shape = x.shape[:-1] + (zc,)
    conv = lambda n, **kw: layers.WNConv(n, num_classes=self.num_classes, **kw)
    prior_head = conv(2 * zc, g_init=nn.initializers.zeros, name="prior")
    post_head = conv(3 * zc, g_init=nn.initializers.zeros, name="posterior")
    if self.standard_prior:
      p_mean = p_log_std = jnp.zeros(shape, x.dtype)
    else:
      p_mean, p_log_std = jnp.split(prior_head(nn.elu(x), label), 2, axis=-1)
    eps = jax.random.normal(rng, shape, x.dtype)
    if z is not None or h_enc is None:  # decoding given latents, or sampling the prior
      stats = None
      if z is None:
        z = p_mean + jnp.exp(p_log_std) * eps * temperature
    else:
      q_mean, q_log_std, context = jnp.split(
          post_head(nn.elu(jnp.concatenate([x, h_enc], -1)), label), 3, -1)
      per_channel = lambda e: jnp.sum(e.reshape(e.shape[0], -1, zc), axis=1)  # (B, zc)
      z, stats = posterior_sample(q_mean, q_log_std, p_mean, p_log_std, eps * temperature, context,
                                  IAFStep(name="iaf") if self.iaf else None, per_channel)
    return x + conv(self.features, name="merge")(z, label), stats, z


class GlobalLatent(nn.Module):
  """The top of the hierarchy: a latent vector z_g ~ N(0, I) (SNGAN's input z, papers/002 section 5.1
  and its footnote 2: the VAE keeps SNGAN's generator, whose input is a latent vector, and treats some
  feature maps below it as conditional latents). Its posterior reads the encoder's lowest-resolution
  features through a dense layer; z_g enters the top-down pass through a dense layer added to the
  learned start map, so every spatial level's prior is conditioned on it. Without it the top spatial
  level's N(0, I) prior is factorised over positions, and samples are patchworks of garment pieces
  (docs/results/latent_use.md). Its KL counts as one group for free bits (`kl_channels` (B, 1))."""
  dim: int
  iaf: bool = False

  @nn.compact
  def __call__(self, x, h_enc: Optional[jax.Array], rng, temperature: float = 1.0,
               z: Optional[jax.Array] = None):
    shape = (x.shape[0], self.dim)
    eps = jax.random.normal(rng, shape, x.dtype)
    stats = None
    if z is None and h_enc is None:
      z = eps * temperature
    elif z is None:
      flat = nn.elu(h_enc.reshape(h_enc.shape[0], -1))
      q_mean, q_log_std, context = jnp.split(
          layers.WNDense(3 * self.dim, g_init=nn.initializers.zeros, name="posterior")(flat), 3, -1)
      zeros = jnp.zeros_like(q_mean)
      z, stats = posterior_sample(q_mean, q_log_std, zeros, zeros, eps * temperature, context,
                                  IAFStep(name="iaf") if self.iaf else None,
                                  lambda e: jnp.sum(e, -1, keepdims=True))  # one group
    merge = layers.WNDense(int(np.prod(x.shape[1:])), name="merge")(z)
    return x + merge.reshape(x.shape), stats, z


def is_inference_parameter(path: tuple[str, ...]) -> bool:
  """True for the inference network's parameters (encoder and posteriors) of a HierarchicalVAE's
  parameter tree (or a generators.VectorVAE's), given a path of keys below it; the rest (prior,
  decoder, sigma) is the generator."""
  return (path[0] in ("stem", "posterior") or path[0].startswith("encoder_")
          or ((path[0].startswith("stochastic_") or path[0] == "global_latent") and len(path) > 1
              and path[1] in ("posterior", "iaf")))


class HierarchicalVAE(nn.Module):
  """Top-down hierarchical VAE over a (B, H, W, C) feature tensor.

  Methods (through `apply(..., method=...)`):
    __call__(f, rng)           -> dict(mean, log_sigma, kl, log_q, log_p): encode-decode, per-example terms
    generate(rng, n, temperature) -> decoder means mu(z) for z ~ p(z)
    encode(f, rng) / decode(zs)   -> posterior latents per level / decoder means for given latents
  With `num_classes > 0` the model is class-conditional (papers/002 appendix E.1): every weight-normed
  convolution of encoder, priors, posteriors and decoder uses conditional weight norm (scale g(y) and
  bias b(y) per class, eq. 16), and every method takes the labels `labels` (B,) int.
  """
  image_shape: tuple[int, int, int]
  arch: str = "sngan"
  width: float = 1.0
  latent_channels: int = 32
  latent_levels: int = 0  # stochastic levels from the lowest resolution up; 0 = all levels
  iaf: bool = False
  log_sigma_init: float = 0.0
  num_classes: int = 0
  remat: bool = False     # rematerialise every block of both passes and every stochastic layer
  global_latent: int = 0  # size of a latent vector z_g ~ N(0, I) above the spatial levels; 0 = none

  def setup(self):
    sizes, chans = architecture(self.arch, self.image_shape, self.width)
    n = len(sizes)
    k = self.latent_levels or n
    if not 1 <= k <= n:
      raise ValueError(f"latent_levels must be in 0..{n} for {sizes[-1]}px images, got {self.latent_levels}")
    self.num_levels, self.num_stochastic, self.sizes = n, k, sizes
    top, nc = n - 1, self.num_classes
    self.encoder = encoder_blocks(self.arch, chans, nc, remat=self.remat)
    self.decoder = decoder_blocks(self.arch, chans, nc, remat=self.remat)
    if self.arch == "sngan":
      self.stem = self.final = None
    else:
      self.stem = layers.WNConv(max(8, int(round(16 * self.width))), num_classes=nc)
      self.final = layers.remat(layers.ResidualBlock, self.remat)(chans[top], num_classes=nc)
    self.stochastic = [layers.remat(StochasticLayer, self.remat)(
        chans[l], self.latent_channels, standard_prior=(l == 0 and not self.global_latent), iaf=self.iaf,
        num_classes=nc) for l in range(k)]
    self.global_layer = (GlobalLatent(self.global_latent, self.iaf, name="global_latent")
                         if self.global_latent else None)
    self.start = self.param("start", nn.initializers.normal(1.0), (1, sizes[0], sizes[0], chans[0]))
    self.out = layers.WNConv(self.image_shape[-1], num_classes=nc)
    self.log_sigma = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())

  def _check_labels(self, labels, batch: int):
    if not self.num_classes:
      return None  # an unconditional model ignores labels
    if labels is None:
      raise ValueError(f"This VAE is class-conditional ({self.num_classes} classes): pass `labels`.")
    if labels.shape != (batch,):
      raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}.")
    return labels

  def _encode(self, f, labels):
    h = f if self.stem is None else self.stem(f, labels)
    hs = []
    for block in self.encoder:
      h = block(h, label=labels)
      hs.append(h)
    return hs[::-1]  # lowest resolution first

  def _decode(self, batch: int, rng, hs=None, temperature: float = 1.0, zs=None, labels=None):
    """Top-down pass: posterior (hs given), prior sampling, or given latents `zs` (one per level)."""
    x = jnp.broadcast_to(self.start, (batch,) + self.start.shape[1:])
    stats, latents = [], []
    if self.global_layer is not None:  # z_g first: latents and stats lists start with it
      x, s, z = self.global_layer(x, None if hs is None else hs[0], jax.random.fold_in(rng, 1000),
                                  temperature, None if zs is None else zs[0])
      stats.append(s)
      latents.append(z)
      zs = None if zs is None else zs[1:]
    for l in range(self.num_levels):
      if l < self.num_stochastic:
        x, s, z = self.stochastic[l](x, None if hs is None else hs[l], jax.random.fold_in(rng, l),
                                     temperature, None if zs is None else zs[l], labels)
        stats.append(s)
        latents.append(z)
      if l < self.num_levels - 1:
        x = self.decoder[l](x, label=labels)
    if self.final is not None:
      x = self.final(x, label=labels)
    return self.out(nn.elu(x), labels), stats, latents

  def __call__(self, f: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None,
               train: bool = False):
    del train  # no batch norm here; the argument keeps the interface of generators.VectorVAE
    if f.ndim != 4 or tuple(f.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"HierarchicalVAE expects (B, {', '.join(map(str, self.image_shape))}), "
                       f"got {tuple(f.shape)}.")
    labels = self._check_labels(labels, f.shape[0])
    mean, stats, _ = self._decode(f.shape[0], rng, self._encode(f, labels), labels=labels)
    total = {k: sum(s[k] for s in stats) for k in ("kl", "log_q", "log_p")}
    kl_channels = jnp.concatenate([s["kl_channels"] for s in stats], axis=-1)  # (B, levels * zc)
    return {"mean": mean, "log_sigma": self.log_sigma, **total, "kl_channels": kl_channels}

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0,
               labels: Optional[jax.Array] = None, train: bool = False) -> jax.Array:
    del train  # as in __call__
    labels = self._check_labels(labels, batch)
    return self._decode(batch, rng, None, temperature, labels=labels)[0]

  def encode(self, f: jax.Array, rng: jax.Array, temperature: float = 0.0,
             labels: Optional[jax.Array] = None) -> list[jax.Array]:
    """Posterior latents per level (temperature 0: the posterior means, through IAF if present)."""
    labels = self._check_labels(labels, f.shape[0])
    return self._decode(f.shape[0], rng, self._encode(f, labels), temperature, labels=labels)[2]

  def latent_diagnostics(self, f: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None):
    """How much the latents are used, per stochastic level (the global vector if any, then the lowest
    resolution first): `kl`, (B, L) nats
    of KL(q(z_l | ...) || p(z_l | ...)) per example on one posterior sample of the levels above, and
    `means`, L arrays (B, d_l) of the posterior means with every level above at its own posterior mean
    (temperature 0): Burda et al.'s active units are computed from these."""
    labels = self._check_labels(labels, f.shape[0])
    hs = self._encode(f, labels)
    _, stats, _ = self._decode(f.shape[0], rng, hs, labels=labels)
    _, mean_stats, _ = self._decode(f.shape[0], rng, hs, 0.0, labels=labels)
    flat = lambda a: a.reshape(a.shape[0], -1)
    return {"kl": jnp.stack([s["kl"] for s in stats], axis=-1),
            "means": [flat(s["q_mean"]) for s in mean_stats]}

  def top_posterior(self, f: jax.Array, labels: Optional[jax.Array] = None):
    """(mean, log_std), each (B, d), of q(z_0 | f) at the top level (the global vector if any, else the
    lowest resolution), whose prior is N(0, I): the posterior whose aggregate papers/004's estimators
    compare with the prior."""
    if self.iaf:
      raise ValueError("With IAF the top posterior is not Gaussian: marginal-KL estimators need iaf=False.")
    labels = self._check_labels(labels, f.shape[0])
    x = jnp.broadcast_to(self.start, (f.shape[0],) + self.start.shape[1:])
    top = self.stochastic[0] if self.global_layer is None else self.global_layer
    kw = {} if self.global_layer is not None else {"label": labels}
    _, stats, _ = top(x, self._encode(f, labels)[0], jax.random.PRNGKey(0), **kw)
    flat = lambda a: a.reshape(a.shape[0], -1)
    return flat(stats["q_mean"]), flat(stats["q_log_std"])

  def decode(self, zs: list[jax.Array], labels: Optional[jax.Array] = None) -> jax.Array:
    """Decoder mean mu(z) for given latents (one array per stochastic level, the global vector first)."""
    labels = self._check_labels(labels, zs[0].shape[0])
    return self._decode(zs[0].shape[0], jax.random.PRNGKey(0), None, 1.0, zs, labels)[0]
