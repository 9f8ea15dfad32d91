"""The VAE with a Glow decoder (papers/003) on the offline Fashion-MNIST at 28x28: ~12 min on 2 CPU cores.

  python -m adejax.main --config=configs/fmnist_glow_vae.py --workdir=/tmp/glow_vae

The paper's structure at the sweep's small scale (`adejax.experiment.apply_scale`): a 2-stage ResNet VAE
(28 -> 7, base width 16, latent 32) with a diagonal decoder, a prior flow of 4 couplings x 256, a Glow
layer of depth 8 and width 32; phase 1 (VAE + prior) 1200 steps, then phase 2 (the Glow layer alone)
800 steps, Adam 1e-3 halved every 800 updates of each group, batch 64. papers/003 Table 1 has
Fashion-MNIST (FID 19.70 with the flow prior, 31.87 two-stage), on Inception features; ours are on the
offline domain classifier. `:tiny` is the test-sized variant.
"""
from adejax import config_lib, experiment
from configs.papers import p003


def get_config(variant: str = ""):
  c = experiment.apply_scale(p003.glow_vae_paper_config("fashion_mnist", 28, 2), "small")
  c.train.num_steps, c.glow_vae.phase1_steps, c.optim.lr_halve_every = 2000, 1200, 800
  c.train.image_every, c.eval.every, c.ckpt.every = 1000, 1000, 400
  if "tiny" in config_lib.parse_variant(variant, "configs/fmnist_glow_vae.py", ()):
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  return c
