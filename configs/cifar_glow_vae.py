"""The VAE with a Glow decoder (papers/003) on CIFAR-10 with the paper's settings.

  python -m adejax.main --config=configs/cifar_glow_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets

Needs `cifar10` prepared in TFDS. Paper (Table 2): FID 42.14, <= 3.17 bits/dim (Glow: 46.90, 3.35).
The settings (`configs.papers.p003.glow_vae_paper_config` lists what the paper gives and what is chosen here):
a 3-stage ResNet VAE with a diagonal decoder, a prior flow of 16 couplings x 1024, a Glow layer of depth
32; 1000 epochs of VAE + prior, then 1000 of the Glow layer alone; Adam 1e-4 halved every 250 epochs;
samples at temperature 0.5 (Table 1's rows, the underlying VAE alone: at its decoder mean).

  variant        paper row                                                 FID     BPD
  (none)         Table 2: VAE + Glow layer                                 42.14   <= 3.17
  flow_prior     Table 1: learned-gamma decoder, flow prior, no Glow       71.85
  two_stage      Table 1: learned-gamma decoder, Dai & Wipf's 2nd-stage VAE 76.04

Add `tiny` to any variant (e.g. `:two_stage,tiny`) for the test-sized version on mock data.
"""
from adejax import config_lib
from configs.papers import p003

PAPER = {"": {"fid": 42.14, "bpd": 3.17}, "flow_prior": {"fid": 71.85}, "two_stage": {"fid": 76.04}}


def get_config(variant: str = "", dataset: str = "cifar10", image_size: int = 32, scales: int = 3,
               config_file: str = "configs/cifar_glow_vae.py"):
  given = config_lib.parse_variant(variant, config_file, ("flow_prior", "two_stage"),
                                   exclusive=(("flow_prior", "two_stage"),))
  c = p003.glow_vae_paper_config(dataset, image_size, scales)
  p003.glow_vae_variant(c, next((n for n in given if n != "tiny"), "full"))
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=4)
    c.data.image_size = 16
  return c
