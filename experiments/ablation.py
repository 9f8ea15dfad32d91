"""Table 1 of papers/002: the ablation GAN / VAE / V-ADE / AV-GDE / AV-ADE on CIFAR-10.

  python -m adejax.sweep --experiment=experiments/ablation.py --workdir=DIR               # paper scale
  python -m adejax.sweep --experiment=experiments/ablation.py --workdir=DIR --scale=small # 2-core CPU

All members share the section 5.1 architecture (SNGAN-shaped generator, mirrored encoder, conv
discriminator). Models with f_psi get a narrower generator so that their total parameter count matches
the VAE's (the paper's "-1.4%"); `generator_params` in the results shows both counts.
The last row, `glow-vae`, is papers/003's model (VAE + Glow layer, two phases) at the same scale and
step budget, so the two systems are compared under one evaluation (its paper numbers are its own
CIFAR-10 Table 2). The GAN has no inference network of its own, so its row's bits/dim comes from `gan_bpd`: the GAN's
generator frozen, an encoder and sigma trained around it (section 5, the paper's approximate [7.0]).
"""
from adejax import config_lib, sweep

PAPER = {  # Table 1: BPD, IS, FID on CIFAR-10 (the GAN's BPD is approximate)
    "gan": {"bpd": 7.0, "is": 6.8, "fid": 31.4},
    "vae": {"bpd": 4.4, "is": 2.0, "fid": 171.0},
    "v-ade": {"bpd": 3.5, "is": 3.0, "fid": 112.0},
    "av-gde": {"bpd": 4.4, "is": 5.1, "fid": 58.6},
    "av-ade": {"bpd": 3.9, "is": 7.1, "fid": 28.0},
}


def get_experiment(scale: str):
  configs = {mode: sweep.apply_scale(sweep.paper_config(mode), scale) for mode in PAPER}
  target = sweep.generator_param_count(configs["vae"])
  members = []
  for mode, config in configs.items():
    if config_lib.MODES[mode][0]:  # f_psi present: compensate its parameters
      config.model.width = sweep.match_width(config, target, lo=0.5 * config.model.width,
                                             hi=config.model.width)
    members.append(sweep.Member(mode, config, PAPER[mode], bpd_from="gan_bpd" if mode == "gan" else ""))
    if mode == "gan":
      bpd = sweep.apply_scale(sweep.paper_config("vae"), scale)
      bpd.model.width, bpd.model.generator = config.model.width, "vector"  # the GAN's generator
      bpd.train.init_checkpoint, bpd.train.freeze = "../gan", "decoder"
      bpd.train.num_steps = max(2, config.train.num_steps // 2)
      bpd.eval.num_fid_samples = 0  # same generator as `gan`: only its bits/dim is new
      members.append(sweep.Member("gan_bpd", bpd, {"bpd": PAPER["gan"]["bpd"]}))
  # papers/003's VAE with a Glow decoder beside them, at the same scale (its paper's CIFAR-10 numbers)
  glow = sweep.apply_scale(sweep.glow_vae_paper_config("cifar10", 32, 3), scale)
  members.append(sweep.Member("glow-vae", glow, {"bpd": 3.17, "fid": 42.14}))
  return members
