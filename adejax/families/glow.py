"""The standalone multi-scale Glow (Kingma & Dhariwal 2018): papers/003's baseline in Tables 2-4.

One parameter group, "glow", with its optimiser from `config.optim`, trained by maximum likelihood. The
first step (its own phase, "init") sets every actnorm from its batch (data-dependent initialisation), then
takes the same update as every later step. Bits/dim are the exact -log p(x) of the dequantized data
(no latent variable: the ELBO and IWAE bounds of `Trainer.evaluate` equal it).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from adejax import losses
from adejax.families import base
from adejax.models import glow


def build_model(c: ml_collections.ConfigDict, image_shape) -> glow.GlowModel:
  g = c.glow
  return glow.GlowModel(tuple(image_shape), preprocess=c.model.preprocess, logit_alpha=c.model.logit_alpha,
                        levels=g.levels, depth=g.depth, width=g.width, lu=g.lu, coupling=g.coupling,
                        learn_top=g.learn_top)


class GlowFamily(base.Family):
  num_phases = 2

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    g = config.glow
    self.image_shape = tuple(image_shape)
    self.model = build_model(config, self.image_shape)
    self.sample_temperature = float(g.temperature)
    self.label = f"glow/{g.levels}x{g.depth} {g.coupling}"
    self.groups = {"glow": base.Group("params", base.make_optimizer(config.optim))}

  def init(self, rng):
    return self.model.init(rng, jnp.full((2,) + self.image_shape, 0.5, jnp.float32))["params"], {}, {}

  ema_restart_phases = ("init",)  # the actnorms' data-dependent initialisation

  def phase(self, step: int) -> str:
    return "init" if step == 0 else "train"

  def train_step(self, state, images, labels, rng, constrain, phase):
    del labels, constrain
    y = losses.dequantize(images, rng)
    if phase == "init":
      new = self.model.apply({"params": state.params}, y, method="data_init")
      flow = {**state.params["flow"], **{k: {**state.params["flow"][k], **v} for k, v in new.items()}}
      state = state.replace(params={**state.params, "flow": flow})

    def loss_fn(params):
      out = self.model.apply({"params": params}, y)
      per_example, terms = losses.coverage_loss(out)
      return jnp.mean(per_example), losses.coverage_metrics(out, per_example, terms)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state, _ = base.update_group(state, self.groups, "glow", grads, loss)
    return state, {**metrics, "generator_loss": loss}
