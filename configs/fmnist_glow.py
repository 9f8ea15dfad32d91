"""The standalone multi-scale Glow on the offline Fashion-MNIST at 28x28: papers/003's baseline at the
scale of configs/fmnist_glow_vae.py, for the same 2000 steps of batch 64.

  python -m adejax.main --config=configs/fmnist_glow.py --workdir=/tmp/glow

2 levels (28 -> 14 -> 7) of 8 steps with coupling networks of width 32, as deep and as wide as the Glow
layer of configs/fmnist_glow_vae.py (which has 1 level of 8); affine couplings, LU 1x1 convolutions,
learned top prior; Adam 1e-3 after a 100-step linear warm-up, batch 64. `:tiny` is the test-sized
variant.
"""
from adejax import config_lib, experiment
from configs.papers import p003


def get_config(variant: str = ""):
  c = experiment.apply_scale(p003.glow_paper_config("fashion_mnist", 28, 2), "small")
  c.train.num_steps = 2000
  c.train.image_every, c.eval.every, c.ckpt.every = 1000, 1000, 400
  if "tiny" in config_lib.parse_variant(variant, "configs/fmnist_glow.py", ()):
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  return c
