"""AV-ADE on the offline Fashion-MNIST (Debian's `dataset-fashion-mnist`), about 10 minutes on 2 CPU cores.

  python -m adejax.main --config=configs/default.py --workdir=/tmp/adejax_default

A narrow version of the paper's ablation model (papers/002 section 5.1): SNGAN-shaped VAE at quarter
width, f_psi = Real-NVP with 1 scale and 3 couplings, the conv discriminator, Adamax 2e-3,
lambda_gp = 100. Two changes fit it into about 10 minutes on 2 CPU cores, both measured (README):
only the lowest latent level is stochastic (4x4x32; the 8x8 to 32x32 stochastic layers make a step 1.7x
slower, and in 600 steps their prior samples were formless blobs), and lambda_adv = 10, the
low end of the range the paper reports as working (appendix C: 10 to 100), because at 100 and this
budget the samples collapsed to one shape. The paper has no Fashion-MNIST number; this config aims at a
held-out ELBO bound below 4 bits/dim; at this budget its prior samples are still smooth silhouettes
(README). `:tiny` is the test-sized variant.
"""
from adejax import config_lib


def get_config(variant: str = ""):
  c = config_lib.base_config()
  c.mode = "av-ade"
  c.model.width = 0.25
  c.model.flow_width = 16
  c.model.flow_blocks = 1
  c.model.disc_width = 0.25
  c.model.latent_levels = 1
  c.loss.adv_weight = 10.0
  c.train.batch_size = 64
  c.train.num_steps = 1100         # ~0.5 s/step on 2 CPU cores (benchmarks/step_time.py)
  c.train.log_every = 50
  c.train.image_every = 550
  c.eval.every = 550
  c.eval.num_examples = 2000
  c.eval.num_fid_samples = 2000
  c.ckpt.every = 550
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  elif variant:
    raise ValueError(f"Unknown variant {variant!r} of configs/default.py; use '' or 'tiny'.")
  return c
