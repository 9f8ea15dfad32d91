"""AV-ADE on the offline Fashion-MNIST (Debian's `dataset-fashion-mnist`), about 10 minutes on 2 CPU cores.

  python -m adejax.main --config=configs/default.py --workdir=/tmp/adejax_default

A narrow version of the paper's ablation model (papers/002 section 5.1): SNGAN-shaped VAE at quarter
width, f_psi = Real-NVP with 1 scale and 3 couplings, the conv discriminator, Adamax 2e-3,
lambda_gp = 100. Three changes fit it into about 10 minutes on 2 CPU cores, all measured (README):
only the two lowest latent levels are stochastic (4x4 and 8x8, 32 channels each; all four make a
step slower and gave formless blobs at this budget); batch 32 instead of 64 (the same images in the
same time, as twice the steps: 3.86 against 4.21 bits/dim after 5 minutes); and lambda_adv = 10, the
low end of the range the paper reports as working (appendix C: 10 to 100), because at 100 and this
budget the samples collapsed to one patchy shape. The paper has no Fashion-MNIST number; this config
reaches a held-out ELBO bound of about 3.5 bits/dim. At this budget its prior samples are still
smooth garment silhouettes, not recognisable garments (README). `:tiny` is the test-sized variant.
"""
from adejax import config_lib


def get_config(variant: str = ""):
  c = config_lib.base_config()
  c.mode = "av-ade"
  c.model.width = 0.25
  c.model.flow_width = 16
  c.model.flow_blocks = 1
  c.model.disc_width = 0.25
  c.model.latent_levels = 2
  c.loss.adv_weight = 10.0
  c.train.batch_size = 32
  c.train.num_steps = 2000         # ~0.26 s/step on 2 CPU cores (benchmarks/step_time.py)
  c.train.log_every = 50
  c.train.image_every = 1000
  c.eval.every = 1000
  c.eval.num_examples = 2000
  c.eval.num_fid_samples = 2000
  c.ckpt.every = 1000
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  elif variant:
    raise ValueError(f"Unknown variant {variant!r} of configs/default.py; use '' or 'tiny'.")
  return c
