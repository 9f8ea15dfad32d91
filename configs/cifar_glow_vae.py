"""The VAE with a Glow decoder (papers/003) on CIFAR-10 with the paper's settings.

  python -m adejax.main --config=configs/cifar_glow_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. Paper (Table 2): FID 42.14, <= 3.17 bits/dim (Glow: 46.90, 3.35).
Section 4.2: the ResNet VAE of Dai & Wipf with 3 stages, a diagonal-Gaussian decoder, a prior flow of
16 couplings of two dense layers of width 1024, a Glow layer of depth 32 without squeeze or split; the
VAE and prior trained for 1000 epochs, then the Glow layer for 1000 epochs, lr 1e-4 halved every 250
epochs; samples at temperature 0.5 on the Glow's base. Not given in the paper, chosen here: Adam
(0.9, 0.999), batch 64, latent size 64, base width 64, coupling width 512 (Glow's), logit preprocessing.
`:tiny` is the test-sized variant on mock data.
"""
from adejax import config_lib

EPOCH_STEPS = {"cifar10": 50_000 // 64, "celeb_a": 162_770 // 64}


def paper_config(dataset: str, image_size: int, scales: int, variant: str):
  c = config_lib.base_config()
  c.model.family = "glow_vae"
  c.data.dataset, c.data.image_size = dataset, image_size
  c.data.resize = "resize"
  g = c.glow_vae
  g.scales, g.blocks, g.base_width, g.latent_dim = scales, 1, 64, 64
  g.decoder, g.prior, g.prior_layers, g.prior_width = "diagonal", "flow", 16, 1024
  g.glow_depth, g.glow_width, g.schedule, g.temperature = 32, 512, "two-phase", 0.5
  epoch = EPOCH_STEPS[dataset]
  g.phase1_steps = 1000 * epoch
  c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", 1e-4, 0.9, 0.999
  c.optim.lr_halve_every = 250 * epoch
  c.train.batch_size, c.train.num_steps = 64, 2000 * epoch
  c.train.log_every, c.train.image_every = 500, 20_000
  c.eval.every, c.ckpt.every = 50_000, 10_000
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  elif variant:
    raise ValueError(f"Unknown variant {variant!r}; use '' or 'tiny'.")
  return c


def get_config(variant: str = ""):
  return paper_config("cifar10", 32, 3, variant)
