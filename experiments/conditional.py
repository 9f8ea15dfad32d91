"""Appendix E.1 of papers/002 (Table 8): class-conditional GAN and AV-ADE on CIFAR-10, measured by
GAN-test and GAN-train (Shmelkov et al. 2018).

  python -m adejax.sweep --experiment=experiments/conditional.py --workdir=DIR [--scale=small]

Both models are the `cond` variants of configs/cifar_gan.py and configs/cifar_avade.py: the section 5.1
architectures made class-conditional, with conditional weight norm (a scale g(y) and biases per class,
eq. 16) in every layer of the generator / VAE and a projection discriminator (Miyato & Koyama 2018).
The generated images of each step are drawn for the labels of the real batch. `adejax.evaluate`
reports `gan_test_domain` and `gan_train_domain`: the paper's two accuracies measured with adejax's
domain classifier (fractions; the paper's are in the columns beside, also as fractions, measured with
another classifier, so compare orderings, not values).
"""
from adejax import experiment
from configs import cifar_avade, cifar_gan


def get_experiment(scale: str):
  return [experiment.Member(name, experiment.apply_scale(f.get_config("cond"), scale), f.PAPER["cond"])
          for name, f in (("gan_cond", cifar_gan), ("av-ade_cond", cifar_avade))]
