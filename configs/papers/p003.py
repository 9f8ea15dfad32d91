"""papers/003 (Morrow & Chiu): the VAE with a Glow decoder, its Table 1 rows and the standalone Glow it
is compared with."""
from __future__ import annotations

import ml_collections

from adejax import config_lib
from configs.papers import paper_schedule


GLOW_VAE_EPOCH_STEPS = {"cifar10": 50_000 // 64, "celeb_a": 162_770 // 64, "fashion_mnist": 60_000 // 64}


def glow_vae_paper_config(dataset: str = "cifar10", image_size: int = 32,
                          scales: int = 3) -> ml_collections.ConfigDict:
  """papers/003's model and schedule (section 4.2): the ResNet VAE of Dai & Wipf with `scales` stages
  (CIFAR-10 3, CelebA 4) and a diagonal decoder, a prior flow of 16 couplings of two dense layers of
  width 1024, a Glow layer of depth 32 without squeeze or split; the VAE and prior for 1000 epochs, then
  the Glow layer for 1000 epochs; lr 1e-4 halved every 250 epochs; temperature 0.5. Not given in the
  paper, chosen here: Adam (0.9, 0.999), batch 64, latent size 64, base width 64, coupling width 512."""
  c = config_lib.base_config()
  c.model.family = "glow_vae"
  c.data.dataset, c.data.image_size, c.data.resize = dataset, image_size, "resize"
  g = c.glow_vae
  g.scales, g.blocks, g.base_width, g.latent_dim = scales, 1, 64, 64
  g.decoder, g.prior, g.prior_layers, g.prior_width = "diagonal", "flow", 16, 1024
  g.glow_depth, g.glow_width, g.schedule, g.temperature = 32, 512, "two-phase", 0.5
  epoch = GLOW_VAE_EPOCH_STEPS.get(dataset, 50_000 // 64)
  g.phase1_steps = 1000 * epoch
  c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", 1e-4, 0.9, 0.999
  c.optim.lr_halve_every = 250 * epoch
  return paper_schedule(c, 2000 * epoch)


def glow_paper_config(dataset: str = "cifar10", image_size: int = 32,
                      levels: int = 3) -> ml_collections.ConfigDict:
  """The standalone Glow that papers/003 compares against (Tables 2-4; Kingma & Dhariwal 2018): `levels`
  levels (CIFAR-10 3; 4 chosen here for CelebA 64x64) of 32 steps of actnorm, LU-parametrised 1x1
  convolution and affine coupling with networks of width 512, learned top prior; Adam lr 1e-3, batch 64,
  pixels centred, a linear learning-rate warm-up over 10 epochs (Glow's code). Chosen here: the same
  2000 epochs as papers/003's model (Table 4 compares equal epochs), samples at temperature 1."""
  c = config_lib.base_config()
  c.model.family, c.model.preprocess = "glow", "centre"
  c.data.dataset, c.data.image_size, c.data.resize = dataset, image_size, "resize"
  g = c.glow
  g.levels, g.depth, g.width, g.coupling, g.lu, g.learn_top, g.temperature = levels, 32, 512, "affine", True, True, 1.0
  epoch = GLOW_VAE_EPOCH_STEPS.get(dataset, 50_000 // 64)
  c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", 1e-3, 0.9, 0.999
  c.optim.warmup_steps = 10 * epoch
  return paper_schedule(c, 2000 * epoch)


def glow_vae_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """papers/003's rows: "full" (the model above); "flow_prior" and "two_stage" (Table 1: the VAE with a
  learned-gamma decoder and no Glow layer, with the flow prior or Dai & Wipf's second-stage VAE, sampled
  at the decoder mean; the two-stage run gives 30% of its steps to the second stage)."""
  g, n = c.glow_vae, c.train.num_steps
  if variant == "full":
    return c
  g.decoder = "gamma"
  g.temperature = 0.0  # Table 1 samples the underlying VAE: its decoder means g_mu(z), z ~ p(z)
  if variant == "flow_prior":
    g.prior, g.phase1_steps = "flow", n
  elif variant == "two_stage":
    g.prior, g.phase1_steps, g.stage2_steps = "two_stage", n - int(0.3 * n), int(0.3 * n)
  else:
    raise config_lib.ConfigError(f"glow_vae variant must be full, flow_prior or two_stage, got {variant!r}")
  return c
