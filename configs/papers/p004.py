"""papers/004 (Rosca, Lakshminarayanan, Mohamed): the VAE-GAN hybrids' configs, learning-rate grids and
reconstruction weights (appendix K, Table 5)."""
from __future__ import annotations

import ml_collections

from adejax import config_lib
from configs.papers import paper_schedule


# papers/004 Table 5: the learning-rate grid of each model, (generator/encoder, discriminator, code disc.)
HYBRID_LR_GRIDS = {
    "vae": ((1e-3, 5e-4, 5e-3), (), ()),
    "dcgan": ((1e-4, 2e-4, 3e-4), (1e-4, 2e-4, 3e-4), ()),
    "wgan_gp": ((1e-4, 2e-4, 3e-4), (1e-4, 2e-4, 3e-4), ()),
    "aae": ((1e-3, 5e-4, 5e-3), (), (5e-4, 5e-5, 1e-5)),
    "aae_pp": ((1e-4, 5e-4), (5e-4,), (5e-4,)),
    "aae_gan": ((1e-4, 5e-4), (5e-4,), (5e-4,)),
    "veegan": ((1e-3, 5e-4), (5e-5, 1e-4), ()),
}
HYBRID_REC_WEIGHTS = (1.0, 5.0, 10.0, 50.0)  # appendix K.1: AAE++ / AAE-GAN, encoder and generator
HYBRID_STEPS = {"cifar10": 200_000, "celeb_a": 200_000}  # appendix K (ColorMNIST: 100,000)


def hybrid_paper_config(model: str, dataset: str = "cifar10", image_size: int = 32,
                        likelihood: str = "bernoulli") -> ml_collections.ConfigDict:
  """A papers/004 model (appendix K): the shared DCGAN-style networks (here papers/002's SNGAN-shaped
  generator, its transposed encoder and the conv discriminator), Adam (0.5, 0.9), batch 64, batch norm,
  a fixed learning rate (the first of its Table 5 grid), 200,000 iterations on CIFAR-10 and CelebA, N(0, I)
  prior. Chosen here: 64 latents (the paper sweeps 10 / 50 / 75 on ColorMNIST and does not list
  CIFAR-10's)."""
  if model not in HYBRID_LR_GRIDS:
    raise config_lib.ConfigError(f"hybrid model must be one of {list(HYBRID_LR_GRIDS)}, got {model!r}")
  c = config_lib.base_config()
  c.model.family = "hybrid"
  c.data.dataset, c.data.image_size, c.data.resize = dataset, image_size, "resize"
  h = c.hybrid
  h.model, h.likelihood, h.latent_dim = model, likelihood, 64
  gen, disc, code = HYBRID_LR_GRIDS[model]
  c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", gen[0], 0.5, 0.9
  h.lr_disc, h.lr_code = (disc or (0.0,))[0], (code or (0.0,))[0]
  return paper_schedule(c, HYBRID_STEPS.get(dataset, 100_000))
