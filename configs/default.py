"""AV-ADE on the offline Fashion-MNIST (Debian's `dataset-fashion-mnist`), about 10 minutes on 2 CPU cores.

  python -m adejax.main --config=configs/default.py --workdir=/tmp/adejax_default

A narrow version of the paper's ablation model (papers/002 section 5.1): SNGAN-shaped hierarchical VAE
at quarter width, f_psi = Real-NVP with 1 scale and 3 couplings, the conv discriminator, Adamax 2e-3,
lambda_adv = lambda_gp = 100. Images are padded from 28x28 to 32x32. The paper has no Fashion-MNIST
number; this config aims at recognisable samples and a held-out ELBO bound near 4 bits/dim within
its budget (see README). `:tiny` is the test-sized variant.
"""
from adejax import config_lib


def get_config(variant: str = ""):
  c = config_lib.base_config()
  c.mode = "av-ade"
  c.model.width = 0.25
  c.model.flow_width = 16
  c.model.flow_blocks = 1
  c.model.disc_width = 0.25
  c.train.batch_size = 64
  c.train.num_steps = 600          # ~0.85 s/step on 2 CPU cores (benchmarks/step_time.py)
  c.train.log_every = 50
  c.train.image_every = 200
  c.eval.every = 200
  c.eval.num_examples = 2000
  c.eval.num_fid_samples = 2000
  c.ckpt.every = 200
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size, c.data.resize = 16, "resize"
  elif variant:
    raise ValueError(f"Unknown variant {variant!r} of configs/default.py; use '' or 'tiny'.")
  return c
