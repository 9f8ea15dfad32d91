"""papers/004's VAE-GAN hybrids as one family: `config.hybrid.model` picks the model, each a schedule on
shared networks (`models.hybrids`; `config.hybrid.arch`: papers/004 K.5's own, or papers/002's SNGAN
shape). Adam (0.5, 0.9), batch 64, batch norm in the generator (appendix K).

Parameter groups, each with its own learning rate (Table 5 sweeps them):
  "generator" (G and the likelihood's sigma; optim.lr), "encoder" (E; hybrid.lr_encoder or optim.lr),
  "disc" (the image discriminator or VEEGAN's joint one; hybrid.lr_disc), "code" (the adversarial
  autoencoders' code discriminator C; hybrid.lr_code).
Schedules (R(d) = -logit d, papers/004 Algorithm 4's R_D; "ẑ ~ q(z|x)", "z ~ p(z) = N(0, I)"):
  vae      E, G: -ELBO with a Bernoulli or quantized-normal likelihood (hybrid.likelihood).
  dcgan    D: cross-entropy x vs G(z); G: -log D(G(z)) (non-saturating).
  wgan_gp  hybrid.critic_steps (5) critic updates, each on a fresh G(z) against the step's real batch:
           D(G(z)) - D(x) + gp_weight (10) x two-sided penalty; then G: -D(G(z)).
  aae      C: cross-entropy z vs ẑ; E, G: the likelihood's reconstruction -log p(x | ẑ) + R(C(ẑ)) (the
           analytic KL of the VAE replaced by the code discriminator).
  aae_pp   Algorithm 4's order E -> G -> D -> C, each seeing the updates before it:
           E: rec_weight_encoder l1(x, G(ẑ)) + R(C(ẑ)); G: rec_weight_generator l1(x, G(ẑ)) + R(D(G(ẑ)))
           (eq. 10); D: x vs reconstructions G(ẑ); C as aae.
  aae_gan  aae_pp, and prior samples G(z) also fake for D and in G's loss: + R(D(G(z))) (eq. 11).
  veegan   D(x, z): (x, F(x)) vs (G(z), z); F (the encoder's mean), G: R(D(G(z), z)) +
           l1(z, F(G(z))) (the code reconstruction).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from adejax import losses
from adejax.families import base
from adejax.families.base import check
from adejax.models import discriminators, gaussian, hybrids



class Schedule(NamedTuple):
  groups: tuple[str, ...]  # the parameter groups the model trains (each with its optimiser)
  step: str                # the HybridFamily method that runs one step of it


# One row per model of `models.hybrids.MODELS` (a test checks the two agree).
SCHEDULES = {
    "vae": Schedule(("generator", "encoder"), "_vae_step"),
    "dcgan": Schedule(("generator", "disc"), "_gan_step"),
    "wgan_gp": Schedule(("generator", "disc"), "_gan_step"),
    "aae": Schedule(("generator", "encoder", "code"), "_aae_step"),
    "aae_pp": Schedule(("generator", "encoder", "disc", "code"), "_aae_pp_step"),
    "aae_gan": Schedule(("generator", "encoder", "disc", "code"), "_aae_pp_step"),
    "veegan": Schedule(("generator", "encoder", "disc"), "_veegan_step"),
}
ENCODER_MODELS = tuple(m for m, sched in SCHEDULES.items() if "encoder" in sched.groups)


def l1(a, b):
  return jnp.sum(jnp.abs(a - b), axis=tuple(range(1, a.ndim)))


class HybridFamily(base.Family):

  @staticmethod
  def config_section():
    h = ml_collections.ConfigDict()  # family "hybrid": papers/004's models (families/hybrids.py);
                                   # generator/encoder width model.width, discriminators model.disc_width
    h.model = "vae"                # vae | dcgan | wgan_gp | aae | aae_pp | aae_gan | veegan
    h.likelihood = "bernoulli"     # vae / aae: "bernoulli" or "quantized_normal" (learned sigma)
    h.arch = "paper"               # networks: "paper" (papers/004 K.5: ReLU generator, 28x28 Tables 6-7,
                                   # 32/64 the WGAN code's DCGAN) or "sngan" (papers/002's, ELU); widths
                                   # from model.width / model.disc_width
    h.latent_dim = 64              # size of z (papers/004 sweeps 10, 50, 75 on ColorMNIST)
    h.critic_steps = 5             # wgan_gp: critic updates per generator update
    h.gp_weight = 10.0             # wgan_gp: two-sided gradient penalty
    h.rec_weight_encoder = 1.0     # aae_pp / aae_gan: l1 data reconstruction weight for E (1, 5, 10, 50)
    h.rec_weight_generator = 1.0   # ... and for G (1, 5, 10, 50)
    h.code_width = 1000            # units of the code / joint discriminator's dense layers
    h.joint_head = "table8"        # veegan's joint discriminator: "table8" (papers/004 Table 8: both
                                   # trunks, conv 3x3, conv 2x2, logit) or "small" (one dense layer on
                                   # z, one on both: adejax's earlier, cheaper head)
    h.joint_head_width = 512       # Table 8's head convolutions (the paper's grid: 512, 1024)
    h.lr_encoder = 0.0             # learning rates (Table 5); 0 = optim.lr
    h.lr_disc = 0.0
    h.lr_code = 0.0
    return "hybrid", h

  @staticmethod
  def validate(c) -> None:
    h = c.hybrid
    check(h.model in hybrids.MODELS, "hybrid.model", f"{h.model!r} is not one of {list(hybrids.MODELS)}")
    check(h.likelihood in hybrids.LIKELIHOODS, "hybrid.likelihood",
          f"{h.likelihood!r} is not one of {list(hybrids.LIKELIHOODS)}")
    check(h.arch in hybrids.ARCHS, "hybrid.arch", f"{h.arch!r} is not one of {list(hybrids.ARCHS)}")
    if h.arch == "paper":
      try:
        hybrids.paper_layout((c.data.image_size, c.data.image_size, 1))
      except ValueError as e:
        check(False, "data.image_size", str(e))
    check(h.latent_dim >= 1 and h.code_width >= 1, "hybrid.latent_dim", "sizes must be positive")
    check(h.critic_steps >= 1, "hybrid.critic_steps", "must be at least 1")
    check(h.joint_head in hybrids.JOINT_HEADS, "hybrid.joint_head",
          f"{h.joint_head!r} is not one of {list(hybrids.JOINT_HEADS)}")
    check(h.joint_head_width >= 1, "hybrid.joint_head_width", "must be at least 1")
    check(min(h.lr_encoder, h.lr_disc, h.lr_code) >= 0, "hybrid.lr_disc", "must be >= 0 (0 = optim.lr)")
    check(c.model.num_classes == 0, "model.num_classes", "the hybrid family is unconditional")

  @staticmethod
  def shrink_tiny(c, num_steps: int) -> None:
    c.hybrid.latent_dim, c.hybrid.code_width, c.hybrid.joint_head_width = 8, 16, 16

  @staticmethod
  def shrink_small(c, full_steps: int) -> None:
    """papers/004's own 28x28 networks (they are small; or papers/002's at a quarter width), smaller
    dense layers."""
    if c.hybrid.arch != "paper":
      base.Family.shrink_small(c, full_steps)
    c.hybrid.code_width, c.hybrid.joint_head_width = 256, 128

  @staticmethod
  def has_latent_posterior(config) -> bool:
    return config.hybrid.model in ENCODER_MODELS

  @staticmethod
  def has_likelihood(config) -> bool:
    """Only the quantized-normal VAE: the Bernoulli likelihood is no density of 8-bit data, and the other
    hybrids' decoders define none."""
    return config.hybrid.model == "vae" and config.hybrid.likelihood == "quantized_normal"

  @staticmethod
  def results_mode(config) -> str:
    return f"hybrid/{config.hybrid.model}"

  def __init__(self, config: ml_collections.ConfigDict, image_shape):
    h = config.hybrid
    self.image_shape = tuple(image_shape)
    self.kind = h.model
    self.likelihood = h.likelihood
    self.h = h
    self.model = hybrids.HybridModel(self.image_shape, config.model.width, h.latent_dim, h.likelihood,
                                     config.model.log_sigma_init, h.arch)
    if self.kind == "veegan":
      self.disc = hybrids.JointDiscriminator(config.model.disc_width, h.code_width, h.arch, self.image_shape,
                                             h.joint_head, h.joint_head_width)
    elif h.arch == "paper":
      self.disc = hybrids.PaperDiscriminator(self.image_shape, config.model.disc_width)
    else:
      self.disc = discriminators.Discriminator("conv", config.model.disc_width)
    self.code_disc = hybrids.CodeDiscriminator(h.code_width, 3)
    self.has_encoder = self.kind in ENCODER_MODELS
    self.label = f"hybrid/{self.kind}" + (f" ({h.likelihood})" if self.kind in ("vae", "aae") else "")
    lr = config.optim.lr
    group = lambda tree, own_lr, keys: base.Group(tree, base.make_optimizer(config.optim, lr=own_lr or lr), keys)
    every = {"generator": lambda: group("params", lr, ("generator", "log_sigma")),
             "encoder": lambda: group("params", h.lr_encoder, ("encoder",)),
             "disc": lambda: group("disc_params", h.lr_disc, ("data",)),
             "code": lambda: group("disc_params", h.lr_code, ("code",))}
    self.groups = {name: make() for name, make in every.items() if name in SCHEDULES[self.kind].groups}

  # ----------------------------------------------------------------------------- set-up
  def init(self, rng):
    k_model, k_disc, k_code, k_z = jax.random.split(rng, 4)
    y = jnp.full((2,) + self.image_shape, 0.5, jnp.float32)
    variables = self.model.init(k_model, y, k_z, train=True)
    disc_params = {}
    if "disc" in self.groups:
      if self.kind == "veegan":
        disc_params["data"] = self.disc.init(k_disc, y, jnp.zeros((2, self.h.latent_dim)))["params"]
      else:
        disc_params["data"] = discriminators.init_params(self.disc, k_disc, self.image_shape)
    if "code" in self.groups:
      disc_params["code"] = self.code_disc.init(k_code, jnp.zeros((2, self.h.latent_dim)))["params"]
    return variables["params"], variables.get("batch_stats", {}), disc_params

  # ----------------------------------------------------------------------------- pieces
  def _apply(self, params, batch_stats, *args, method, train=True):
    out, upd = self.model.apply({"params": params, "batch_stats": batch_stats}, *args, train=train,
                                method=method, mutable=["batch_stats"])
    return out, upd["batch_stats"]

  def _generate(self, params, batch_stats, z):
    """Images in [0, 1] from codes z (training-mode batch norm) and the new statistics."""
    raw, stats = self._apply(params, batch_stats, z, method="decode_raw")
    return self.model.apply({"params": params}, raw, method="to_image"), raw, stats

  def _posterior(self, params, y, rng):
    return self.model.apply({"params": params}, y, rng, method="sample_posterior")

  def _d(self, disc_params, x, z=None):
    x = discriminators.discriminator_input(x)
    if self.kind == "veegan":
      return self.disc.apply({"params": disc_params["data"]}, x, z)
    return self.disc.apply({"params": disc_params["data"]}, x)

  def _c(self, disc_params, z):
    return self.code_disc.apply({"params": disc_params["code"]}, z)

  def _reconstruction(self, params, batch_stats, y, z):
    """-log p(x | z) of the model's likelihood per example (nats), and the new statistics."""
    if self.likelihood == "bernoulli":
      return self._apply(params, batch_stats, y, z, method="bernoulli_nll")
    raw, stats = self._apply(params, batch_stats, z, method="decode_raw")
    return losses.gaussian_nll(discriminators.to_signed(y), raw, params["log_sigma"]), stats

  def _update(self, state, names, loss_fn):
    """One update of groups `names` (`base.update_groups`) by loss_fn(tree) -> (loss, (metrics, stats)),
    keeping the generator's new batch-norm statistics `stats` (None: unchanged) only if it succeeded."""
    state, loss, (metrics, stats), ok = base.update_groups(state, self.groups, names, loss_fn)
    if stats is not None:
      state = state.replace(batch_stats=jax.tree.map(lambda new, old: jnp.where(ok, new, old), stats,
                                                     state.batch_stats))
    return state, {**metrics, "loss": loss}

  def _bce_update(self, state, group, logits_fn, name):
    """A discriminator-like group trained by cross-entropy: logits_fn(disc_params) -> (real, fake)."""
    def loss_fn(dp):
      real, fake = logits_fn(dp)
      return losses.discriminator_loss(real, fake), (
          {f"{name}_loss": losses.discriminator_loss(real, fake), f"{name}_real_logit": jnp.mean(real),
           f"{name}_fake_logit": jnp.mean(fake), f"{name}_accuracy": losses.discriminator_accuracy(real, fake)},
          None)
    state, m = self._update(state, (group,), loss_fn)
    m.pop("loss")
    return state, m

  # ----------------------------------------------------------------------------- the schedules
  def train_step(self, state, images, labels, rng, constrain, phase=0):
    del labels, constrain, phase
    k = dict(zip(("deq", "post", "prior", "gp", "gen"), jax.random.split(rng, 5)))
    y = losses.dequantize(images, k["deq"])
    z_prior = jax.random.normal(k["prior"], (y.shape[0], self.h.latent_dim))
    return getattr(self, SCHEDULES[self.kind].step)(state, y, k, z_prior)

  def _vae_step(self, state, y, k, z_prior):
    """vae: E and G on -ELBO with the model's likelihood."""
    del z_prior
    bs = state.batch_stats

    def loss_fn(p):
      mean, log_std, z = self._posterior(p, y, k["post"])
      zeros = jnp.zeros_like(mean)
      kl = gaussian.kl(mean, log_std, zeros, zeros)
      if self.likelihood == "bernoulli":
        rec, stats = self._reconstruction(p, bs, y, z)
        per_example = rec + kl
        return jnp.mean(per_example), ({"bernoulli_nll": jnp.mean(rec), "kl": jnp.mean(kl)}, stats)
      out, stats = self._apply(p, bs, y, k["post"], method="__call__")
      per_example, terms = losses.coverage_loss(out)
      return jnp.mean(per_example), (losses.coverage_metrics(out, per_example, terms), stats)
    state, m = self._update(state, ("encoder", "generator"), loss_fn)
    return state, {"generator_loss": m.pop("loss"), **m}

  def _gan_step(self, state, y, k, z_prior):
    """dcgan: D then G (non-saturating); wgan_gp: hybrid.critic_steps critic updates, then G."""
    b, d, bs, metrics = y.shape[0], self.h.latent_dim, state.batch_stats, {}
    wgan = self.kind == "wgan_gp"
    for i in range(self.h.critic_steps if wgan else 1):
      z_i = jax.random.normal(jax.random.fold_in(k["prior"], i + 1), (b, d))
      fake = jax.lax.stop_gradient(self._generate(state.params, bs, z_i)[0])
      if wgan:
        def critic_loss(dp, fake=fake, i=i):
          logit = lambda x: self.disc.apply({"params": dp["data"]}, x)
          real_in, fake_in = discriminators.discriminator_input(y), discriminators.discriminator_input(fake)
          real_l, fake_l = logit(real_in), logit(fake_in)
          gp = losses.gradient_penalty(logit, real_in, fake_in, jax.random.fold_in(k["gp"], i))
          w = jnp.mean(real_l) - jnp.mean(fake_l)
          return -w + self.h.gp_weight * gp, ({"critic_wasserstein": w, "gradient_penalty": gp}, None)
        state, m = self._update(state, ("disc",), critic_loss)
        m.pop("loss")
      else:
        state, m = self._bce_update(state, "disc", lambda dp, fake=fake: (self._d(dp, y), self._d(dp, fake)),
                                    "disc")
      metrics.update(m)

    def g_loss(p):
      fake, _, stats = self._generate(p, bs, z_prior)
      logits = self._d(state.disc_params, fake)
      loss = -jnp.mean(logits) if wgan else jnp.mean(jax.nn.softplus(-logits))
      return loss, ({}, stats)
    state, m = self._update(state, ("generator",), g_loss)
    return state, {**metrics, "generator_loss": m["loss"]}

  def _veegan_step(self, state, y, k, z_prior):
    """veegan: D(x, z) on (x, F(x)) vs (G(z), z); then F and G on R(D(G(z), z)) + l1(z, F(G(z)))."""
    bs = state.batch_stats
    f_real = self._posterior(state.params, y, k["post"])[0]
    fake = jax.lax.stop_gradient(self._generate(state.params, bs, z_prior)[0])
    state, metrics = self._bce_update(state, "disc", lambda dp: (self._d(dp, y, f_real), self._d(dp, fake, z_prior)),
                                      "disc")

    def g_loss(p):
      x_gen, _, stats = self._generate(p, bs, z_prior)
      adv = losses.quality_loss(self._d(state.disc_params, x_gen, z_prior))
      code_rec = jnp.mean(l1(z_prior, self._posterior(p, x_gen, k["post"])[0]))
      return adv + code_rec, ({"adversarial": adv, "code_reconstruction": code_rec}, stats)
    state, m = self._update(state, ("encoder", "generator"), g_loss)
    return state, {**metrics, "generator_loss": m.pop("loss"), **m}

  def _code_update(self, state, y, k, z_prior):
    """The code discriminator C: z ~ p(z) real, ẑ ~ q(z | x) of the current encoder fake."""
    z_hat = jax.lax.stop_gradient(self._posterior(state.params, y, k["post"])[2])
    return self._bce_update(state, "code", lambda dp: (self._c(dp, z_prior), self._c(dp, z_hat)), "code")

  def _aae_step(self, state, y, k, z_prior):
    """aae (Makhzani et al.): C, then E and G together on -log p(x | ẑ) + R(C(ẑ))."""
    bs = state.batch_stats
    state, metrics = self._code_update(state, y, k, z_prior)

    def loss_fn(p):
      _, _, z = self._posterior(p, y, k["post"])
      rec, stats = self._reconstruction(p, bs, y, z)
      adv = losses.quality_loss(self._c(state.disc_params, z))
      return jnp.mean(rec) + adv, ({"reconstruction": jnp.mean(rec), "code_adversarial": adv}, stats)
    state, m = self._update(state, ("encoder", "generator"), loss_fn)
    return state, {**metrics, "generator_loss": m.pop("loss"), **m}

  def _aae_pp_step(self, state, y, k, z_prior):
    """aae_pp / aae_gan: papers/004 Algorithm 4's order E -> G -> D -> C, each update seeing the ones
    before it in this step (ẑ drawn again, with the same noise, from the updated encoder)."""
    gan, metrics = self.kind == "aae_gan", {}

    def e_loss(p):  # eq. 12
      _, _, z = self._posterior(p, y, k["post"])
      img, _, stats = self._generate(p, state.batch_stats, z)
      rec = jnp.mean(l1(y, img))
      adv = losses.quality_loss(self._c(state.disc_params, z))
      return self.h.rec_weight_encoder * rec + adv, ({"reconstruction_l1": rec, "code_adversarial": adv}, stats)
    state, m = self._update(state, ("encoder",), e_loss)
    metrics.update({"encoder_loss": m.pop("loss"), **m})

    z_hat = jax.lax.stop_gradient(self._posterior(state.params, y, k["post"])[2])

    def g_loss(p):  # eq. 10, and for aae_gan eq. 11's prior-sample term
      img, _, stats = self._generate(p, state.batch_stats, z_hat)
      rec = jnp.mean(l1(y, img))
      adv = losses.quality_loss(self._d(state.disc_params, img))
      if gan:
        sample, _, stats = self._generate(p, stats, z_prior)
        adv = adv + losses.quality_loss(self._d(state.disc_params, sample))
      return self.h.rec_weight_generator * rec + adv, ({"data_adversarial": adv}, stats)
    state, m = self._update(state, ("generator",), g_loss)
    metrics.update({"generator_loss": m.pop("loss"), **m})

    bs = state.batch_stats
    rec_img = jax.lax.stop_gradient(self._generate(state.params, bs, z_hat)[0])
    prior_img = jax.lax.stop_gradient(self._generate(state.params, bs, z_prior)[0]) if gan else None

    def d_logits(dp):
      real, fake = self._d(dp, y), self._d(dp, rec_img)
      if gan:  # reals against both fakes, each weighted as one half of the fake term
        fake = jnp.concatenate([fake, self._d(dp, prior_img)])
      return real, fake
    state, m = self._bce_update(state, "disc", d_logits, "disc")
    metrics.update(m)
    state, m = self._code_update(state, y, k, z_prior)
    return state, {**metrics, **m}

  def batch_stats_of(self, params, batch_stats, images, labels, rng):
    z = jax.random.normal(rng, (images.shape[0], self.h.latent_dim))
    return self._generate(params, batch_stats, z)[2]
