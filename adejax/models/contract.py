"""The one interface every family's model keeps with the training system and the evaluation.

`train.Trainer` and `losses.heldout_nll` call a family's `model` (a Flax module) through these four
methods only, so that held-out bounds, samples, reconstructions and interpolations are computed one way
for every family. Images `y` are float (B, H, W, C) in [0, 1] (dequantized 8-bit data); `labels` is
None or (B,) int class labels, which an unconditional model ignores; `rng` is a JAX key.

  model(y, rng, train, labels) -> TERMS     the likelihood pass: a dict with the keys of TERMS (and any
                                            its own family's loss reads, e.g. ADE's `kl_channels`)
  model.generate(rng, batch, temperature, noise=..., labels=None, train=False) -> (batch, H, W, C)
  model.reconstruct(y, rng, labels=None) -> (B, H, W, C)   encode and decode (a flow: f^-1(f(y)))
  model.interpolate(y_a, y_b, steps, labels=None) -> (B, steps, H, W, C)   from y_a to y_b

A model without a likelihood (the GAN, the hybrids without a decoder density) still returns TERMS with
a decoder of its own choosing; its family's `has_likelihood` tells the results tables not to report
them. A model whose family cannot reconstruct or interpolate raises NotImplementedError from the method.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, runtime_checkable

import jax

# The likelihood pass's terms, per example unless said otherwise (nats; `losses.coverage_loss` turns them
# into -ELBO - logdet, an upper bound on -log p(y)).
TERMS = {
    "features": "(B, ...) the data where the decoder's Gaussian lives (after preprocessing and any flow)",
    "mean": "(B, ...) the decoder's mean there",
    "log_sigma": "the decoder's log standard deviation, broadcastable to `mean`",
    "kl": "(B,) KL(q(z | y) || p(z)), analytic where the prior allows, else log q - log p of one sample",
    "log_p": "(B,) log p(z) of the posterior sample",
    "log_q": "(B,) log q(z | y) of the posterior sample",
    "logdet": "(B,) log |det d features / d y|, the fixed preprocessing included",
    "flow_logdet": "(B,) the learned flow's part of `logdet` (zeros without one)",
}
PER_EXAMPLE = ("kl", "log_p", "log_q", "logdet", "flow_logdet")


def check_terms(out: Mapping[str, Any], model: Any = None) -> Mapping[str, Any]:
  """`out` if it holds every key of TERMS; otherwise a KeyError that names the missing keys."""
  missing = [k for k in TERMS if k not in out]
  if missing:
    name = type(model).__name__ if model is not None else "the model"
    raise KeyError(f"{name}'s likelihood pass returned {sorted(out)}; it lacks {missing} of the terms "
                   f"every family's model returns (adejax/models/contract.py TERMS)")
  return out


METHODS = ("generate", "reconstruct", "interpolate")


def check_model(model: Any, owner: str) -> None:
  """A TypeError naming the methods of the contract that `owner`'s model lacks, if any."""
  missing = [m for m in METHODS if not hasattr(model, m)]
  if missing:
    raise TypeError(f"{owner}: its model {type(model).__name__} lacks {missing} (adejax/models/contract.py; "
                    "a method the family cannot support raises NotImplementedError)")


@runtime_checkable
class GenerativeModel(Protocol):
  """What `train.Trainer` calls on `Family.model` (module docstring). `isinstance(m, GenerativeModel)`
  checks that the methods exist; tests/test_families.py checks every family's shapes and terms."""

  def __call__(self, y: jax.Array, rng: jax.Array, train: bool = ...,
               labels: Optional[jax.Array] = None) -> Mapping[str, jax.Array]: ...

  def generate(self, rng: jax.Array, batch: int, temperature: float = 1.0, noise: bool = ...,
               labels: Optional[jax.Array] = None, train: bool = False) -> jax.Array: ...

  def reconstruct(self, y: jax.Array, rng: jax.Array, labels: Optional[jax.Array] = None) -> jax.Array: ...

  def interpolate(self, y_a: jax.Array, y_b: jax.Array, steps: int,
                  labels: Optional[jax.Array] = None) -> jax.Array: ...
