"""The VAE baseline on CIFAR-10 (papers/002 Table 1), and the "BPD for a GAN" run of section 5.

  python -m adejax.main --config=configs/cifar_vae.py --workdir=DIR \
      --config.data.tfds_data_dir=/path/to/tensorflow_datasets
  python -m adejax.main --config=configs/cifar_vae.py:gan_bpd --workdir=DIR/gan_bpd \
      --config.train.init_checkpoint=DIR/gan --config.data.tfds_data_dir=...

  variant        paper row                                          BPD    IS    FID
  (none)         Table 1: VAE (SNGAN-shaped, isotropic sigma)       4.4    2.0   171.0
  gan_bpd        Table 1: the GAN's bits/dim                        [7.0]

`gan_bpd` freezes the generator of a trained configs/cifar_gan.py run (`train.init_checkpoint`, required)
and trains an inference network and an isotropic sigma around it by maximum likelihood for 250k steps:
its ELBO is an upper bound on the GAN's bits/dim (the paper's approximate [7.0]). Add `tiny` for the
test-sized version.
"""
from adejax import config_lib, experiment
from configs.papers import p002

PAPER = {"": {"bpd": 4.4, "is": 2.0, "fid": 171.0}, "gan_bpd": {"bpd": 7.0}}


def get_config(variant: str = ""):
  c = p002.variant_config("vae", variant, "configs/cifar_vae.py", ("gan_bpd",))
  if "gan_bpd" in config_lib.parse_variant(variant, "configs/cifar_vae.py", ("gan_bpd",)):
    c.model.generator = "vector"  # the GAN's own generator
    c.train.freeze = "decoder"
    c.train.num_steps //= 2
    c.eval.num_fid_samples = 0  # the GAN's samples are scored by its own run
  return c


def around_gan(gan, scale: str, gan_workdir: str = "../gan"):
  """`gan_bpd` for an experiment's GAN member: its config `gan` (already at `scale`), its workdir
  relative to this run's; half the GAN's steps, the GAN's width, no FID (the GAN's run scores it)."""
  c = experiment.apply_scale(get_config("gan_bpd"), scale)
  c.train.init_checkpoint = gan_workdir
  c.model.width = gan.model.width
  c.train.num_steps = max(2, gan.train.num_steps // 2)
  c.eval.num_fid_samples = 0
  return c
