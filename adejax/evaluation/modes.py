"""Mode counting on stacked datasets (the GAN literature's direct test of mode dropping).

A stacked image's three channels are independent images of a 10-class dataset, so it has 1000 modes.
A classifier of the base dataset labels each channel of each sample; the triple of labels is its mode.
Reported (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): the number of modes among N samples
(26,000 in the protocol) that appear at least once, and KL(sample mode histogram || uniform over the
1000 modes), which is 0 for a perfect model with a perfect classifier and log(1000) = 6.91 for a model
that always produces one mode. The same two numbers on N held-out real stacked images are the ceiling
that the classifier's own errors allow.
"""
from __future__ import annotations

import math

import numpy as np

NUM_CLASSES = 10
NUM_MODES = NUM_CLASSES ** 3


def channel_images(images: np.ndarray, channel: int) -> np.ndarray:
  """(N, H, W, 1) uint8: one channel of stacked images."""
  return np.asarray(images)[..., channel:channel + 1]


def modes_of(channel_classes: np.ndarray) -> np.ndarray:
  """(N,) mode ids 100 l_R + 10 l_G + l_B from (N, 3) per-channel classes."""
  return (np.asarray(channel_classes) * np.array([NUM_CLASSES ** 2, NUM_CLASSES, 1])).sum(-1)


def coverage(modes: np.ndarray) -> dict[str, float]:
  """{"modes": distinct modes seen, "kl": KL(histogram || uniform) in nats} of (N,) mode ids."""
  counts = np.bincount(np.asarray(modes, np.int64), minlength=NUM_MODES)
  q = counts[counts > 0] / counts.sum()
  return {"modes": int((counts > 0).sum()), "kl": float(np.sum(q * np.log(q * NUM_MODES)))}


def classify_channels(logits_fn, images: np.ndarray, chunk: int = 5000) -> np.ndarray:
  """(N, 3) per-channel classes of stacked uint8 images by `logits_fn` ((n, H, W, 1) uint8 -> logits)."""
  out = []
  for start in range(0, len(images), chunk):
    batch = np.asarray(images[start:start + chunk])
    out.append(np.stack([np.argmax(logits_fn(channel_images(batch, c)), -1) for c in range(3)], -1))
  return np.concatenate(out)


def stacked_features(feature_fn):
  """A feature function for stacked images from one of their base dataset ((n, H, W, 1) -> (features,
  logits)): the three channels' features side by side, and as logits the log-probabilities of the 1000
  modes (the channels' softmaxes multiplied), so FID, IS and PRD read stacked images too."""

  def features(images):
    parts = [feature_fn(channel_images(images, c)) for c in range(3)]
    logp = [lg - np.logaddexp.reduce(lg, axis=-1, keepdims=True) for _, lg in parts]
    joint = logp[0][:, :, None, None] + logp[1][:, None, :, None] + logp[2][:, None, None, :]
    return np.concatenate([f for f, _ in parts], -1), joint.reshape(len(images), NUM_MODES)

  return features


UNIFORM_KL_OF_ONE_MODE = math.log(NUM_MODES)
