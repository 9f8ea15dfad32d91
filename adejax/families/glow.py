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
from adejax.families.base import check
from adejax.models import glow


def build_model(c: ml_collections.ConfigDict, image_shape) -> glow.GlowModel:
  g = c.glow
  return glow.GlowModel(tuple(image_shape), preprocess=c.model.preprocess, logit_alpha=c.model.logit_alpha,
                        levels=g.levels, depth=g.depth, width=g.width, lu=g.lu, coupling=g.coupling,
                        learn_top=g.learn_top)


def data_init(model: glow.GlowModel, params, y):
  """`params` with every actnorm set from batch y (Glow's data-dependent initialisation)."""
  new = model.apply({"params": params}, y, method="data_init")
  flow = {**params["flow"], **{k: {**params["flow"][k], **v} for k, v in new.items()}}
  return {**params, "flow": flow}


class GlowFamily(base.Family):
  num_phases = 2

  @staticmethod
  def config_section():
    g = ml_collections.ConfigDict()  # family "glow": Kingma & Dhariwal's multi-scale Glow, the
                                   # baseline of papers/003 Tables 2-4; model.preprocess applies
    g.levels = 3                   # levels, each squeeze -> `depth` steps -> split (none after the last)
    g.depth = 32                   # steps per level (actnorm, invertible 1x1 conv, coupling)
    g.width = 512                  # channels of the coupling networks
    g.coupling = "affine"          # "affine" (Glow's, scale sigmoid(raw + 2)) or "additive"
    g.lu = True                    # LU-parametrised 1x1 convolutions
    g.learn_top = True             # learned prior mean / std of the top level (else N(0, I))
    g.temperature = 1.0            # sampling temperature (std scale of every level's prior)
    return "glow", g

  @staticmethod
  def validate(c) -> None:
    g = c.glow
    check(g.levels >= 1 and c.data.image_size % 2 ** g.levels == 0, "glow.levels",
          f"{g.levels} levels squeeze {g.levels} times: they need an image size divisible by "
          f"{2 ** g.levels}, got {c.data.image_size}")
    check(g.coupling in glow.COUPLINGS, "glow.coupling", f"{g.coupling!r} is not one of {list(glow.COUPLINGS)}")
    check(g.depth >= 1 and g.width >= 1, "glow.depth", "depth and width must be positive")
    check(g.temperature >= 0, "glow.temperature", "must be >= 0")
    check(c.model.num_classes == 0, "model.num_classes", "the glow family is unconditional")

  @staticmethod
  def shrink_tiny(c, num_steps: int) -> None:
    c.glow.levels, c.glow.depth, c.glow.width = min(c.glow.levels, 2), 2, 4

  @staticmethod
  def shrink_small(c, full_steps: int) -> None:
    """2 levels (28 -> 14 -> 7), as narrow as the glow_vae's Glow layer."""
    base.Family.shrink_small(c, full_steps)
    c.glow.levels, c.glow.depth, c.glow.width = min(c.glow.levels, 2), 8, 32
    c.optim.lr_halve_every, c.optim.warmup_steps = 0, 100

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
      state = state.replace(params=data_init(self.model, state.params, y))

    def loss_fn(params):
      out = self.model.apply({"params": params}, y)
      per_example, terms = losses.coverage_loss(out)
      return jnp.mean(per_example), losses.coverage_metrics(out, per_example, terms)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state, _ = base.update_group(state, self.groups, "glow", grads, loss)
    return state, {**metrics, "generator_loss": loss}
