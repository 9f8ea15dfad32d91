"""Flow-GAN (Grover, Dhar and Ermon 2018), the hybrid papers/002's Table 3 compares AV-ADE with: an
invertible generator trained by maximum likelihood and adversarially at once.

The generator is the project's multi-scale Glow (`models.glow.GlowModel`, settings `config.glow`), which
gives both an exact log-likelihood and samples x = f^-1(z); the discriminator and its gradient penalty
are the image discriminator of papers/002 (`model.disc_arch`, `model.disc_width`, `loss.gp_weight`,
`loss.gp_form`). The generator minimises

    flow_gan.likelihood_weight * NLL(x) + loss.adv_weight * L_Q(f^-1(z)),

NLL in nats per image (the Glow's exact -log p of the dequantized data) and L_Q papers/002's eq. 5,
with the same balance as AV-ADE's L_C + lambda_adv L_Q: FlowGAN(H) is likelihood_weight 1, FlowGAN(A)
(adversarial only; its bits/dim are still exact) likelihood_weight 0. Grover et al. pair the likelihood
with a WGAN critic and weigh it by their lambda; adejax reuses AV-ADE's discriminator objective
(cross-entropy + gradient penalty) so that the comparison with AV-ADE changes the generator only.

Groups: "glow" (the flow) and "disc", each with an optimiser from `config.optim` (the discriminator's
lr and betas from optim.disc_*). Schedule: the first step (its own phase, "init") sets every actnorm
from its batch, as the Glow family does; every step then takes `train.disc_steps` discriminator updates
on fresh samples, then one generator update.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from adejax import losses
from adejax.families import base, glow
from adejax.families.base import check
from adejax.models import discriminators


class FlowGANFamily(base.Family):
  num_phases = 2
  ema_restart_phases = ("init",)  # the actnorms' data-dependent initialisation

  @staticmethod
  def config_section():
    f = ml_collections.ConfigDict()  # family "flow_gan": Flow-GAN on the Glow of config.glow
    f.likelihood_weight = 1.0      # weight of the flow's NLL (nats per image) beside loss.adv_weight * L_Q:
                                   # 1 = FlowGAN(H) at AV-ADE's balance, 0 = FlowGAN(A) (adversarial only)
    return "flow_gan", f

  @staticmethod
  def validate(c) -> None:
    glow.GlowFamily.validate(c)  # the generator is the Glow family's model
    check(c.flow_gan.likelihood_weight >= 0, "flow_gan.likelihood_weight", "must be >= 0 (0 = FlowGAN(A))")
    check(c.flow_gan.likelihood_weight > 0 or c.loss.adv_weight > 0, "loss.adv_weight",
          "with flow_gan.likelihood_weight 0 the adversarial weight is all there is: make it positive")

  @staticmethod
  def shrink_small(c, full_steps: int) -> None:
    glow.GlowFamily.shrink_small(c, full_steps)

  @staticmethod
  def results_mode(config) -> str:
    return "flow_gan/" + ("h" if config.flow_gan.likelihood_weight else "a")

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    self.image_shape = tuple(image_shape)
    self.model = glow.build_model(config, self.image_shape)
    self.disc = discriminators.Discriminator(config.model.disc_arch, config.model.disc_width)
    self.likelihood_weight = float(config.flow_gan.likelihood_weight)
    self.adv_weight = float(config.loss.adv_weight)
    self.gp_weight, self.gp_form = float(config.loss.gp_weight), str(config.loss.gp_form)
    self.disc_steps = int(config.train.disc_steps)
    self.sample_temperature = float(config.glow.temperature)  # evaluation (the adversary sees temperature 1)
    self.label = f"flow_gan/{'h' if self.likelihood_weight else 'a'} (lambda {self.likelihood_weight:g})"
    o = config.optim
    self.groups = {"glow": base.Group("params", base.make_optimizer(o)),
                   "disc": base.Group("disc_params", base.make_optimizer(o, *base.discriminator_optim(o)))}

  def init(self, rng):
    k_model, k_disc = jax.random.split(rng)
    params = self.model.init(k_model, jnp.full((2,) + self.image_shape, 0.5, jnp.float32))["params"]
    return params, {}, discriminators.init_params(self.disc, k_disc, self.image_shape)

  def phase(self, step: int) -> str:
    return "init" if step == 0 else "train"

  def generator_objective(self, params, disc_params, y, rng):
    """(likelihood_weight * mean NLL + adv_weight * L_Q, metrics): the generator's loss on a real
    batch y and as many samples."""
    out = self.model.apply({"params": params}, y)
    per_example, terms = losses.coverage_loss(out)
    fake = self.model.apply({"params": params}, rng, y.shape[0], method="generate")
    quality = losses.quality_loss(
        self.disc.apply({"params": disc_params}, discriminators.discriminator_input(fake)))
    loss = self.likelihood_weight * jnp.mean(per_example) + self.adv_weight * quality
    return loss, {**losses.coverage_metrics(out, per_example, terms), "quality_loss": quality}

  def train_step(self, state, images, labels, rng, constrain, phase):
    del labels  # unconditional
    deq_rng, disc_rng, gen_rng = jax.random.split(rng, 3)
    y = losses.dequantize(images, deq_rng)
    if phase == "init":
      state = state.replace(params=glow.data_init(self.model, state.params, y))
    metrics = {}
    for i in range(self.disc_steps):
      prior_rng, gp_rng = jax.random.split(jax.random.fold_in(disc_rng, i))
      fake = constrain(self.model.apply({"params": state.params}, prior_rng, y.shape[0], method="generate"))
      (d_loss, metrics), d_grads = jax.value_and_grad(losses.discriminator_objective, has_aux=True)(
          state.disc_params, discriminators.discriminator_input(y),
          discriminators.discriminator_input(jax.lax.stop_gradient(fake)), gp_rng, disc=self.disc,
          gp_weight=self.gp_weight, gp_form=self.gp_form)
      state, _ = base.update_group(state, self.groups, "disc", d_grads, d_loss)
    (g_loss, g_metrics), grads = jax.value_and_grad(self.generator_objective, has_aux=True)(
        state.params, state.disc_params, y, gen_rng)
    state, _ = base.update_group(state, self.groups, "glow", grads, g_loss)
    return state, {**metrics, **g_metrics, "generator_loss": g_loss}
