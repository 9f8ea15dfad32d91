"""The math of papers/002, one named function per equation, and the likelihood bookkeeping of SPEC.md §1.

Units: every likelihood term is in nats per example (summed over dimensions); `bits_per_dim` converts.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from adejax.models import contract, gaussian
from adejax.models.discriminators import discriminator_input
from adejax.models.flows import saturated_fraction

LOG_256 = math.log(256.0)


# ----------------------------------------------------------------------------- data and units
def dequantize(x: jax.Array, rng: jax.Array) -> jax.Array:
  """Uniform dequantization y = (x + u) / 256, u ~ U[0,1)^D, for integer images x in {0..255}^D."""
  u = jax.random.uniform(rng, x.shape, jnp.float32)
  return (x.astype(jnp.float32) + u) / 256.0


def pixel_centres(x) -> jax.Array:
  """y = (x + 1/2) / 256 for integer images x in {0..255}^D: the centre of each pixel's bin, the
  deterministic counterpart of `dequantize` (latent means, interpolations, critic inputs)."""
  return (jnp.asarray(x, jnp.float32) + 0.5) / 256.0


def bits_per_dim(nll_y: jax.Array, num_dims: int) -> jax.Array:
  """bpd of x from -log p(y) in nats per example (y = (x+u)/256): (nll + D log 256) / (D ln 2).

  -log p(y) must contain every log-det from y to the model's base space. A density uniform on
  [0,1]^D has nll = 0 and scores exactly 8.0.
  """
  return (nll_y + num_dims * LOG_256) / (num_dims * math.log(2.0))


# ----------------------------------------------------------------------------- likelihood (eq. 3, 4)
def gaussian_nll(features: jax.Array, mean: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """-log N(f | mu_theta(z), sigma^2 I) per example: the decoder term of eq. 3."""
  return -gaussian.log_prob(features, mean, jnp.broadcast_to(log_sigma, mean.shape))


def elbo(outputs: Mapping[str, jax.Array]) -> jax.Array:
  """Eq. 3: E_q[log p(f_psi(x) | z)] - KL(q(z | f_psi(x)) || p(z)), single-sample, per example."""
  return -gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"]) - outputs["kl"]


def coverage_loss(outputs: Mapping[str, jax.Array]):
  """Eq. 4: L_C = -ELBO(f_psi(x)) - log|det d f_psi / dx| per example (nats), an upper bound on -log p(y).

  `outputs` is what `ADEModel.__call__` returns; `logdet` includes the fixed preprocessing.
  Returns (loss per example, terms) with terms nll (decoder), kl and logdet, all per example.
  """
  nll = gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"])
  terms = {"nll": nll, "kl": outputs["kl"], "logdet": outputs["logdet"]}
  return -elbo(outputs) - outputs["logdet"], terms


def warmed_coverage_loss(per_example: jax.Array, kl: jax.Array, kl_weight) -> jax.Array:
  """The training surrogate of L_C during a KL warm-up: L_C - (1 - kl_weight) * KL, batch-mean.

  kl_weight = 1 is L_C itself. Below 1 it is no bound; the logged bits/dim stay those of L_C."""
  return jnp.mean(per_example - (1.0 - kl_weight) * kl)


def free_bits_kl(kl_channels: jax.Array, free_bits: float) -> jax.Array:
  """The KL of the training objective with free bits (Kingma et al. 2016, the IAF reference code that
  papers/002 builds on, its `kl_min`): sum over latent channels of max(batch-mean KL of the channel,
  free_bits). `kl_channels` (B, C): nats per example and channel (summed over its positions). A channel
  under the floor gets no gradient towards the prior; the reported bound keeps the true KL."""
  return jnp.sum(jnp.maximum(jnp.mean(kl_channels, axis=0), free_bits))


def training_coverage_loss(per_example: jax.Array, outputs: Mapping[str, jax.Array], kl_weight=1.0,
                           free_bits: float = 0.0) -> jax.Array:
  """The batch-mean training objective of L_C: L_C itself, or with a KL warm-up (`kl_weight` < 1)
  and free bits (`free_bits` > 0 nats per latent channel, `free_bits_kl`) its surrogate. Neither
  changes the logged bits/dim, which are those of L_C."""
  if not free_bits:
    return warmed_coverage_loss(per_example, outputs["kl"], kl_weight)
  return (jnp.mean(per_example - outputs["kl"])
          + kl_weight * free_bits_kl(outputs["kl_channels"], free_bits))


def importance_weighted_bound(log_weights: jax.Array) -> jax.Array:
  """IWAE bound on log p: log (1/K) sum_k w_k for log-weights of shape (K, B); K=1 gives the ELBO."""
  k = log_weights.shape[0]
  return jax.scipy.special.logsumexp(log_weights, axis=0) - math.log(k)


def log_importance_weight(outputs: Mapping[str, jax.Array]) -> jax.Array:
  """log p(f|z) + log p(z) - log q(z|f) + log|det| for one posterior sample, per example."""
  return (-gaussian_nll(outputs["features"], outputs["mean"], outputs["log_sigma"])
          + outputs["log_p"] - outputs["log_q"] + outputs["logdet"])


# ----------------------------------------------------------------------------- adversarial (eq. 5, 11-13)
def quality_loss(fake_logits: jax.Array) -> jax.Array:
  """Eq. 5: L_Q = -E_z[log D(x~) - log(1 - D(x~))] = -E_z[logit D(x~)]."""
  return -jnp.mean(fake_logits)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Binary cross-entropy of real (label 1) against generated (label 0) images, from logits."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def _input_gradient_norms(logit_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  """||grad_x D(x)||_2 per example. `logit_fn` maps a batch to per-example logits with no interaction
  between examples, so the gradient of their sum gives each example's own input gradient."""
  grads = jax.grad(lambda v: jnp.sum(logit_fn(v)))(x)
  return jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1) + 1e-12)


def gradient_penalty(logit_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     rng: jax.Array, form: str = "two-sided") -> jax.Array:
  """The discriminator's gradient penalty, taken on its logit with respect to its input, per example.

  "two-sided" (eq. 11-13, the paper's): E[(||grad D(x^)||_2 - 1)^2] at x^ = e x + (1-e) x~, e ~ U[0,1]
  per example. "one-sided": E[max(0, ||grad D(x^)||_2 - 1)^2] at the same x^. "r1": E[||grad D(x)||_2^2]
  on real images (zero-centred; Mescheder et al. 2018).
  """
  if form == "r1":
    return jnp.mean(jnp.square(_input_gradient_norms(logit_fn, real)))
  e = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  norms = _input_gradient_norms(logit_fn, e * real + (1.0 - e) * fake)
  if form == "two-sided":
    return jnp.mean(jnp.square(norms - 1.0))
  if form == "one-sided":
    return jnp.mean(jnp.square(jnp.maximum(norms - 1.0, 0.0)))
  raise ValueError(f"Unknown gradient penalty form {form!r}; choose 'two-sided', 'one-sided' or 'r1'.")


# ----------------------------------------------------------------------------- objectives on models
def _variables(params, batch_stats):
  return {"params": params, "batch_stats": batch_stats}


def per_dim_bits(terms: Mapping[str, jax.Array], num_dims: int) -> dict:
  """Each per-example nats term as a batch-mean in bits per dimension (nll, kl, logdet)."""
  return {k: jnp.mean(v) / (num_dims * math.log(2.0)) for k, v in terms.items()}


def coverage_metrics(outputs: Mapping[str, jax.Array], per_example: jax.Array, terms) -> dict:
  """The logged likelihood metrics of a batch: mean L_C (nats), its bits/dim, each term in bits/dim
  (nll, kl, logdet and f_psi's or the Glow layer's own flow_logdet), and the decoder's mean sigma."""
  num_dims = math.prod(outputs["features"].shape[1:])
  return {"coverage_loss": jnp.mean(per_example),
          "bpd": jnp.mean(bits_per_dim(per_example, num_dims)),
          **{f"{k}_bpd": v for k, v in per_dim_bits(
              {**terms, "flow_logdet": outputs["flow_logdet"]}, num_dims).items()},
          "sigma": jnp.mean(jnp.exp(outputs["log_sigma"]))}


def generator_loss(params, batch_stats, disc_params, y, rng, *, model, disc, mle: bool,
                   adversarial: bool, adv_weight, kl_weight=1.0, free_bits: float = 0.0,
                   sample_noise: bool = False, constrain=lambda x: x, labels=None):
  """Algorithm 1, generator objective: mean L_C (eq. 4) + adv_weight * L_Q (eq. 5).

  f_psi gets gradients from L_C only: the samples for L_Q are generated with f_psi's parameters
  behind stop_gradient, so the adversarial gradient flows through f_psi^{-1} into the VAE (theta) but
  never into psi. `kl_weight` < 1 down-weights the KL during a warm-up, `free_bits` > 0 floors each
  latent channel's KL in the objective (`training_coverage_loss`).
  Returns (loss, (metrics, new batch_stats)). For class-conditional models the
  generated images are conditioned on the real batch's `labels` (ignored by unconditional models).
  """
  post_rng, prior_rng = jax.random.split(rng)
  loss, metrics, new_stats = 0.0, {}, batch_stats
  if mle:
    out, updates = model.apply(_variables(params, batch_stats), y, post_rng, train=True,
                               labels=labels, mutable=["batch_stats"])
    per_example, terms = coverage_loss(out)
    loss = training_coverage_loss(per_example, out, kl_weight, free_bits)
    new_stats = updates.get("batch_stats", batch_stats)
    metrics.update(coverage_metrics(out, per_example, terms))
  if adversarial:
    frozen = dict(params)
    if "flow" in frozen:
      frozen["flow"] = jax.lax.stop_gradient(frozen["flow"])
    fake, updates = model.apply(_variables(frozen, new_stats), prior_rng, y.shape[0], noise=sample_noise,
                                labels=labels, train=True, method="generate", mutable=["batch_stats"])
    fake = constrain(fake)
    new_stats = updates.get("batch_stats", new_stats)
    quality = quality_loss(disc.apply({"params": disc_params}, discriminator_input(fake), labels))
    loss = loss + adv_weight * quality
    metrics["quality_loss"] = quality
    metrics["saturated_fraction"] = saturated_fraction(jax.lax.stop_gradient(fake), model.preprocess,
                                                       model.logit_alpha)
  metrics["generator_loss"] = loss
  return loss, (metrics, new_stats)


def discriminator_accuracy(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Fraction of real (logit > 0) and generated (logit < 0) images the discriminator classifies right."""
  return 0.5 * (jnp.mean((real_logits > 0).astype(jnp.float32))
                + jnp.mean((fake_logits < 0).astype(jnp.float32)))


def discriminator_objective(disc_params, real, fake, rng, *, disc, gp_weight, gp_form="two-sided",
                            labels=None):
  """Cross-entropy real vs generated + gp_weight * gradient penalty (appendix B.3). Images in [-1,1]
  (`discriminators.discriminator_input`); a class-conditional discriminator sees both sets with the same
  `labels`."""
  logit_fn = lambda x: disc.apply({"params": disc_params}, x, labels)
  real_logits, fake_logits = logit_fn(real), logit_fn(fake)
  ce = discriminator_loss(real_logits, fake_logits)
  gp = gradient_penalty(logit_fn, real, fake, rng, gp_form) if gp_weight else jnp.zeros(())
  metrics = {"disc_loss": ce, "gradient_penalty": gp, "real_logit": jnp.mean(real_logits),
             "fake_logit": jnp.mean(fake_logits),
             "disc_accuracy": discriminator_accuracy(real_logits, fake_logits)}
  return ce + gp_weight * gp, metrics


def heldout_nll(params, batch_stats, y, rng, *, model, iwae_samples: int = 0, labels=None):
  """Per-example upper bounds on -log p(y) in eval mode: the ELBO bound and, for K > 0, IWAE-K
  (of -log p(y | label) for a class-conditional model)."""
  variables = _variables(params, batch_stats)
  out = contract.check_terms(model.apply(variables, y, rng, train=False, labels=labels), model)
  elbo_nll, terms = coverage_loss(out)
  result = {"elbo": elbo_nll, **terms, "flow_logdet": out["flow_logdet"]}
  if iwae_samples:
    keys = jax.random.split(jax.random.fold_in(rng, 1), iwae_samples)
    log_w = jax.lax.map(
        lambda k: log_importance_weight(model.apply(variables, y, k, train=False, labels=labels)), keys)
    result["iwae"] = -importance_weighted_bound(log_w)
  return result
