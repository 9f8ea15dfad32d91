"""Precision and recall for distributions (Sajjadi et al. 2018; papers/002 appendix E.2).

Real and generated features are clustered together with k-means (20 clusters); the two cluster
histograms P (real) and Q (model) give the PRD curve
    alpha(l) = sum_w min(l P(w), Q(w))   (precision),   beta(l) = alpha(l) / l   (recall)
over slopes l = tan(angle), angle in (0, pi/2). Curves are averaged over 10 clusterings. Summaries:
F_8 (recall-weighted) and F_1/8 (precision-weighted) maxima, and the area under the curve.
"""
from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 100) -> np.ndarray:
  """Cluster labels of x (N, F) by Lloyd's algorithm with k-means++ seeding."""
  x = np.asarray(x, np.float64)
  centres = [x[rng.integers(len(x))]]
  d2 = np.sum((x - centres[0]) ** 2, axis=1)
  for _ in range(1, k):
    p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1.0 / len(x))
    centres.append(x[rng.choice(len(x), p=p)])
    d2 = np.minimum(d2, np.sum((x - centres[-1]) ** 2, axis=1))
  centres = np.stack(centres)
  labels = None
  for _ in range(iters):
    dist = (x ** 2).sum(1)[:, None] - 2 * x @ centres.T + (centres ** 2).sum(1)[None, :]
    new = np.argmin(dist, axis=1)
    if labels is not None and np.array_equal(new, labels):
      break
    labels = new
    for j in range(k):
      if np.any(labels == j):
        centres[j] = x[labels == j].mean(axis=0)
  return labels


def prd_from_histograms(ref: np.ndarray, model: np.ndarray, num_angles: int = 1001, eps: float = 1e-10):
  slopes = np.tan(np.linspace(eps, np.pi / 2 - eps, num_angles))
  precision = np.minimum(ref[None, :] * slopes[:, None], model[None, :]).sum(axis=1)
  recall = precision / slopes
  return np.clip(precision, 0, 1), np.clip(recall, 0, 1)


def compute_prd(real: np.ndarray, fake: np.ndarray, num_clusters: int = 20, num_runs: int = 10,
                num_angles: int = 1001, seed: int = 0):
  """Averaged PRD curve (precision, recall), each of length num_angles (odd: the middle is l = 1)."""
  rng = np.random.default_rng(seed)
  both = np.concatenate([real, fake]).astype(np.float64)
  precisions, recalls = [], []
  for _ in range(num_runs):
    labels = kmeans(both, num_clusters, rng)
    ref = np.bincount(labels[:len(real)], minlength=num_clusters) / len(real)
    model = np.bincount(labels[len(real):], minlength=num_clusters) / len(fake)
    p, r = prd_from_histograms(ref, model, num_angles)
    precisions.append(p)
    recalls.append(r)
  return np.mean(precisions, axis=0), np.mean(recalls, axis=0)


def f_beta_scores(precision, recall, beta: float = 8.0) -> tuple[float, float]:
  """(F_beta, F_1/beta) maxima over the curve: recall-weighted and precision-weighted summaries."""
  def f(b):
    denom = b ** 2 * precision + recall
    return float(np.max(np.where(denom > 0, (1 + b ** 2) * precision * recall / np.maximum(denom, 1e-30), 0)))
  return f(beta), f(1.0 / beta)


def area_under_curve(precision, recall) -> float:
  order = np.argsort(recall)
  r, p = recall[order], precision[order]
  return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2))


def summarise(precision, recall) -> dict[str, float]:
  f8, f1_8 = f_beta_scores(precision, recall)
  return {"prd_f8": f8, "prd_f1_8": f1_8, "prd_auc": area_under_curve(precision, recall)}


def plot_prd(curves: dict, path: str) -> str:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(4, 4))
  for name, (p, r) in curves.items():
    ax.plot(r, p, label=name)
  ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title="PRD")
  ax.legend(loc="lower left")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
