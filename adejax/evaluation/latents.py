"""Instruments for latent use in a model with an encoder: what a researcher checks first when a VAE's
samples are blobs.

  active units      Burda et al. (2016): a latent unit u is active when Cov_x(E_q[z_u | x]) > 0.01,
                    the variance over held-out images of its posterior mean.
  reconstruction    PSNR of the decoded mean against the image (pixel values in [0, 1]), and the
                    domain classifier's accuracy on reconstructions beside its accuracy on the images.
  per-level KL      KL(q || p) of each latent level in bits per image (the model reports it).
"""
from __future__ import annotations

import math

import numpy as np

ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(posterior_means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
  """Number of latent units whose posterior mean varies across images by more than `threshold`
  (variance over the N rows of an (N, d) array)."""
  means = np.asarray(posterior_means, np.float64).reshape(len(posterior_means), -1)
  return int(np.sum(np.var(means, axis=0) > threshold))


def psnr(images: np.ndarray, reconstructions: np.ndarray) -> float:
  """Mean over images of the peak signal-to-noise ratio in dB, 10 log10(1 / MSE), of float images in
  [0, 1] (uint8 images are divided by 255). Identical images give +inf."""
  to_unit = lambda a: (np.asarray(a, np.float64) / 255.0 if np.asarray(a).dtype == np.uint8
                       else np.asarray(a, np.float64))
  a, b = to_unit(images), to_unit(reconstructions)
  mse = np.mean(np.square(a - b).reshape(len(a), -1), axis=-1)
  with np.errstate(divide="ignore"):
    return float(np.mean(10.0 * np.log10(1.0 / mse)))


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Float images in [0, 1] as uint8 pixels (what the domain classifier reads)."""
  return np.round(np.clip(np.asarray(images), 0.0, 1.0) * 255.0).astype(np.uint8)


def classifier_accuracy(logits_fn, images: np.ndarray, labels: np.ndarray) -> float:
  """Accuracy of a classifier (uint8 images -> logits) on `images` against `labels`."""
  return float(np.mean(np.argmax(np.asarray(logits_fn(images)), axis=-1) == np.asarray(labels)))


def latent_metrics(images: np.ndarray, labels, reconstructions: np.ndarray, kl_nats: np.ndarray,
                   posterior_means, logits_fn=None) -> dict:
  """The latent-use metrics of held-out `images` (uint8) with their float `reconstructions` in [0, 1]:
  `kl_nats` (N, L) per-level KL in nats per image, `posterior_means` L arrays (N, d_l), and with a
  classifier `logits_fn` its accuracy on the reconstructions and on the images themselves."""
  kl_bits = np.mean(np.asarray(kl_nats, np.float64), axis=0) / math.log(2.0)
  if len(kl_bits) != len(posterior_means):
    raise ValueError(f"{len(kl_bits)} levels of KL but {len(posterior_means)} of posterior means")
  out = {"recon_psnr": psnr(images, reconstructions),
         "kl_bits_per_image": float(np.sum(kl_bits)),
         "active_units": int(sum(active_units(m) for m in posterior_means)),
         "latent_units": int(sum(int(np.prod(np.shape(m)[1:])) for m in posterior_means))}
  for level, (bits, means) in enumerate(zip(kl_bits, posterior_means)):
    out[f"kl_bits_level{level}"] = float(bits)
    out[f"active_units_level{level}"] = active_units(means)
  if logits_fn is not None and labels is not None:
    out["recon_accuracy_domain"] = classifier_accuracy(logits_fn, to_uint8(reconstructions), labels)
    out["real_accuracy_domain"] = classifier_accuracy(logits_fn, images, labels)
  return out
