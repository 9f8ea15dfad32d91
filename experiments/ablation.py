"""Table 1 of papers/002: the ablation GAN / VAE / V-ADE / AV-GDE / AV-ADE on CIFAR-10.

  python -m adejax.sweep --experiment=experiments/ablation.py --workdir=DIR               # paper scale
  python -m adejax.sweep --experiment=experiments/ablation.py --workdir=DIR --scale=small # 2-core CPU

Each row is its config file (configs/cifar_gan.py, cifar_vae.py, cifar_vade.py, cifar_avgde.py,
cifar_avade.py), which also holds the paper's numbers. All share the section 5.1 architecture
(SNGAN-shaped generator, mirrored encoder, conv discriminator). Models with f_psi get a narrower
generator so that their total parameter count matches the VAE's (the paper's "-1.4%");
`generator_params` in the results shows both counts. The last row, `glow-vae`, is papers/003's model
(configs/cifar_glow_vae.py: VAE + Glow layer, two phases) at the same scale, so the two systems are
compared under one evaluation (its paper numbers are its own CIFAR-10 Table 2). The GAN has no
inference network of its own, so its row's bits/dim comes from `gan_bpd` (configs/cifar_vae.py:gan_bpd:
the GAN's generator frozen, an encoder and sigma trained around it; the paper's approximate [7.0]).
The rows `flow-gan-h` and `flow-gan-a` are Table 3's invertible hybrids, Flow-GAN with and without its
likelihood term (configs/cifar_flow_gan.py, on papers/003's Glow; their paper numbers from Grover et al.).
"""
from adejax import experiment
from adejax.families.ade import MODES
from configs import cifar_avade, cifar_avgde, cifar_flow_gan, cifar_gan, cifar_glow_vae, cifar_vade, cifar_vae
from configs.papers import p002

CONFIGS = {"gan": cifar_gan, "vae": cifar_vae, "v-ade": cifar_vade, "av-gde": cifar_avgde,
           "av-ade": cifar_avade}


def get_experiment(scale: str):
  configs = {mode: experiment.apply_scale(f.get_config(), scale) for mode, f in CONFIGS.items()}
  target = experiment.generator_param_count(configs["vae"])
  members = []
  for mode, config in configs.items():
    if MODES[mode][0]:  # f_psi present: compensate its parameters
      config.model.width = p002.match_width(config, target, lo=0.5 * config.model.width,
                                             hi=config.model.width)
    members.append(experiment.Member(mode, config, CONFIGS[mode].PAPER[""],
                                bpd_from="gan_bpd" if mode == "gan" else ""))
    if mode == "gan":
      members.append(experiment.Member("gan_bpd", cifar_vae.around_gan(config, scale), cifar_vae.PAPER["gan_bpd"]))
  glow = experiment.apply_scale(cifar_glow_vae.get_config(), scale)
  members.append(experiment.Member("glow-vae", glow, cifar_glow_vae.PAPER[""]))
  for variant in ("", "a"):
    members.append(experiment.Member(f"flow-gan-{variant or 'h'}",
                                     experiment.apply_scale(cifar_flow_gan.get_config(variant), scale),
                                     cifar_flow_gan.PAPER[variant]))
  return members

