"""AV-ADE on CIFAR-10 with the paper's hyper-parameters (papers/002 Table 1, section 5.1, appendix C).

  python -m adejax.main --config=configs/cifar_avade.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS (e.g. `tfds build cifar10` on a networked machine, then copy the
data_dir). Paper, Table 1 (AV-ADE): 3.9 bits/dim, IS 7.1, FID 28.0. SNGAN-shaped VAE with a mirrored
encoder, f_psi with 1 scale x 3 couplings x 2 residual blocks (~1.6% of the VAE's weights),
conv discriminator, Adamax 2e-3 (0.9, 0.999), batch 64, lambda_adv = lambda_gp = 100, one
discriminator update per generator update. `:tiny` is the test-sized variant on mock data.
"""
from adejax import config_lib


def get_config(variant: str = ""):
  c = config_lib.base_config()
  c.mode = "av-ade"
  c.data.dataset = "cifar10"
  c.data.image_size = 32
  c.train.batch_size = 64
  c.train.num_steps = 500_000
  c.train.ema_decay = 0.0
  c.eval.every = 10_000
  c.ckpt.every = 5_000
  if variant == "tiny":
    config_lib.make_tiny(c, num_steps=2)
    c.model.flow_blocks = 1
  elif variant:
    raise ValueError(f"Unknown variant {variant!r} of configs/cifar_avade.py; use '' or 'tiny'.")
  return c
