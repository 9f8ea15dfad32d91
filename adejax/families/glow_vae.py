"""The VAE with a Glow decoder (papers/003): parameter groups and the two-phase schedule.

Groups: "vae" (the ResNet VAE and its prior flow) and "glow" (the Glow layer), each with an optimiser
from `config.optim` (the paper: lr 1e-4, halved every N steps: optim.lr_halve_every; a group's schedule
counts its own updates). Schedule (`config.glow_vae.schedule`):
  "two-phase" (section 3.4): steps < phase1_steps train the VAE and its prior on the images (the Glow
      layer is still the identity); from phase1_steps on the Glow layer alone is trained with everything
      else frozen. The first phase-2 step initialises the Glow's actnorms on its batch (data-dependent).
  "joint": actnorm initialisation on the first batch, then both groups on every step.
The phase is a function of the step, so a resumed run continues in the right phase, and both phases
are branches of one compiled step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from adejax import losses
from adejax.families import base
from adejax.models import glow_vae


def build_model(c: ml_collections.ConfigDict, image_shape) -> glow_vae.GlowVAEModel:
  g = c.glow_vae
  return glow_vae.GlowVAEModel(
      tuple(image_shape), preprocess=c.model.preprocess, logit_alpha=c.model.logit_alpha,
      scales=g.scales, blocks=g.blocks, base_width=g.base_width, latent_dim=g.latent_dim,
      decoder=g.decoder, log_sigma_init=g.log_sigma_init, glow_depth=g.glow_depth,
      glow_width=g.glow_width, glow_lu=g.glow_lu, prior=g.prior, prior_layers=g.prior_layers,
      prior_width=g.prior_width)


class GlowVAEFamily(base.Family):

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    g = config.glow_vae
    self.image_shape = tuple(image_shape)
    self.model = build_model(config, self.image_shape)
    self.joint = g.schedule == "joint"
    self.boundary = 0 if self.joint else int(g.phase1_steps)
    self.sample_temperature = float(g.temperature)
    vae_keys = ("vae", "flow_prior") if g.prior == "flow" else ("vae",)
    self.groups = {"vae": base.Group("params", base.make_optimizer(config.optim), vae_keys),
                   "glow": base.Group("params", base.make_optimizer(config.optim), ("glow",))}

  def init(self, rng):
    k_model, k_z = jax.random.split(rng)
    y = jnp.full((2,) + self.image_shape, 0.5, jnp.float32)
    return self.model.init(k_model, y, k_z)["params"], {}, {}

  def _loss(self, params, y, rng, glow_on: bool):
    out = self.model.apply({"params": params}, y, rng, glow=glow_on)
    per_example, terms = losses.coverage_loss(out)
    d = y[0].size
    metrics = {"coverage_loss": jnp.mean(per_example), "bpd": jnp.mean(losses.bits_per_dim(per_example, d)),
               **{f"{k}_bpd": v for k, v in losses.per_dim_bits(
                   {**terms, "flow_logdet": out["flow_logdet"]}, d).items()},
               "sigma": jnp.mean(jnp.exp(out["log_sigma"]))}
    return jnp.mean(per_example), metrics

  def _update(self, state, names, y, rng, glow_on: bool):
    """One likelihood update of the groups `names` (the others frozen)."""
    sub = {k: v for n in names for k, v in base.group_params(state, self.groups[n]).items()}
    loss_fn = lambda p: self._loss({**state.params, **p}, y, rng, glow_on)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub)
    for n in names:
      state, _ = base.update_group(state, self.groups, n, {k: grads[k] for k in self.groups[n].keys},
                                   loss)
    return state, {**metrics, "generator_loss": loss}

  def _initialise_actnorm(self, state, y):
    """At the boundary step, the Glow's actnorms from this batch (data-dependent initialisation)."""
    def init(params):
      new = self.model.apply({"params": params}, y, method="glow_data_init")
      return {**params, "glow": {**params["glow"], **new}}
    params = jax.lax.cond(state.step == self.boundary, init, lambda p: p, state.params)
    return state.replace(params=params)

  def train_step(self, state, images, labels, rng, constrain):
    del labels, constrain
    deq_rng, rng = jax.random.split(rng)
    y = losses.dequantize(images, deq_rng)

    def phase2(state):
      state = self._initialise_actnorm(state, y)
      names = ("vae", "glow") if self.joint else ("glow",)
      state, metrics = self._update(state, names, y, rng, glow_on=True)
      return state, {**metrics, "phase": jnp.float32(2.0)}

    def phase1(state):
      state, metrics = self._update(state, ("vae",), y, rng, glow_on=False)
      return state, {**metrics, "phase": jnp.float32(1.0)}

    if self.joint or self.boundary == 0:
      return phase2(state)
    return jax.lax.cond(state.step < self.boundary, phase1, phase2, state)

  def parameter_counts(self, state) -> dict[str, int]:
    count = lambda t: sum(int(x.size) for x in jax.tree.leaves(t))
    return {name: count(base.group_params(state, g)) for name, g in self.groups.items()}
