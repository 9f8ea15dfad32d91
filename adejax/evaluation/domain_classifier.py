"""An offline stand-in for Inception: a small classifier trained by adejax on the dataset's own training
split, giving features and logits for `fid_domain`, `is_domain` and PRD when no Inception weights file
is available. Numbers from it are named *_domain and are not comparable with Inception FID/IS.

The classifier is trained once per (dataset, resolution) and cached with its held-out accuracy.

For class-conditional models it also gives the two measures of Shmelkov et al. (2018) used in
papers/002 appendix E.1 (Table 8): GAN-test, the accuracy of the real-data classifier on generated
images labelled by the class they were generated for (sample quality), and GAN-train, the accuracy on
real test images of the same classifier recipe trained on generated images only (diversity/coverage).
"""
from __future__ import annotations

import contextlib
import json
import os

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from adejax.evaluation import inception

RECIPE_VERSION = 3  # bumped when the cached files' content changes (v3: the deeper network below)


class DomainClassifier(nn.Module):
  """Two conv-conv-pool stages (32, 64 channels), a dense feature layer and the class logits.
  (v2, three convolutions and global average pooling, reached only 0.78 on Fashion-MNIST.)"""
  num_classes: int
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    for features in (32, 64):
      x = nn.relu(nn.Conv(features, (3, 3))(x))
      x = nn.relu(nn.Conv(features, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
    features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    return features, nn.Dense(self.num_classes)(features)


def _prepare(images):
  return images.astype(jnp.float32) / 255.0


def train_classifier(train_images, train_labels, test_images, test_labels, *, steps: int = 1500,
                     batch_size: int = 128, seed: int = 0, num_classes: int = 0):
  """Returns (module, params, held-out accuracy). num_classes 0: from the labels."""
  module = DomainClassifier(num_classes or int(max(train_labels.max(), test_labels.max())) + 1)
  params = module.init(jax.random.key(seed), _prepare(jnp.asarray(train_images[:2])))["params"]
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = module.apply({"params": p}, _prepare(x))[1]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    idx = rng.integers(0, len(train_images), batch_size)
    params, opt_state = step(params, opt_state, train_images[idx], train_labels[idx])
  logits = inception.make_feature_fn(module, params, _prepare, 500)(test_images)[1]
  accuracy = float(np.mean(np.argmax(logits, -1) == test_labels))
  return module, params, accuracy


def load_or_train(cache_dir: str, dataset: str, load_train, test, steps: int = 1500):
  """(feature function uint8 -> (features, logits), info) with the classifier cached under cache_dir.

  `load_train()` gives the training split; it is only called when the classifier is not cached yet.
  """
  shape = "x".join(map(str, test.images.shape[1:]))
  stem = os.path.join(cache_dir, f"domain_classifier_{dataset.replace('/', '_')}_{shape}_v{RECIPE_VERSION}_{steps}")
  with _exclusive(stem + ".lock"):  # the members of a --jobs sweep train it once, not once each
    return _load_or_train(stem, dataset, load_train, test, steps)


@contextlib.contextmanager
def _exclusive(path: str):
  """Hold an exclusive lock on `path` (POSIX flock; elsewhere no lock): a process that finds another
  training the classifier waits for it, then loads what it cached."""
  try:
    import fcntl
  except ImportError:  # not POSIX: each process may train its own copy, as before
    yield
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _load_or_train(stem: str, dataset: str, load_train, test, steps: int):
  cache_dir = os.path.dirname(stem)
  if os.path.exists(stem + ".msgpack") and os.path.exists(stem + ".json"):
    info = json.load(open(stem + ".json"))
    module = DomainClassifier(info["num_classes"])
    template = module.init(jax.random.key(0), _prepare(jnp.asarray(test.images[:2])))["params"]
    with open(stem + ".msgpack", "rb") as f:
      params = flax.serialization.from_bytes(template, f.read())
  else:
    logging.info("Training the %s domain classifier (%d steps; cached in %s).", dataset, steps, cache_dir)
    train = load_train()
    module, params, accuracy = train_classifier(train.images, train.labels, test.images, test.labels,
                                                steps=steps)
    info = {"test_accuracy": accuracy, "dataset": dataset, "steps": steps,
            "num_classes": module.num_classes}
    os.makedirs(cache_dir, exist_ok=True)
    for suffix, payload, mode in ((".msgpack", flax.serialization.to_bytes(params), "wb"),
                                  (".json", json.dumps(info), "w")):
      with open(stem + suffix + ".tmp", mode) as f:
        f.write(payload)
      os.replace(stem + suffix + ".tmp", stem + suffix)
  logging.info("Domain classifier held-out accuracy: %.3f", info["test_accuracy"])
  return inception.make_feature_fn(module, params, _prepare, 500), info


def gan_test(feature_fn, samples: np.ndarray, labels: np.ndarray) -> float:
  """GAN-test: accuracy of the classifier trained on real data, on samples generated for `labels`."""
  logits = feature_fn(samples)[1]
  return float(np.mean(np.argmax(logits, -1) == labels))


def gan_train(samples: np.ndarray, labels: np.ndarray, test, *, num_classes: int, steps: int = 1500,
              seed: int = 0) -> float:
  """GAN-train: held-out accuracy on the real `test` split of the classifier recipe trained on the
  generated `samples` (with the labels they were generated for) instead of real training images."""
  return train_classifier(samples, labels, test.images, test.labels, steps=steps, seed=seed,
                          num_classes=num_classes)[2]
