"""The config schema shared by every runnable config, and its validation.

`base_config()` holds every field with a comment: the shared sections here, each model family's own
section from the family (`families.REGISTRY`, `Family.config_section`), and the first family's
settings beside the shared fields at their published key paths (`Family.shared_settings`: AV-ADE's `mode`,
`model.arch`, `loss.free_bits`, ...). Configs in configs/ start from it
and override a few fields, so a misspelled key is always an error (the ConfigDict is locked).
`validate(config)` raises ConfigError with one line naming the key for any invalid value or impossible
combination: the shared sections here, the rest by the config's family (`Family.validate`).
"""
from __future__ import annotations

import json
import os
import sys

import ml_collections

from adejax import families, input_pipeline
from adejax.families.base import ConfigError, check  # noqa: F401  (ConfigError: every door's user error)
from adejax.models import layers

GP_FORMS = ("two-sided", "one-sided", "r1")
OPTIMIZERS = ("adamax", "adam")


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                       # root of every random number in the run

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "fashion_mnist_idx"  # "fashion_mnist_idx"/"mnist_idx" (IDX files), their 1000-mode
                                   # stacked versions "stacked_fashion_mnist_idx"/"stacked_mnist_idx"
                                   # (28x28x3, input_pipeline.StackedImages), or a TFDS name
  c.data.stacked_examples = 0      # stacked datasets: images per split; 0 = 128,000 train / 26,000 test
  c.data.stacked_seed = 0          # stacked datasets: which images are stacked (fixed: one benchmark)
  c.data.idx_dir = ""              # folder with the four IDX files; "" = $ADEJAX_IDX_DIR or Debian's path
  c.data.tfds_data_dir = ""        # TFDS data_dir holding prepared datasets; "" = TFDS default
  c.data.image_size = 28           # model resolution; Fashion-MNIST's native 28 by default
  c.data.resize = "pad"            # to reach image_size: "pad" (centre zero-pad, e.g. 28 -> 32; the
                                   # padded pixels are constant, nearly free to model, and bits/dim then
                                   # averages over them too: a padded number is NOT the dataset's
                                   # bits/dim) or "resize" (area/bilinear)
  c.data.stream = False            # stream the training split from TFDS with tf.data instead of loading
                                   # it into memory (ImageNet-64, LSUN, CelebA); resumable
  c.data.shuffle_buffer = 10_000   # examples in the streaming shuffle buffer
  c.data.train_split = "train"
  c.data.eval_split = "test"       # held-out numbers always use the test split

  c.model = ml_collections.ConfigDict()
  c.model.family = families.DEFAULT  # one of families.REGISTRY: "ade" (papers/002, `mode` picks the Table-1 row),
                                   # "glow_vae" (papers/003: VAE + Glow layer, config.glow_vae),
                                   # "glow" (the standalone multi-scale Glow, config.glow),
                                   # "hybrid" (papers/004's VAE-GAN hybrids, config.hybrid),
                                   # "flow_gan" (Flow-GAN on config.glow's Glow, config.flow_gan)
  c.model.preprocess = "logit"     # "logit": Real-NVP logit(a + (1-2a) y); "centre": 2y - 1
  c.model.logit_alpha = 0.05
  c.model.width = 1.0              # channel multiplier; wg = 2.0
  c.model.log_sigma_init = -1.0    # initial log of the decoder's isotropic sigma (feature space)
  c.model.disc_arch = "conv"       # "conv" (SNGAN-style) or "resnet" (rd)
  c.model.disc_width = 1.0
  c.model.num_classes = 0          # > 0: class-conditional (appendix E.1): conditional weight norm in
                                   # the VAE, projection discriminator, labels from the dataset

  for family in families.family_classes():  # each family's own section (glow_vae, glow, hybrid, flow_gan)
    section = family.config_section()
    if section is not None:
      c[section[0]] = section[1]

  c.loss = ml_collections.ConfigDict()
  c.loss.adv_weight = 100.0        # lambda_adv on L_Q, relative to L_C in nats per image (app. C)
  c.loss.gp_weight = 100.0         # gradient penalty coefficient (app. B.3, C)
  c.loss.gp_form = "two-sided"     # "two-sided": (||grad D(x^)|| - 1)^2 on interpolates (paper, WGAN-GP);
                                   # "one-sided": max(0, ||grad D(x^)|| - 1)^2 on interpolates;
                                   # "r1": ||grad D(x)||^2 on real images (zero-centred, Mescheder 2018;
                                   # its usual gamma is 2 * gp_weight)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamax"          # "adamax" (papers/002 appendix C) or "adam"
  c.optim.lr = 2e-3                # generator (VAE, f_psi, sigma): Adamax, appendix C
  c.optim.lr_halve_every = 0       # halve every group's learning rate every N steps; 0 = constant
  c.optim.warmup_steps = 0         # linear learning-rate warm-up from 0 over N updates (Glow's); 0 = none;
                                   # lr_halve_every then counts from the warm-up's end
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  # Discriminator: None = the generator's value, so changing optim.lr moves both unless these are set.
  c.optim.disc_lr = ml_collections.FieldReference(None, field_type=float)
  c.optim.disc_b1 = ml_collections.FieldReference(None, field_type=float)
  c.optim.disc_b2 = ml_collections.FieldReference(None, field_type=float)
  c.optim.grad_clip = 0.0          # global-norm clip of each update; 0 = off

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64          # global batch (64 for CIFAR-10, 32 at higher resolution)
  c.train.num_steps = 100_000
  c.train.disc_steps = 1           # discriminator updates per generator update (Algorithm 1)
  c.train.ema_decay = 0.0          # EMA of generator parameters; 0 = off. The initial parameters keep a
                                   # weight of decay^steps: keep 1 / (1 - decay) well under num_steps
                                   # (2000-step Glow: 0.995 gives 4.25 bpd, 0.999 gives 7.5)
  c.train.init_checkpoint = ""     # start from the generator of another run's latest checkpoint
                                   # (a workdir; relative paths are relative to this run's workdir)
  c.train.freeze = ""              # "decoder": train only the inference network and sigma
                                   # (papers/002 section 5, BPD for a GAN)
  c.train.max_consecutive_skips = 100  # stop (RunawayError) when this many consecutive steps skipped a
                                   # non-finite update; checked at logging and checkpoint steps; 0 = never
  c.train.log_every = 100
  c.train.grad_norms = True        # at logging steps, the gradient norms of each loss term (extra backward
                                   # passes and one more compilation; `Family.gradient_norms`)
  c.train.image_every = 1000       # sample and reconstruction grids (PNG + TensorBoard)
  c.train.compute_dtype = "float32"  # "bfloat16": the models' convolutions and matmuls in bf16 (for
                                   # accelerators; slower on XLA CPU), with float32 parameters, optimiser
                                   # states, activations between layers, log-dets, KLs and losses
                                   # (`layers.compute_dtype`); training, evaluation and sampling alike
  c.train.remat = False            # family "ade": rematerialise the top-down VAE and f_psi's coupling
                                   # networks (recomputed in the backward pass: less memory, ~1 more
                                   # forward pass of them), e.g. to fit 128x128 batches

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 5000              # held-out bits/dim during training; 0 = only at the end
  c.eval.batch_size = 256
  c.eval.num_examples = 0          # 0 = the whole eval split
  c.eval.iwae_samples = 0          # K for the IWAE bound in `--mode=eval`; 0 = ELBO only
  c.eval.num_latent_examples = 1000  # models with an encoder: held-out images for the latent-use
                                   # metrics at every evaluation (reconstruction PSNR, KL per level,
                                   # active units; `adejax.evaluate` adds the domain classifier's
                                   # accuracy on the reconstructions); 0 = skip
  c.eval.num_samples = 64          # images per sample grid
  c.eval.num_fid_samples = 10_000  # samples (and test images) for FID / IS / PRD in `--mode=eval`
  c.eval.num_mode_samples = 26_000  # stacked datasets: samples whose modes are counted (protocol:
                                   # 26,000), and as many held-out real images for the ceiling; 0 = skip
  c.eval.bn_refresh_examples = 2048  # training images on which evaluation and sampling re-estimate
                                   # batch-norm statistics at the current parameters
  c.eval.inception_path = ""       # pt_inception-2015-12-05-6726825d.pth (or .npz); "" = $ADEJAX_FID_INCEPTION
  c.eval.feature_cache_dir = ""    # domain classifier + reference statistics; "" = ~/.cache/adejax
  c.eval.classifier_steps = 1500   # training steps of the offline domain classifier
  c.eval.critic_steps = 1000       # independent Wasserstein critic (papers/004) on the num_fid_samples
                                   # samples vs as many test images; 0 = skip
  # `adejax.estimate_kl` (papers/004 section 4, appendix A): the marginal KL[q(z) || p(z)] estimators.
  # Defaults are the paper's settings where it gives them (its scale: a GPU); `--scale=small` and
  # `make_tiny` shrink them (experiment.apply_scale).
  c.eval.marginal_kl = ml_collections.ConfigDict()
  m = c.eval.marginal_kl
  m.num_posteriors = 0             # N: training images whose posteriors form q(z); 0 = the whole
                                   # training split (appendix A.2)
  m.num_samples = 10_000           # z_i ~ q(z) on which every estimator is evaluated (num_z)
  m.monte_carlo_samples = 0        # Algorithm 1's z_i (each costs N posterior densities); 0 = all
                                   # num_samples; a smaller cap is logged when it applies
  m.classifier_layers = 3          # Algorithm 2's density-ratio MLP: hidden layers (appendix A.3,
  m.classifier_hidden = 5000       # Tables 2-3: 3-10 layers of 5000 units, leaky ReLU 0.2),
  m.classifier_lr = 5e-4           # Adam (0.9, 0.9) at 5e-4,
  m.classifier_steps = 500_000     # for "5 * 10^5" steps (the text's extraction reads "5 * 10 * 5")
  m.batch_size = 256               # samples per step of the trained estimators (not given)
  m.gmm_components = 10            # density model 1: diagonal Gaussian mixture (appendix A.4: 10-100)
  m.maf_flows = 2                  # density model 2: MAF (Papamakarios et al. 2017; appendix A.4: 1-3
  m.maf_hidden = 1024              # flows of 1-2 hidden layers of 512-2048 units, Adam 1e-4 to 1e-3;
  m.maf_layers = 2                 # more flows "often" diverged); 0 flows = skip
  m.maf_lr = 5e-4
  m.maf_steps = 20_000             # (not given)

  c.ckpt = ml_collections.ConfigDict()
  c.ckpt.every = 1000              # save every N steps (and at the end, and on SIGTERM)
  c.ckpt.keep = 3                  # checkpoints kept
  for family in families.family_classes():  # settings beside the shared ones (the first family's `mode`, ...)
    family.shared_settings(c)
  c.lock()  # a misspelled key in a config file or an override is an error, not a new field
  return c


def make_tiny(c: ml_collections.ConfigDict, num_steps: int) -> ml_collections.ConfigDict:
  """Shrink any config to test size (seconds per step on a CPU), keeping its mode and structure."""
  c.model.width = c.model.disc_width = 0.0625
  c.train.batch_size, c.train.num_steps = 8, num_steps
  c.train.log_every = c.ckpt.every = max(1, num_steps // 2)
  c.train.image_every = c.eval.every = num_steps
  c.eval.batch_size, c.eval.num_examples, c.eval.num_samples = 8, 16, 4
  c.eval.num_fid_samples, c.eval.classifier_steps, c.eval.bn_refresh_examples = 16, 5, 16
  c.eval.num_latent_examples = 16
  c.eval.num_mode_samples, c.eval.critic_steps = 64, 0  # (the critic's compile alone costs ~30 s)
  m = c.eval.marginal_kl
  m.num_posteriors, m.num_samples, m.monte_carlo_samples = 40, 200, 100
  m.classifier_layers, m.classifier_hidden, m.classifier_steps, m.batch_size = 2, 16, 20, 32
  m.gmm_components, m.maf_hidden, m.maf_steps, m.maf_layers = 3, 16, 20, 1
  c.train.grad_norms = False  # one compilation fewer (~3 s of a tiny AV-ADE run's ~40)
  for family in families.family_classes():  # every family's section, so a switched family stays tiny
    family.shrink_tiny(c, num_steps)
  return c


def parse_variant(variant: str, config_file: str, names, exclusive=()) -> set[str]:
  """The names of a config file's variant, `configs/cifar_avade.py:wg,rd` -> {"wg", "rd"}.

  `names` are the file's valid names ("tiny" is always valid); `exclusive` lists groups of names of
  which at most one may be given (e.g. LSUN categories). An unknown name or two of one group is a
  ConfigError listing the valid names.
  """
  names = list(names) + ["tiny"]
  given = [n.strip() for n in variant.split(",") if n.strip()]
  unknown = [n for n in given if n not in names]
  if unknown:
    raise ConfigError(f"{config_file}: unknown variant {','.join(unknown)!r}; valid names, comma-separated: "
                      f"{', '.join(names)}")
  for group in exclusive:
    clash = [n for n in given if n in group]
    if len(clash) > 1:
      raise ConfigError(f"{config_file}: variants {clash} exclude each other; give one of {list(group)}")
  return set(given)


def validate(c: ml_collections.ConfigDict) -> None:
  family = families.family_class(c)  # (an unknown family is a ConfigError naming the valid ones)
  m, d, t = c.model, c.data, c.train
  check(m.preprocess in ("logit", "centre"), "model.preprocess", "must be 'logit' or 'centre'")
  check(0.0 < m.logit_alpha < 0.5, "model.logit_alpha", "must be in (0, 0.5)")
  check(m.num_classes >= 0, "model.num_classes", "must be >= 0 (0 = unconditional)")
  check(m.width > 0 and m.disc_width > 0, "model.width", "channel multipliers must be positive")
  check(d.resize in ("pad", "resize"), "data.resize", "must be 'pad' or 'resize'")
  check(d.image_size >= 8, "data.image_size", "must be at least 8")
  check(d.stacked_examples >= 0, "data.stacked_examples", "must be >= 0 (0 = the protocol's sizes)")
  check(not d.stream or d.dataset not in input_pipeline.LOCAL_DATASETS, "data.stream",
        "IDX datasets are always held in memory; streaming is for TFDS datasets")
  check(d.shuffle_buffer >= 1, "data.shuffle_buffer", "must be positive")
  check(t.batch_size >= 1, "train.batch_size", "must be positive")
  check(t.num_steps >= 1, "train.num_steps", "must be positive")
  check(t.disc_steps >= 1, "train.disc_steps", "must be at least 1")
  check(0.0 <= t.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1)")
  check(t.max_consecutive_skips >= 0, "train.max_consecutive_skips", "must be >= 0 (0 = never stop)")
  check(t.log_every >= 1 and t.image_every >= 1, "train.log_every", "logging intervals must be >= 1")
  check(c.eval.every >= 0, "eval.every", "must be >= 0 (0 = only at the end)")
  check(t.freeze in ("", "decoder"), "train.freeze", "must be '' or 'decoder'")
  check(t.compute_dtype in layers.COMPUTE_DTYPES, "train.compute_dtype",
        f"must be one of {list(layers.COMPUTE_DTYPES)}")
  for option, key, what in (("remat", "train.remat", "rematerialisation"),
                            ("freeze", "train.freeze", "a frozen decoder")):
    check(not t[option] or option in family.supports, key,
          f"{what} is not built for family {m.family!r} (families with it: "
          f"{[n for n, f in zip(families.REGISTRY, families.family_classes()) if option in f.supports]})")
  check(c.ckpt.every >= 1 and c.ckpt.keep >= 1, "ckpt.every", "save interval and keep must be >= 1")
  check(c.eval.iwae_samples >= 0, "eval.iwae_samples", "must be >= 0")
  check(c.eval.num_latent_examples >= 0, "eval.num_latent_examples", "must be >= 0 (0 = skip)")
  check(c.eval.bn_refresh_examples >= 1, "eval.bn_refresh_examples", "must be positive")
  check(c.eval.num_mode_samples >= 0, "eval.num_mode_samples", "must be >= 0 (0 = skip mode counting)")
  check(c.eval.num_fid_samples >= 0, "eval.num_fid_samples", "must be >= 0 (0 = skip FID/IS/PRD)")
  check(c.eval.critic_steps >= 0, "eval.critic_steps", "must be >= 0 (0 = skip the independent critic)")
  kl = c.eval.marginal_kl
  for key in ("num_posteriors", "monte_carlo_samples", "maf_flows"):
    check(kl[key] >= 0, f"eval.marginal_kl.{key}", "must be >= 0 (0: see its comment in config_lib)")
  for key in ("num_samples", "classifier_layers", "classifier_hidden", "classifier_steps",
              "batch_size", "gmm_components", "maf_hidden", "maf_layers", "maf_steps"):
    check(kl[key] >= 1, f"eval.marginal_kl.{key}", "must be at least 1")
  for key in ("classifier_lr", "maf_lr"):
    check(kl[key] > 0, f"eval.marginal_kl.{key}", "must be > 0")
  o = c.optim
  check(o.lr > 0, "optim.lr", "must be positive")
  check(o.name in OPTIMIZERS, "optim.name", f"{o.name!r} is not one of {list(OPTIMIZERS)}")
  check(o.lr_halve_every >= 0, "optim.lr_halve_every", "must be >= 0 (0 = constant)")
  check(o.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0 (0 = no warm-up)")
  check(o.disc_lr is None or o.disc_lr > 0, "optim.disc_lr", "must be positive (or None: optim.lr)")
  for key in ("b1", "b2", "disc_b1", "disc_b2"):
    check(o[key] is None or 0.0 <= o[key] < 1.0, f"optim.{key}", "must be in [0, 1)")
  check(c.loss.gp_form in GP_FORMS, "loss.gp_form", f"{c.loss.gp_form!r} is not one of {list(GP_FORMS)}")
  check(c.loss.gp_weight >= 0, "loss.gp_weight", "must be >= 0")
  family.validate(c)


def check_devices(c: ml_collections.ConfigDict, num_devices: int) -> None:
  for key, size in (("train.batch_size", c.train.batch_size), ("eval.batch_size", c.eval.batch_size)):
    check(size % num_devices == 0, key,
           f"{size} is not divisible by the {num_devices} devices; use a multiple of {num_devices}")


def make_configs_importable(path: str) -> None:
  """Put the project root above the `configs/` folder that holds `path` (a config or experiment file)
  on sys.path, so that its `from configs... import` lines work whatever the working directory."""
  here = os.path.dirname(os.path.abspath(path))
  while here != os.path.dirname(here):
    if os.path.basename(here) == "configs" or os.path.isdir(os.path.join(here, "configs")):
      root = os.path.dirname(here) if os.path.basename(here) == "configs" else here
      if root not in sys.path:
        sys.path.insert(0, root)
      return
    here = os.path.dirname(here)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run saved in its workdir (config.json), as a locked ConfigDict."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ConfigError(f"{path} not found: is {workdir!r} the workdir of a training run?")
  config = base_config()
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path} cannot be read ({e}); restore it from a copy, or pass the config with "
                      "--config (python -m adejax.main --mode=eval --config=...).") from None
  if not isinstance(saved, dict):
    raise ConfigError(f"{path} is not an adejax config (a JSON object of config sections).")

  def update(node, values, prefix=""):
    for key, value in values.items():
      if key not in node:
        raise ConfigError(f"{path}: unknown key {prefix}{key} (written by another adejax version?)")
      if isinstance(value, dict):
        if not isinstance(node[key], ml_collections.ConfigDict):
          raise ConfigError(f"{path}: {prefix}{key} is a section there but a value here (another adejax "
                            "version?)")
        update(node[key], value, f"{prefix}{key}.")
      else:
        try:
          node[key] = value
        except (TypeError, ValueError, KeyError) as e:
          raise ConfigError(f"{path}: {prefix}{key} = {value!r} does not fit this adejax version "
                            f"({e})") from None

  update(config, saved)
  return config


def _flatten(node, prefix: str = "") -> dict:
  out = {}
  for key, value in node.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def differences(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list[str]:
  """["optim.grad_clip: 0.0 -> 1.0", ...]: the fields whose values differ between two configs."""
  a, b = _flatten(old), _flatten(new)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
