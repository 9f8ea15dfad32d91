"""The generator of every Table-1 model: fixed preprocessing -> optional f_psi -> hierarchical VAE.

   x (uint8) --dequantize--> y in [0,1]^D --preprocess--> s --f_psi--> f (feature space) ~ VAE
   sampling:  z ~ p(z) -> mu(z) [+ sigma eps] -> f_psi^{-1} -> preprocess^{-1} -> y

Without f_psi (VAE, AV-GDE, GAN) the feature space is the preprocessed image space. Every log-det from
y to feature space is returned (`logdet`, per example), so bits/dim of x can be computed exactly.
The sampling direction always runs the flow's batch norm on its stored statistics and never updates
them (SPEC section 8): only the likelihood pass on real data sees batch statistics. In a training step
those stored statistics are the ones that step's likelihood pass computed (`layers.batch_norm`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from adejax.models import flows, gaussian, generators, vae


class ADEModel(nn.Module):
  image_shape: tuple[int, int, int]
  preprocess: str = "logit"
  logit_alpha: float = 0.05
  use_flow: bool = True
  flow_scales: int = 1
  flow_couplings: int = 3
  flow_blocks: int = 2
  flow_width: int = 32
  arch: str = "sngan"
  width: float = 1.0
  latent_channels: int = 32
  latent_levels: int = 0
  iaf: bool = False
  log_sigma_init: float = 0.0
  num_classes: int = 0  # > 0: class-conditional VAE (conditional weight norm, appendix E.1)
  generator: str = "hierarchical"  # or "vector": the SNGAN generator from one latent vector (the GAN's)
  latent_dim: int = 128            # size of that latent vector
  frozen_decoder: bool = False     # a frozen generator's batch norm stays on its stored statistics
  remat: bool = False              # rematerialise the top-down VAE's blocks and f_psi's coupling nets
  global_latent: int = 0           # hierarchical VAE: size of its global latent vector (0 = none)

  def setup(self):
    if self.generator == "vector":
      self.vae = generators.VectorVAE(self.image_shape, self.arch, self.width, self.latent_dim,
                                      self.log_sigma_init, self.num_classes,
                                      decoder_train=not self.frozen_decoder)
    elif self.generator == "hierarchical":
      self.vae = vae.HierarchicalVAE(self.image_shape, self.arch, self.width, self.latent_channels,
                                     self.latent_levels, self.iaf, self.log_sigma_init, self.num_classes,
                                     remat=self.remat, global_latent=self.global_latent)
    else:
      raise ValueError(f"Unknown generator {self.generator!r}; choose 'hierarchical' or 'vector'.")
    self.flow = (flows.RealNVP(self.image_shape, self.flow_scales, self.flow_couplings,
                               self.flow_blocks, self.flow_width, remat=self.remat)
                 if self.use_flow else None)

  def _preprocess(self):
    return flows.preprocess_bijector(self.preprocess, self.logit_alpha)

  def to_features(self, y: jax.Array, train: bool):
    """y in [0,1]^D -> (f, log|det df/dy|, f_psi's own part of that log-det) per example."""
    s, logdet = self._preprocess().forward_and_log_det(y)
    if self.flow is None:
      return s, logdet, jnp.zeros_like(logdet)
    f, flow_logdet = self.flow.forward_and_log_det(s, train=train)
    return f, logdet + flow_logdet, flow_logdet

  def flow_log_det_map(self, y: jax.Array) -> jax.Array:
    """(B, H, W): f_psi's log-det per pixel (eval mode; summed over pixels it is `flow_logdet`).
    Zeros for a model without f_psi."""
    if self.flow is None:
      return jnp.zeros(y.shape[:3], y.dtype)
    return jnp.sum(self.flow.log_det_map(self.preprocessed(y), train=False), axis=-1)

  def preprocessed(self, y: jax.Array) -> jax.Array:
    """y in [0,1]^D -> s, the fixed preprocessing's output (f_psi's input)."""
    return self._preprocess().forward(y)

  def from_features(self, f: jax.Array, flow: bool = True) -> jax.Array:
    """Feature space -> y-space images (running batch-norm averages, never updated). flow=False skips
    f_psi^{-1}: the same features read as if they were preprocessed pixels (notebooks/flows.ipynb)."""
    if self.flow is not None and flow:
      f, _ = self.flow.inverse_and_log_det(f, train=False)
    return self._preprocess().inverse(f)

  def __call__(self, y: jax.Array, rng: jax.Array, train: bool = True, labels=None):
    """The likelihood pass on (dequantized) data: features, log-dets (`logdet` from y to feature space,
    preprocessing included; `flow_logdet` f_psi's part alone) and the VAE's per-example terms.
    A class-conditional model needs `labels` (B,) and gives the terms of -log p(y | label)."""
    f, logdet, flow_logdet = self.to_features(y, train)
    out = self.vae(f, rng, labels, train=train)
    return {"features": f, "logdet": logdet, "flow_logdet": flow_logdet, **out}

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0,
               noise: bool = False, labels=None, train: bool = False) -> jax.Array:
    """Samples in y-space: f_psi^{-1}(mu(z)) (+ sigma * eps in feature space when `noise`).
    `train=True` runs a batch-normed generator on batch statistics (apply with mutable batch_stats);
    f_psi's inverse always uses its stored statistics (`layers.batch_norm`)."""
    z_rng, eps_rng = jax.random.split(rng)
    f = self.vae.generate(z_rng, batch, temperature, labels, train=train)
    if noise:
      f = f + jnp.exp(self.vae.log_sigma) * temperature * jax.random.normal(eps_rng, f.shape, f.dtype)
    return self.from_features(f)

  def interpolate(self, y_a: jax.Array, y_b: jax.Array, steps: int, labels=None) -> jax.Array:
    """Decoded linear interpolations between the posterior means of every latent level of two batches
    of images: (B, steps, H, W, C) in y-space, from y_a (first) to y_b (last). A class-conditional
    model interpolates within the classes `labels` (B,), shared by each pair."""
    rng = jax.random.PRNGKey(0)
    za = self.vae.encode(self.to_features(y_a, train=False)[0], rng, labels=labels)
    zb = self.vae.encode(self.to_features(y_b, train=False)[0], rng, labels=labels)
    t = jnp.linspace(0.0, 1.0, steps)
    def mix(a, b):  # latents of any rank: (B, ...) -> (B * steps, ...)
      w = t.reshape((1, steps) + (1,) * (a.ndim - 1))
      return (a[:, None] * (1 - w) + b[:, None] * w).reshape((-1,) + a.shape[1:])
    path_labels = None if labels is None else jnp.repeat(labels, steps)
    y = self.from_features(self.vae.decode([mix(a, b) for a, b in zip(za, zb)], path_labels))
    return y.reshape((y_a.shape[0], steps) + y.shape[1:])

  def latent_posterior(self, y: jax.Array, labels=None):
    """(mean, log_std) (B, d) of the top latent level's posterior, whose prior is N(0, I)."""
    return self.vae.top_posterior(self.to_features(y, train=False)[0], labels)

  def latent_diagnostics(self, y: jax.Array, rng: jax.Array, labels=None):
    """The VAE's per-level KLs and posterior means on images y (eval mode; `HierarchicalVAE.latent_diagnostics`)."""
    return self.vae.latent_diagnostics(self.to_features(y, train=False)[0], rng, labels)

  def latent_log_prior(self, z: jax.Array) -> jax.Array:
    return gaussian.log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))

  def latent_prior_sample(self, rng: jax.Array, z_like: jax.Array) -> jax.Array:
    return jax.random.normal(rng, z_like.shape, z_like.dtype)

  def reconstruct(self, y: jax.Array, rng: jax.Array, labels=None) -> jax.Array:
    """Encode-decode real images (eval mode) and map the decoder mean back to y-space."""
    return self.from_features(self(y, rng, train=False, labels=labels)["mean"])
