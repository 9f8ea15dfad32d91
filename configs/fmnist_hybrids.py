"""papers/004's VAE-GAN hybrids on the offline Fashion-MNIST at 28x28, one model per variant, at the
sweep's small scale (papers/004's own ColorMNIST networks of its Tables 6-7 at full width, code
discriminators of 256 units, batch 64; `--config.hybrid.arch=sngan` for papers/002's at width 1/4):

  python -m adejax.main --config=configs/fmnist_hybrids.py:wgan_gp --workdir=/tmp/wgan_gp

Variants as configs/cifar_hybrids.py (vae, dcgan, wgan_gp, aae, aae_pp, aae_gan, veegan, and
`quantized_normal` for the VAE / AAE likelihood); 2000 steps. `:tiny` is the test-sized variant.
"""
from adejax import config_lib, experiment
from configs import cifar_hybrids


def get_config(variant: str = "vae"):
  given = config_lib.parse_variant(variant, "configs/fmnist_hybrids.py",
                                   cifar_hybrids.MODELS + ("quantized_normal",), exclusive=(cifar_hybrids.MODELS,))
  c = experiment.apply_scale(cifar_hybrids.get_config(",".join(sorted(given - {"tiny"})) or "vae"), "small")
  c.train.num_steps = 2000
  c.train.image_every, c.eval.every, c.ckpt.every = 1000, 1000, 400
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  return c
