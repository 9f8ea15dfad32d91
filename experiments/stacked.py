"""Mode dropping measured directly: papers/002's Table 1 models on stacked Fashion-MNIST (1000 modes).

  python -m adejax.sweep --experiment=experiments/stacked.py --workdir=DIR --scale=small --jobs=2 \\
      --report=docs/results/stacked_small

Each image's R, G and B channels are three independent Fashion-MNIST images (`data.dataset =
"stacked_fashion_mnist_idx"`). The per-channel domain classifier labels each channel of 26,000 samples
and `adejax.evaluate` reports the modes covered out of 1000 and KL(mode histogram || uniform), beside
the same two numbers on 26,000 held-out real stacked images (the ceiling the classifier allows).
Members: GAN, VAE, V-ADE, AV-GDE, AV-ADE and papers/003's Glow-decoder VAE, three seeds each, plus the
PacGAN-style variant with a discriminator a quarter of the generator's width (`_smalld`) for the GAN
and AV-ADE, where GANs are known to collapse. Small scale: the ablation's quarter-width models, 250
steps of batch 64 (16,000 images, an eighth of an epoch of the 128,000 stacked training images). Budget,
measured on 2 CPU cores: the 24 runs with --jobs=2 took 99 minutes on a machine without the cached
domain classifier (about 9 of them training it once), about 90 after (docs/results/stacked_small.md,
"Budget, measured"). experiments/stacked_400steps.py is the former 400-step budget (about 120 minutes),
at which the small-discriminator GAN's collapse is significant over 3 seeds; at 250 it is not yet. Both
are quick looks: every model still makes blobs there. Medium scale (`--scale=medium`) is the comparison:
the same networks for MEDIUM_STEPS = 3000 steps (192,000 images, 1.5 epochs). The learning curves of
the GAN and AV-ADE (`--curve_every=1000`, docs/results/stacked_medium_curves.md) set no budget by the
flatness rule: the GAN's fid_domain was still 52% better over its last doubling (8000 to 16,000
steps), and AV-ADE's, flat by the rule from 2000 steps (under 10% per doubling to 3000), is on the
kind of plateau the GAN's curve sat on from 1000 to 3000 steps before it fell 30% by 6000. So the compute rule sets it: an AV-ADE
member takes about two hours of one core for 3000 steps, the most that one sitting of this project's
machines finishes (their workdirs do not outlive it, so a member must), and 3 seeds of the eight
models at 3000 steps are about 21 core-hours, most of the issue's 32. The GAN's curve to 16,000 steps
(the same wall time as AV-ADE's 3000) stays in the curves' report as the equal-compute comparison.
Members: also papers/004's AAE and VEEGAN (`HYBRIDS`, their Table 5 first grid point).

The published numbers (`paper_modes`, `paper_modes_kl`) are for stacked MNIST, not Fashion-MNIST:
DCGAN 99 modes (KL 3.4) in the VEEGAN paper and 78.9 +- 6.5 (KL 4.50) in PacGAN's reimplementation,
30.6 with a discriminator a quarter of the generator's size; VEEGAN 150 (KL 2.95); PacDCGAN 1000
(KL 0.06). No likelihood-adversarial hybrid had been measured this way.
"""
from adejax import experiment
from configs import cifar_glow_vae, cifar_hybrids
from experiments.ablation import CONFIGS  # papers/002 Table 1: mode -> its config file

SEEDS = (0, 1, 2)
HYBRIDS = ("aae", "veegan")  # papers/004's models built to prevent mode collapse
COMPARISONS = (("av-ade", "gan"), ("av-ade_smalld", "gan_smalld"), ("gan", "gan_smalld"),
               ("av-ade", "av-ade_smalld"), ("av-ade", "v-ade"), ("av-ade", "av-gde"), ("v-ade", "vae"),
               ("av-gde", "vae"), ("glow-vae", "vae"), ("av-ade", "aae"), ("av-ade", "veegan"))  # the report's Welch tests
PUBLISHED = {"gan": {"modes": 78.9, "modes_kl": 4.50},          # PacGAN's DCGAN (stacked MNIST)
             "gan_smalld": {"modes": 30.6},                     # PacGAN, D a quarter of G's size
             "veegan": {"modes": 150, "modes_kl": 2.95}}        # the VEEGAN paper (stacked MNIST)


SMALL_STEPS = 250  # small scale: the 24 runs in 99 minutes with --jobs=2 on 2 CPU cores (measured)
MEDIUM_STEPS = 3000  # medium scale: set from the learning curves and the compute (module docstring)


def stacked(config, scale: str, seed: int, small_steps: int = SMALL_STEPS):
  c = experiment.apply_scale(config, scale)
  c.seed = seed
  c.data.dataset = "stacked_fashion_mnist_idx"
  if scale in ("small", "medium"):
    if scale == "small":
      c.train.num_steps, c.train.image_every, c.eval.every = small_steps, small_steps // 2, small_steps
    else:
      c.train.num_steps = MEDIUM_STEPS
    # The independent Wasserstein critic is not a stacked metric; 1000 critic steps took 2.6 of the
    # small GAN's 4.8 minutes (63 of the sweep's minutes over 24 runs). Its seed-0 runs never had it.
    c.eval.critic_steps = 0
    if c.model.family == "glow_vae":  # the ELBO phase's share of the budget, then stage 2
      c.glow_vae.phase1_steps = round(0.75 * c.train.num_steps)
  elif scale == "full":  # the paper's architectures at the stacked data's native 28x28
    c.data.image_size, c.data.resize = 28, "pad"
    c.train.num_steps = 100_000
    if c.model.family == "glow_vae":
      c.glow_vae.scales, c.glow_vae.phase1_steps = 2, 80_000
  if scale == "tiny":
    c.data.stacked_examples = 64
  return c


def get_experiment(scale: str, small_steps: int = SMALL_STEPS):
  members = []
  for seed in SEEDS[: 1 if scale == "tiny" else None]:
    for mode, config_file in CONFIGS.items():
      c = stacked(config_file.get_config(), scale, seed, small_steps)
      members.append(experiment.Member(f"{mode}_s{seed}", c, PUBLISHED.get(mode, {}), group=mode))
      if mode in ("gan", "av-ade"):
        small = stacked(config_file.get_config(), scale, seed, small_steps)
        small.model.disc_width = small.model.width / 4
        members.append(experiment.Member(f"{mode}_smalld_s{seed}", small, PUBLISHED.get(f"{mode}_smalld", {}),
                                    group=f"{mode}_smalld"))
    glow = stacked(cifar_glow_vae.get_config(), scale, seed, small_steps)
    members.append(experiment.Member(f"glow-vae_s{seed}", glow, group="glow-vae"))
    for hybrid in HYBRIDS:  # papers/004's encoder-discriminator hybrids, its Table 5 first grid point
      c = stacked(cifar_hybrids.get_config(hybrid), scale, seed, small_steps)
      members.append(experiment.Member(f"{hybrid}_s{seed}", c, PUBLISHED.get(hybrid, {}), group=hybrid))
  return members
