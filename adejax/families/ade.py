"""The AV-ADE family (papers/002): every Table-1 mode (GAN, VAE, V-ADE, AV-GDE, AV-ADE) and its refinements.

Modules: `models.ade.ADEModel` (preprocessing -> optional f_psi -> VAE; the GAN's latent-vector
generator) and an image discriminator. Parameter groups: "generator" (the whole model: VAE, f_psi and
sigma; with train.freeze="decoder" only the inference network and sigma move) and "disc". Schedule:
Algorithm 1 of papers/002 appendix H, `train_step` below.

Its settings (`ADEFamily.shared_settings`) keep the key paths of the first family's published configs:
`mode` and fields of the `model` and `loss` sections beside the shared ones (`model.width`, `loss.gp_weight`,
...), defined, validated, shrunk and read here.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from adejax import losses
from adejax.families import base
from adejax.families.base import check
from adejax.models import ade, discriminators, vae

MODES = {
    # name: (f_psi, adversarial, maximum likelihood) -- papers/002 Table 1
    "gan": (False, True, False),
    "vae": (False, False, True),
    "v-ade": (True, False, True),
    "av-gde": (False, True, True),
    "av-ade": (True, True, True),
}


def generator_kind(c: ml_collections.ConfigDict) -> str:
  """The generator a config builds: model.generator, or by default the paper's for its mode."""
  return c.model.generator or ("vector" if c.mode == "gan" else "hierarchical")


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static part of Algorithm 1, read once from the ConfigDict."""
  mle: bool
  adversarial: bool
  adv_weight: float
  adv_start_step: int
  kl_warmup_steps: int
  free_bits: float
  flow_start_step: int
  gp_weight: float
  gp_form: str
  disc_steps: int
  sample_noise: bool

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict) -> "StepConfig":
    _, adversarial, mle = MODES[c.mode]
    return cls(mle, adversarial, float(c.loss.adv_weight), int(c.loss.adv_start_step),
               int(c.loss.kl_warmup_steps),
               float(c.loss.free_bits) if generator_kind(c) == "hierarchical" else 0.0,
               int(c.loss.flow_start_step), float(c.loss.gp_weight), str(c.loss.gp_form),
               int(c.train.disc_steps), bool(c.model.sample_noise))


def build_models(c: ml_collections.ConfigDict, image_shape):
  """(ADEModel, Discriminator) of a config."""
  m = c.model
  model = ade.ADEModel(
      tuple(image_shape), preprocess=m.preprocess, logit_alpha=m.logit_alpha,
      use_flow=MODES[c.mode][0], flow_scales=m.flow_scales,
      flow_couplings=m.flow_couplings, flow_blocks=m.flow_blocks, flow_width=m.flow_width, arch=m.arch,
      width=m.width, latent_channels=m.latent_channels, latent_levels=m.latent_levels, iaf=m.iaf,
      log_sigma_init=m.log_sigma_init, num_classes=m.num_classes,
      generator=generator_kind(c), latent_dim=m.latent_dim,
      frozen_decoder=c.train.freeze == "decoder", remat=bool(c.train.remat),
      global_latent=int(m.global_latent_dim))
  return model, discriminators.Discriminator(m.disc_arch, m.disc_width, m.num_classes)


def trainable_labels(params, freeze: str):
  """'train' / 'frozen' per generator parameter. freeze='decoder' leaves only the inference network
  and sigma trainable (BPD for a GAN: a fixed generator with a learned encoder and noise level)."""
  def label(path, _):
    keys = tuple(getattr(k, "key", str(k)) for k in path)
    if not freeze or keys[-1] == "log_sigma" or (keys[0] == "vae" and vae.is_inference_parameter(keys[1:])):
      return "train"
    return "frozen"
  return jax.tree_util.tree_map_with_path(label, params)


def generator_optimizer(o, freeze: str) -> optax.GradientTransformation:
  tx = base.make_optimizer(o)
  if not freeze:
    return tx
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               lambda params: trainable_labels(params, freeze))


class ADEFamily(base.Family):

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    self.image_shape = tuple(image_shape)
    self.num_classes = int(config.model.num_classes)
    self.model, self.disc = build_models(config, self.image_shape)
    self.cfg = StepConfig.from_config(config)
    self.label = f"ade/{config.mode}"
    self.has_encoder = self.cfg.mle  # the GAN's encoder is untrained (only BPD-for-a-GAN trains one)
    o = config.optim
    self.groups = {
        "generator": base.Group("params", generator_optimizer(o, config.train.freeze)),
        "disc": base.Group("disc_params", base.make_optimizer(o, *base.discriminator_optim(o))),
    }

  modes = tuple(MODES)
  supports = frozenset({"remat", "freeze"})

  @staticmethod
  def shared_settings(c) -> None:
    """AV-ADE's settings: the project's first family keeps them at the key paths of its published
    configs and command lines (`mode`, `model.*`, `loss.*`; e.g. `--config.mode=vae`), defined and
    documented here (`config_lib.base_config` calls this); validated, shrunk and read here alone."""
    c.mode = "av-ade"                # one of MODES: gan | vae | v-ade | av-gde | av-ade (Table 1's rows)
    c.model.arch = "sngan"           # VAE / generator: "sngan" (Table 1) or "resnet" (Table 6)
    c.model.latent_channels = 32     # per stochastic layer (appendix C)
    c.model.latent_levels = 0        # stochastic levels from the lowest resolution up; 0 = all
    c.model.global_latent_dim = 128  # hierarchical VAE: a latent vector z_g ~ N(0, I) above the spatial
                                     # levels, entering the top-down pass through a dense layer (SNGAN's
                                     # input z; section 5.1, footnote 2: "some intermediate feature maps are
                                     # treated as conditional latent variables" below it). Without it the top
                                     # spatial level's factorised N(0, I) prior has no spatial correlation
                                     # and samples are patchworks (docs/results/latent_use.md). 0 = none
    c.model.generator = ""           # "hierarchical" (top-down VAE, appendix B.1) or "vector" (SNGAN
                                     # generator from one latent vector, section 5.1); "" = "vector" for
                                     # mode gan (footnote 2), else "hierarchical"
    c.model.latent_dim = 128         # size of the "vector" generator's latent
    c.model.iaf = False              # one IAF step on each posterior (appendix B.2)
    c.model.sample_noise = False     # add sigma * eps to mu(z) when sampling (eq. 5 uses the mean)
    c.model.flow_scales = 1          # f_psi: scales (s2 = 2)
    c.model.flow_couplings = 3       # couplings per scale
    c.model.flow_blocks = 2          # residual blocks per coupling network
    c.model.flow_width = 32          # channels of the coupling networks
    c.loss.adv_start_step = 0        # train by likelihood only before this step (Table 9 schedule)
    c.loss.kl_warmup_steps = 0       # KL weight rises linearly 0 -> 1 over these steps; 0 = paper (off)
    c.loss.flow_start_step = 0       # f_psi (modes with one) is not updated before this step: the VAE
                                     # learns its latents first in the preprocessed image space, before
                                     # f_psi can take over their work (docs/results/latent_use.md);
                                     # 0 = from the start (the paper)
    c.loss.free_bits = 4.0           # hierarchical VAE: floor (nats) on each latent channel's batch-mean
                                     # KL in the objective (free bits, Kingma et al. 2016, whose IAF code
                                     # papers/002 builds on; theirs 0.1-0.25 per channel of many more
                                     # levels). 4 is about what the VAE without f_psi uses per channel on
                                     # Fashion-MNIST; 0 = off. The reported bound keeps the true KL.
                                     # Only the hierarchical VAE has per-channel KLs: the latent-vector
                                     # generator (BPD for a GAN) trains on the plain ELBO

  @staticmethod
  def validate(c) -> None:
    m, d, t = c.model, c.data, c.train
    check(c.mode in MODES, "mode", f"{c.mode!r} is not one of {sorted(MODES)}")
    check(m.arch in vae.ARCHITECTURES, "model.arch", f"{m.arch!r} is not one of {sorted(vae.ARCHITECTURES)}")
    check(m.disc_arch in discriminators.DISCRIMINATORS, "model.disc_arch",
          f"{m.disc_arch!r} is not one of {list(discriminators.DISCRIMINATORS)}")
    try:
      sizes, _ = vae.architecture(m.arch, (d.image_size, d.image_size, 1))
    except ValueError as e:
      raise base.ConfigError(f"config.data.image_size: {e}") from None
    check(m.generator in ("", "hierarchical", "vector"), "model.generator",
          "must be '' (the mode's default), 'hierarchical' or 'vector'")
    check(m.latent_dim >= 1, "model.latent_dim", "must be positive")
    check(m.global_latent_dim >= 0, "model.global_latent_dim", "must be >= 0 (0 = no global latent)")
    check(0 <= m.latent_levels <= len(sizes), "model.latent_levels",
          f"must be in 0..{len(sizes)} for {d.image_size}px images")
    check(1 <= m.flow_scales <= 6, "model.flow_scales", "must be in 1..6")
    factor = 2 ** (m.flow_scales - 1)
    check(not MODES[c.mode][0] or d.image_size % factor == 0, "model.flow_scales",
          f"{m.flow_scales} scales need an image size divisible by {factor}, got {d.image_size}")
    check(m.flow_couplings >= 1 and m.flow_blocks >= 0 and m.flow_width >= 1, "model.flow_couplings",
          "flow couplings, blocks and width must be positive")
    check(not t.remat or generator_kind(c) == "hierarchical", "train.remat",
          "rematerialisation covers the top-down VAE and f_psi; the GAN's latent-vector generator has none")
    check(not t.freeze or MODES[c.mode] == (False, False, True) or c.mode == "v-ade", "train.freeze",
          "a frozen decoder is trained by likelihood only: use mode 'vae' (or 'v-ade')")
    check(not t.freeze or t.init_checkpoint, "train.freeze",
          "a frozen decoder must come from another run: set train.init_checkpoint to that run's workdir")
    check(c.loss.kl_warmup_steps >= 0, "loss.kl_warmup_steps", "must be >= 0 (0 = no warm-up)")
    check(c.loss.free_bits >= 0, "loss.free_bits", "must be >= 0 (0 = no free bits)")
    check(c.loss.flow_start_step >= 0, "loss.flow_start_step", "must be >= 0 (0 = from the start)")

  @staticmethod
  def shrink_tiny(c, num_steps: int) -> None:
    c.model.latent_channels, c.model.flow_width, c.model.global_latent_dim = 4, 4, 8
    # Two couplings (both checkerboard parities, every element transformed once) instead of 3: each
    # coupling costs ~2.5 s of a tiny AV-ADE step's ~18 s compilation (couplings are tested in test_flows)
    c.model.flow_couplings = min(c.model.flow_couplings, 2)
    c.loss.flow_start_step = 0  # a step count of the full schedule; tiny runs train f_psi from the start

  @staticmethod
  def shrink_small(c, full_steps: int) -> None:
    if MODES[c.mode][0] and c.data.image_size % 2 ** (c.model.flow_scales - 1):
      c.data.image_size = 32  # f_psi's scales need it (Table 9's 4 scales); padded pixels count in bits/dim
    base.Family.shrink_small(c, full_steps)
    c.model.flow_width = 16
    if c.loss.adv_start_step:
      c.loss.adv_start_step = c.train.num_steps // 2
    if MODES[c.mode][0]:  # f_psi joins after a VAE phase (configs/default.py's schedule)
      c.loss.flow_start_step = c.train.num_steps // 2

  @staticmethod
  def has_latent_posterior(config) -> bool:
    return True

  @staticmethod
  def has_likelihood(config) -> bool:
    """Not the GAN: its ELBO comes from an untrained encoder (BPD-for-a-GAN trains one in its own run)."""
    return config.mode != "gan"

  @staticmethod
  def results_mode(config) -> str:
    return str(config.mode)

  def init(self, rng):
    k_model, k_disc, k_z = jax.random.split(rng, 3)
    y = jnp.full((2,) + self.image_shape, 0.5, jnp.float32)
    labels = jnp.arange(2, dtype=jnp.int32) % self.num_classes if self.num_classes else None
    variables = self.model.init(k_model, y, k_z, labels=labels)
    disc_params = discriminators.init_params(self.disc, k_disc, self.image_shape, labels)
    return variables["params"], variables.get("batch_stats", {}), disc_params

  def train_step(self, state, images, labels, rng, constrain, phase=0):
    """Algorithm 1 (papers/002 appendix H): discriminator update(s), then the generator update.

    `labels` (B,) condition a class-conditional model (appendix E.1): the real batch's likelihood is
    p(x | label) and the generated images of the step are drawn with the real batch's labels. None for
    unconditional models."""
    cfg, model, disc = self.cfg, self.model, self.disc
    deq_rng, disc_rng, gen_rng = jax.random.split(rng, 3)
    y = losses.dequantize(images, deq_rng)
    metrics = {}
    if cfg.adversarial:
      variables = {"params": state.params, "batch_stats": state.batch_stats}
      for i in range(cfg.disc_steps):
        prior_rng, gp_rng = jax.random.split(jax.random.fold_in(disc_rng, i))
        fake, _ = model.apply(variables, prior_rng, y.shape[0], noise=cfg.sample_noise, labels=labels,
                              train=True, method="generate", mutable=["batch_stats"])
        fake = constrain(fake)
        (d_loss, d_metrics), d_grads = jax.value_and_grad(losses.discriminator_objective, has_aux=True)(
            state.disc_params, discriminators.discriminator_input(y),
            discriminators.discriminator_input(jax.lax.stop_gradient(fake)), gp_rng, disc=disc,
            gp_weight=cfg.gp_weight, gp_form=cfg.gp_form, labels=labels)
        state, _ = base.update_group(state, self.groups, "disc", d_grads, d_loss)
      metrics.update(d_metrics)

    adv_weight = jnp.where(state.step >= cfg.adv_start_step, cfg.adv_weight, 0.0)
    kl_weight = (jnp.minimum(1.0, state.step / cfg.kl_warmup_steps).astype(jnp.float32)
                 if cfg.kl_warmup_steps else 1.0)
    (g_loss, (g_metrics, new_stats)), grads = jax.value_and_grad(losses.generator_loss, has_aux=True)(
        state.params, state.batch_stats, state.disc_params, y, gen_rng, model=model, disc=disc,
        mle=cfg.mle, adversarial=cfg.adversarial, adv_weight=adv_weight, kl_weight=kl_weight,
        free_bits=cfg.free_bits, sample_noise=cfg.sample_noise, constrain=constrain, labels=labels)
    if cfg.flow_start_step and "flow" in grads:  # f_psi stays where it is (the identity) until then
      frozen = state.step < cfg.flow_start_step
      grads = {**grads, "flow": jax.tree.map(lambda g: jnp.where(frozen, 0.0, g), grads["flow"])}
    state, ok = base.update_group(state, self.groups, "generator", grads, g_loss)
    state = state.replace(batch_stats=jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_stats,
                                                   state.batch_stats))
    return state, {**metrics, **g_metrics}

  def gradient_norms(self, state, images, labels, rng, constrain) -> dict:
    """Global norms of the gradients of L_C and of lambda_adv * L_Q with respect to the decoder's
    parameters (the generator without its inference network and sigma), side by side: whether the
    adversarial term matters next to the likelihood. Extra backward passes, so only at logging steps."""
    cfg = self.cfg
    y = losses.dequantize(images, rng)

    def norm(mle: bool, adversarial: bool):
      loss = lambda p: losses.generator_loss(
          p, state.batch_stats, state.disc_params, y, rng, model=self.model, disc=self.disc, mle=mle,
          adversarial=adversarial, adv_weight=cfg.adv_weight, sample_noise=cfg.sample_noise,
          constrain=constrain, labels=labels)[0]
      grads = jax.grad(loss)(state.params)["vae"]
      decoder = [g for path, g in jax.tree_util.tree_leaves_with_path(grads)
                 if not vae.is_inference_parameter(tuple(getattr(k, "key", str(k)) for k in path))
                 and getattr(path[-1], "key", "") != "log_sigma"]
      return optax.tree.norm(decoder)

    out = {}
    if cfg.mle:
      out["grad_norm_coverage"] = norm(True, False)
    if cfg.adversarial:
      out["grad_norm_adversarial"] = norm(False, True)
    return out

  def step_parts(self, state, images, labels, rng) -> dict:
    """Disjoint parts of Algorithm 1's step, each as its backward pass (as in training): together
    about a step; the sampling pass and f_psi's inverse run once per discriminator update and once
    for the generator."""
    model, disc, cfg = self.model, self.disc, self.cfg
    y = losses.dequantize(images, rng)
    b = images.shape[0]
    params, stats, dparams = state.params, state.batch_stats, state.disc_params
    variables = lambda p: {"params": p, "batch_stats": stats}
    grad_sum = lambda f: jax.grad(lambda p, *a: jnp.sum(f(p, *a)))  # backward of a scalar of the output
    feats = jax.jit(lambda p: model.apply(variables(p), y, False, method="to_features")[0])(params)
    vae_pass = lambda m, f: losses.coverage_loss({**m.vae(f, rng, labels, train=True), "features": f,
                                                  "logdet": 0.0})[0]
    parts = {  # disjoint parts: together about the generator's share of a step
        "preprocess + f_psi forward": lambda p: model.apply(variables(p), y, True, method="to_features",
                                                            mutable=["batch_stats"])[0][0],
        "VAE likelihood pass (features -> ELBO)": lambda p: model.apply(
            variables(p), feats, method=vae_pass, mutable=["batch_stats"])[0],
        "VAE sampling pass (prior -> features)": lambda p: model.apply(
            variables(p), method=lambda m: m.vae.generate(rng, b, 1.0, labels, train=True),
            mutable=["batch_stats"])[0],
    }
    if model.use_flow:
      parts["f_psi inverse"] = lambda p: model.apply(variables(p), feats, method="from_features")
    out = {name: (grad_sum(lambda p, f=f: f(p)), (params,)) for name, f in parts.items()}
    if cfg.adversarial:
      real = discriminators.discriminator_input(y)
      fake = discriminators.discriminator_input(jnp.clip(y[::-1], 0, 1))
      logits = lambda d, x: disc.apply({"params": d}, x, labels)
      out["discriminator on real + fake"] = (
          jax.grad(lambda d: jnp.sum(logits(d, real)) + jnp.sum(logits(d, fake))), (dparams,))
      out["gradient penalty (double backward)"] = (
          jax.grad(lambda d: losses.gradient_penalty(lambda x: logits(d, x), real, fake, rng,
                                                     form=cfg.gp_form)), (dparams,))
    tx = self.groups["generator"].tx
    out["optimiser update (generator)"] = (lambda g, s, p: tx.update(g, s, p),
                                           (params, state.opt_state["generator"], params))
    return out

  def batch_stats_of(self, params, batch_stats, images, labels, rng):
    """f_psi's statistics from the likelihood pass on real images, then a batch-normed generator's
    from a generation pass (as a training step computes them)."""
    variables = {"params": params, "batch_stats": batch_stats}
    if self.cfg.mle:
      y = losses.dequantize(images, rng)
      _, upd = self.model.apply(variables, y, rng, train=True, labels=labels, mutable=["batch_stats"])
      variables = {"params": params, "batch_stats": upd.get("batch_stats", batch_stats)}
    _, upd = self.model.apply(variables, rng, images.shape[0], labels=labels, train=True,
                              method="generate", mutable=["batch_stats"])
    return upd.get("batch_stats", variables["batch_stats"])
