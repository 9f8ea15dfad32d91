"""The VAE with a Glow decoder (papers/003) on the offline Fashion-MNIST at 28x28, on 2 CPU cores.

  python -m adejax.main --config=configs/fmnist_glow_vae.py --workdir=/tmp/glow_vae

The structure of configs/cifar_glow_vae.py at a CPU budget: a 2-stage ResNet VAE (28 -> 7) with a
diagonal decoder, a prior flow of 4 couplings of width 256, a Glow layer of depth 8 and width 32;
phase 1 (VAE + prior) 1200 steps, then phase 2 (the Glow layer alone) 800 steps, Adam 1e-3 halved
every 800 updates of each group, batch 64. papers/003 Table 1 has Fashion-MNIST: FID 19.70 with the
flow prior (two-stage VAE 31.87), on Inception features; ours are on the offline domain classifier.
`:tiny` is the test-sized variant.
"""
from adejax import config_lib


def get_config(variant: str = ""):
  c = config_lib.base_config()
  c.model.family = "glow_vae"
  g = c.glow_vae
  g.scales, g.blocks, g.base_width, g.latent_dim = 2, 1, 16, 32
  g.decoder, g.prior, g.prior_layers, g.prior_width = "diagonal", "flow", 4, 256
  g.glow_depth, g.glow_width, g.schedule, g.temperature = 8, 32, "two-phase", 0.5
  g.phase1_steps = 1200
  c.optim.name, c.optim.lr, c.optim.lr_halve_every = "adam", 1e-3, 800
  c.train.batch_size, c.train.num_steps = 64, 2000
  c.train.log_every, c.train.image_every = 50, 1000
  c.eval.every, c.eval.num_examples, c.eval.num_fid_samples = 1000, 2000, 2000
  c.ckpt.every = 400
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  elif variant:
    raise ValueError(f"Unknown variant {variant!r} of configs/fmnist_glow_vae.py; use '' or 'tiny'.")
  return c
