"""Section 5 of papers/002, "BPD for a GAN": train the GAN baseline (configs/cifar_gan.py), then freeze
its generator and train an inference network and an isotropic sigma around it by maximum likelihood
(configs/cifar_vae.py:gan_bpd); the ELBO gives an upper bound on the GAN's bits/dim (the paper's
approximate [7.0] in Table 1).

  python -m adejax.sweep --experiment=experiments/gan_bpd.py --workdir=DIR [--scale=small]
"""
from adejax import experiment
from configs import cifar_gan, cifar_vae


def get_experiment(scale: str):
  gan = experiment.apply_scale(cifar_gan.get_config(), scale)
  return [experiment.Member("gan", gan, {k: v for k, v in cifar_gan.PAPER[""].items() if k != "bpd"}),
          experiment.Member("gan_bpd", cifar_vae.around_gan(gan, scale), cifar_vae.PAPER["gan_bpd"])]
