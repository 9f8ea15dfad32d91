"""Table 9 of papers/002: capacity of f_psi (scales x residual blocks) for AV-ADE and V-ADE on CIFAR-10.

  python -m adejax.sweep --experiment=experiments/flow_capacity.py --workdir=DIR [--scale=small]

Each row is a `flowSxB` variant of configs/cifar_vade.py or configs/cifar_avade.py: the residual
architectures of Table 6; the AV-ADE models first train by maximum likelihood, then switch on the
adversarial loss (loss.adv_start_step, at 40% of training).
"""
from adejax import experiment
from configs import cifar_avade, cifar_vade


def get_experiment(scale: str):
  return [experiment.Member(f"{mode}_s{variant[4]}_b{variant[6]}", experiment.apply_scale(f.get_config(variant), scale),
                       f.PAPER[variant])
          for mode, f in (("v-ade", cifar_vade), ("av-ade", cifar_avade))
          for variant in f.PAPER if variant.startswith("flow")]
