"""The VAE with a Glow decoder (papers/003): parameter groups and the two-phase schedule.

Groups: "vae" (the ResNet VAE), "prior" (its prior flow, or a second-stage VAE) and "glow" (the Glow
layer), each with an optimiser
from `config.optim` (the paper: lr 1e-4, halved every N steps: optim.lr_halve_every; a group's schedule
counts its own updates). Schedule (`config.glow_vae.schedule`):
  "two-phase" (section 3.4): steps < phase1_steps train the VAE and its prior on the images (the Glow
      layer is still the identity); from phase1_steps on the Glow layer alone is trained with everything
      else frozen, starting from the identity, so phase 2 starts from phase 1's density ("continues to
      maximise likelihood"): the bound on a batch is the same just before and just after the boundary.
      (A data-dependent actnorm initialisation there would standardise the Glow's output per channel
      while the frozen decoder predicts the unstandardised one: the bound would jump up.) With prior "two_stage" (Dai & Wipf, the baseline of papers/003 Table 1) phase 1 trains the VAE
      with N(0, I) and the second-stage VAE then trains for stage2_steps on its frozen codes.
  "joint": actnorm initialisation on the first batch (Glow's data-dependent initialisation: nothing
      has been fitted yet), then all groups on every step.
The phase is a function of the step, so a resumed run continues in the right phase; each phase is
compiled once (`Family.phase`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from adejax import losses
from adejax.families import base
from adejax.families.base import check
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

  @staticmethod
  def config_section():
    g = ml_collections.ConfigDict()  # family "glow_vae" (papers/003); model.preprocess applies
    g.scales = 3                   # ResNet VAE (Dai & Wipf): down-sampling stages (CIFAR-10 3, CelebA 4)
    g.blocks = 1                   # residual blocks per stage
    g.base_width = 64              # channels of the first stage, doubling per stage
    g.latent_dim = 64              # size of the latent vector z
    g.decoder = "diagonal"         # "diagonal": N(g_mu(z), diag g_Sigma(z)) (section 3.1);
                                   # "gamma": isotropic learned gamma (Dai & Wipf)
    g.log_sigma_init = 0.0         # initial log std of the decoder
    g.glow_depth = 32              # Glow blocks (actnorm, 1x1 conv, additive coupling); no squeeze
    g.glow_width = 512             # channels of the coupling networks
    g.glow_lu = False              # LU-parametrised 1x1 convolutions
    g.prior = "flow"               # "flow": Real-NVP prior on z (section 3.2); "normal": N(0, I);
                                   # "two_stage": a second-stage VAE on z (Dai & Wipf; Table 1 baseline)
    g.prior_layers = 16            # couplings of the prior flow
    g.prior_width = 1024           # width of their two dense layers
    g.schedule = "two-phase"       # "two-phase": VAE + prior, then the Glow layer alone (section
                                   # 3.4); "joint": everything at once from step 0
    g.phase1_steps = 50_000        # steps of phase 1; phase 2 runs from there to train.num_steps
    g.stage2_steps = 0             # prior "two_stage": its training steps, after phase 1
    g.temperature = 0.5            # sampling temperature on the Glow layer's base (section 3.5)
    return "glow_vae", g

  @staticmethod
  def validate(c) -> None:
    g, d = c.glow_vae, c.data
    check(g.decoder in ("diagonal", "gamma"), "glow_vae.decoder", "must be 'diagonal' or 'gamma'")
    check(g.prior in ("flow", "normal", "two_stage"), "glow_vae.prior",
          "must be 'flow', 'normal' or 'two_stage'")
    check(g.prior != "two_stage" or (g.schedule == "two-phase" and g.stage2_steps >= 1),
          "glow_vae.stage2_steps", "a two-stage prior trains after phase 1: schedule 'two-phase' and "
          "stage2_steps >= 1")
    check(g.schedule in ("two-phase", "joint"), "glow_vae.schedule", "must be 'two-phase' or 'joint'")
    check(g.scales >= 1 and d.image_size % 2 ** g.scales == 0, "glow_vae.scales",
          f"{g.scales} scales need an image size divisible by {2 ** g.scales}, got {d.image_size}")
    check(min(g.blocks, g.base_width, g.latent_dim, g.glow_depth, g.glow_width) >= 1
          and g.latent_dim >= 2, "glow_vae", "blocks, widths, depth >= 1 and latent_dim >= 2")
    check(g.phase1_steps >= 0, "glow_vae.phase1_steps", "must be >= 0")
    check(c.model.num_classes == 0, "model.num_classes", "the glow_vae family is unconditional")

  @staticmethod
  def shrink_tiny(c, num_steps: int) -> None:
    g = c.glow_vae
    g.scales, g.base_width, g.latent_dim = min(g.scales, 2), 4, 8
    g.glow_depth, g.glow_width, g.prior_layers, g.prior_width = 2, 4, 2, 8
    g.phase1_steps = min(g.phase1_steps, max(1, num_steps // 2))
    g.stage2_steps = min(g.stage2_steps, 1)

  @staticmethod
  def shrink_small(c, full_steps: int) -> None:
    """The same structure, narrow; each phase keeps its share of the steps."""
    base.Family.shrink_small(c, full_steps)
    g = c.glow_vae
    g.scales, g.base_width, g.latent_dim = min(g.scales, 2), 16, 32
    g.prior_layers, g.prior_width, g.glow_depth, g.glow_width = 4, 256, 8, 32
    g.phase1_steps = int(round(g.phase1_steps * c.train.num_steps / full_steps))
    g.stage2_steps = int(round(g.stage2_steps * c.train.num_steps / full_steps))
    c.optim.lr, c.optim.lr_halve_every = 1e-3, 0

  @staticmethod
  def has_latent_posterior(config) -> bool:
    return True

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    g = config.glow_vae
    self.image_shape = tuple(image_shape)
    self.model = build_model(config, self.image_shape)
    self.joint = g.schedule == "joint"
    self.prior = g.prior
    self.stage2_end = 0 if self.joint else int(g.phase1_steps) + (
        int(g.stage2_steps) if g.prior == "two_stage" else 0)
    self.phase1_end = 0 if self.joint else int(g.phase1_steps)
    self.sample_temperature = float(g.temperature)
    self.label = f"glow_vae/{g.prior} prior/{g.schedule}"
    self.has_encoder = True
    self.standard_normal_prior = g.prior == "normal"
    self.groups = {"vae": base.Group("params", base.make_optimizer(config.optim), ("vae",)),
                   "glow": base.Group("params", base.make_optimizer(config.optim), ("glow",))}
    if g.prior != "normal":
      self.groups["prior"] = base.Group("params", base.make_optimizer(config.optim), ("latent_prior",))

  def init(self, rng):
    k_model, k_z = jax.random.split(rng)
    y = jnp.full((2,) + self.image_shape, 0.5, jnp.float32)
    return self.model.init(k_model, y, k_z)["params"], {}, {}

  def _loss(self, params, y, rng, glow_on: bool, learned_prior: bool):
    out = self.model.apply({"params": params}, y, rng, glow=glow_on, learned_prior=learned_prior)
    per_example, terms = losses.coverage_loss(out)
    return jnp.mean(per_example), losses.coverage_metrics(out, per_example, terms)

  def _update(self, state, names, loss_fn):
    """One update of the groups `names` (the others frozen) by loss_fn(params) -> (loss, metrics)."""
    state, loss, metrics, _ = base.update_groups(state, self.groups, names, loss_fn)
    return state, {**metrics, "generator_loss": loss}

  def _initialise_actnorm(self, state, y):
    """The Glow's actnorms from this batch (data-dependent initialisation)."""
    new = self.model.apply({"params": state.params}, y, method="glow_data_init")
    return state.replace(params={**state.params, "glow": {**state.params["glow"], **new}})

  # Phases, each compiled once: "vae" (the VAE, with its prior unless that is a second stage),
  # "stage2" (a two-stage prior on the frozen first stage's codes), "glow" (the Glow layer alone, from
  # the identity; everything in "joint"), "glow_init" (the joint schedule's first step: actnorm
  # initialisation on its batch, then a joint update).
  num_phases = 4
  ema_restart_phases = ("glow_init",)  # the Glow's actnorms, set from data

  def phase(self, step: int) -> str:
    if step < self.phase1_end:
      return "vae"
    if step < self.stage2_end:
      return "stage2"
    return "glow_init" if self.joint and step == 0 else "glow"

  def train_step(self, state, images, labels, rng, constrain, phase):
    del labels, constrain
    deq_rng, rng = jax.random.split(rng)
    y = losses.dequantize(images, deq_rng)
    if phase == "vae":  # the Glow layer is still the identity: leave it out
      flow_prior = self.prior == "flow"
      state, metrics = self._update(state, ("vae", "prior") if flow_prior else ("vae",),
                                    lambda p: self._loss(p, y, rng, False, flow_prior))
      return state, {**metrics, "phase": jnp.float32(1.0)}
    if phase == "stage2":
      def stage2(p):
        nll = jnp.mean(self.model.apply({"params": p}, y, rng, method="stage2_loss"))
        return nll, {"stage2_bpd": nll / (y[0].size * math.log(2.0))}
      state, metrics = self._update(state, ("prior",), stage2)
      return state, {**metrics, "phase": jnp.float32(1.5)}
    if phase == "glow_init":
      state = self._initialise_actnorm(state, y)
    state, metrics = self._update(state, tuple(self.groups) if self.joint else ("glow",),
                                  lambda p: self._loss(p, y, rng, True, True))
    return state, {**metrics, "phase": jnp.float32(2.0)}

  def figures(self, params, batch_stats, rng, n):
    """papers/003 Figure 4: each z's underlying-VAE mean, then three samples through the Glow layer."""
    return {"glow_before_after": self.model.apply({"params": params}, rng, n, self.sample_temperature,
                                                  method="before_after")}
