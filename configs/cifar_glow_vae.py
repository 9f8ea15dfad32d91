"""The VAE with a Glow decoder (papers/003) on CIFAR-10 with the paper's settings.

  python -m adejax.main --config=configs/cifar_glow_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. Paper (Table 2): FID 42.14, <= 3.17 bits/dim (Glow: 46.90, 3.35).
The settings (`adejax.sweep.glow_vae_paper_config` lists what the paper gives and what is chosen here):
a 3-stage ResNet VAE with a diagonal decoder, a prior flow of 16 couplings x 1024, a Glow layer of depth
32; 1000 epochs of VAE + prior, then 1000 of the Glow layer alone; Adam 1e-4 halved every 250 epochs;
samples at temperature 0.5. Variants: `:flow_prior` and `:two_stage` are papers/003 Table 1's rows (a
learned-gamma decoder, no Glow layer); `:tiny` is the test-sized variant on mock data.
"""
from adejax import config_lib, sweep


def get_config(variant: str = "", dataset: str = "cifar10", image_size: int = 32, scales: int = 3):
  c = sweep.glow_vae_paper_config(dataset, image_size, scales)
  row, _, size = variant.partition(":") if variant != "tiny" else ("", "", "tiny")
  sweep.glow_vae_variant(c, row or "full")
  if size == "tiny":
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  elif size:
    raise ValueError(f"Unknown variant {variant!r}; use '', 'tiny', 'flow_prior', 'two_stage' "
                     "(each optionally with ':tiny').")
  return c
