"""Fréchet distance between Gaussians fitted to features (FID; papers/002 appendix D, eq. 15).

d^2 = ||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}), in float64. The trace of the matrix square root is
computed as Tr (C1^{1/2} C2 C1^{1/2})^{1/2}: that matrix is symmetric positive semi-definite, so an
eigendecomposition gives its square root without the complex round-off of a general sqrtm.
"""
from __future__ import annotations

import os

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and (unbiased) covariance of (N, F) features, in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or len(f) < 2:
    raise ValueError(f"features must be (N >= 2, F), got shape {f.shape}")
  return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((c + c.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """Tr (sigma1 sigma2)^{1/2} for symmetric PSD matrices."""
  s1 = _psd_sqrt(np.asarray(sigma1, np.float64))
  m = s1 @ np.asarray(sigma2, np.float64) @ s1
  return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
    raise ValueError(f"Mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                     f"sigma {sigma1.shape} vs {sigma2.shape}")
  diff = mu1 - mu2
  value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
  return float(max(value, 0.0))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
  return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def cached_statistics(path: str, compute) -> tuple[np.ndarray, np.ndarray]:
  """Reference statistics of a dataset split, computed once by `compute()` and cached as .npz."""
  if os.path.exists(path):
    with np.load(path) as f:
      return f["mu"], f["sigma"]
  mu, sigma = compute()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, mu=mu, sigma=sigma)
  os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
  return mu, sigma


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """IS = exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts (the usual 10); returns (mean, std)."""
  logits = np.asarray(logits, np.float64)
  logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
  scores = []
  for part in np.array_split(logp, splits):
    p = np.exp(part)
    log_marginal = np.log(np.mean(p, axis=0) + 1e-30)
    scores.append(np.exp(np.mean(np.sum(p * (part - log_marginal), axis=1))))
  return float(np.mean(scores)), float(np.std(scores))
