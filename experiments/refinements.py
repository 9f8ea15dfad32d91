"""Table 2 of papers/002: refinements rd, wg, iaf, s2 on CIFAR-10, each row its config variant.

  python -m adejax.sweep --experiment=experiments/refinements.py --workdir=DIR [--scale=small]
"""
from adejax import experiment
from configs import cifar_avade, cifar_gan

ROWS = {  # member: (config file, variant); the paper's numbers are the config file's
    "gan_rd": (cifar_gan, "rd"),
    "av-ade": (cifar_avade, ""),
    "av-ade_rd": (cifar_avade, "rd"),
    "av-ade_wg_rd": (cifar_avade, "wg,rd"),
    "av-ade_iaf_rd": (cifar_avade, "iaf,rd"),
    "av-ade_s2": (cifar_avade, "s2"),
}


def get_experiment(scale: str):
  return [experiment.Member(name, experiment.apply_scale(f.get_config(variant), scale), f.PAPER[variant])
          for name, (f, variant) in ROWS.items()]
