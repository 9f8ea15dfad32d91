"""Datasets as uint8 image arrays, and a deterministic, resumable batch order.

Sources:
  * stacked IDX datasets (`data.dataset = "stacked_fashion_mnist_idx"` or "stacked_mnist_idx"): 28x28x3
    images whose R, G and B channels are three independently drawn images of the IDX dataset, the
    1000-mode benchmark of the GAN literature (VEEGAN, PacGAN); label = 100 l_R + 10 l_G + l_B.
  * IDX files (the offline default: real Fashion-MNIST from Debian's `dataset-fashion-mnist`, or any folder
    holding the four standard files, gzipped or not): `data.dataset = "fashion_mnist_idx"` or "mnist_idx".
  * tensorflow-datasets (cifar10, stl10, downsampled_imagenet/64x64, lsun/<category>, celeb_a, mnist,
    fashion_mnist, ...), read from a prepared `data.tfds_data_dir`. A dataset that is not prepared fails at
    once with instructions: nothing here ever touches the network.

The batch for global step s is a pure function of (seed, s): a fresh permutation of the training set per
epoch, the global batch taken from it, and each process its contiguous slice. A resumed run therefore
sees exactly the batches it would have seen, with nothing to store but the step.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
from typing import Iterator

import numpy as np
from absl import logging

IDX_DATASETS = {
    "fashion_mnist_idx": "/usr/share/datasets/fashion-mnist",
    "mnist_idx": "/usr/share/datasets/mnist",
}
STACKED_DATASETS = {"stacked_fashion_mnist_idx": "fashion_mnist_idx", "stacked_mnist_idx": "mnist_idx"}
STACKED_EXAMPLES = {"train": 128_000, "test": 26_000}  # the protocol's sizes (PacGAN; 26k samples)
LOCAL_DATASETS = {*IDX_DATASETS, *STACKED_DATASETS}     # read from files, always held in memory
IDX_ENV = "ADEJAX_IDX_DIR"
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def channels(dataset: str) -> int:
  """Image channels of a dataset: 1 for IDX datasets, 3 for stacked ones and (almost all) TFDS ones."""
  return 1 if dataset in IDX_DATASETS or dataset in ("mnist", "fashion_mnist") else 3


class DataError(RuntimeError):
  """A dataset is missing or unreadable; the message says how to provide it."""


@dataclasses.dataclass
class ImageData:
  images: np.ndarray  # (N, H, W, C) uint8
  labels: np.ndarray  # (N,) int32; -1 for datasets without class labels (LSUN, CelebA)

  def __len__(self) -> int:
    return len(self.images)

  @property
  def has_labels(self) -> bool:
    return bool(len(self.labels)) and int(self.labels.min()) >= 0


def check_labels(data: ImageData, num_classes: int) -> None:
  """A class-conditional model (num_classes > 0) needs labels in 0..num_classes-1."""
  if not num_classes:
    return
  if not data.has_labels:
    raise DataError("config.model.num_classes > 0 asks for a class-conditional model, but this dataset "
                    "has no class labels; use num_classes=0.")
  if int(data.labels.max()) >= num_classes:
    raise DataError(f"config.model.num_classes: the dataset has labels up to {int(data.labels.max())}; "
                    f"set num_classes={int(data.labels.max()) + 1}.")


# ----------------------------------------------------------------------------- stacked datasets
class StackedImages:
  """(N, H, W, 3) uint8 images made on demand from one-channel `base` images: image i stacks
  base[triples[i]] as its three channels. Indexing (an int, a slice, an index array) returns a numpy
  array; the N stacked images are never held in memory, only the base images and the triples."""

  def __init__(self, base: np.ndarray, triples: np.ndarray):
    self.base, self.triples = base, triples
    self.shape = (len(triples), *base.shape[1:3], 3)
    self.dtype, self.ndim = np.dtype(np.uint8), 4

  def __len__(self) -> int:
    return len(self.triples)

  def __getitem__(self, key):
    if isinstance(key, tuple):
      raise TypeError("StackedImages takes one index (int, slice or index array); index the result further")
    picked = self.triples[key]                       # (..., 3) base indices
    return np.moveaxis(self.base[picked, ..., 0], -3, -1)

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self[:]
    return out if dtype is None else out.astype(dtype)


def stacking_triples(num_base: int, num_examples: int, seed: int, split: str) -> np.ndarray:
  """(num_examples, 3) base indices, uniform and independent: a pure function of (seed, split, index)
  (a prefix of one counter-based stream), so every process and every resumed run sees the same data."""
  stream = np.random.Generator(np.random.Philox(key=[seed, 0 if split == "train" else 1]))
  return stream.integers(0, num_base, (num_examples, 3), dtype=np.int64)


def load_stacked(data_config, split: str, limit: int = 0) -> ImageData:
  """The stacked version of an IDX dataset's split (the held-out version stacks test images)."""
  base = load_idx(idx_directory(STACKED_DATASETS[data_config.dataset], data_config.idx_dir), split)
  n = data_config.stacked_examples or STACKED_EXAMPLES.get(split, STACKED_EXAMPLES["test"])
  n = min(n, limit) if limit else n
  triples = stacking_triples(len(base), n, data_config.stacked_seed, split)
  images = fit_images(base.images, data_config.image_size, data_config.resize)
  labels = (base.labels[triples] * np.array([100, 10, 1])).sum(-1).astype(np.int32)
  return ImageData(StackedImages(images, triples), labels)


# ----------------------------------------------------------------------------- IDX files
def read_idx(path: str) -> np.ndarray:
  """Read one IDX file (optionally gzipped) into a numpy array."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream, an unreadable file
    raise DataError(f"{path} cannot be read ({type(e).__name__}: {e}); the file is truncated or "
                    "corrupt: re-install or re-download it.") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
  ndim = raw[3]
  dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(dims)):
    raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}.")
  return data.reshape(dims)


def idx_directory(dataset: str, configured: str = "") -> str:
  return configured or os.environ.get(IDX_ENV) or IDX_DATASETS[dataset]


def load_idx(directory: str, split: str) -> ImageData:
  if split not in IDX_FILES:
    raise DataError(f"IDX datasets have splits 'train' and 'test', not {split!r}.")
  paths = []
  for stem in IDX_FILES[split]:
    found = [os.path.join(directory, stem + ext) for ext in ("", ".gz")
             if os.path.exists(os.path.join(directory, stem + ext))]
    if not found:
      raise DataError(
          f"Missing {stem}[.gz] in {directory!r}. Install the offline default with "
          f"`apt-get install dataset-fashion-mnist`, or point config.data.idx_dir (or ${IDX_ENV}) "
          "at a folder holding the four standard IDX files.")
    paths.append(found[0])
  images, labels = read_idx(paths[0]), read_idx(paths[1])
  if images.ndim == 3:
    images = images[..., None]
  if len(images) != len(labels):
    raise DataError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels.")
  return ImageData(np.ascontiguousarray(images), labels.astype(np.int32))


# ----------------------------------------------------------------------------- TFDS
def prepared_builder(name: str, data_dir: str = ""):
  """The TFDS builder of a prepared dataset; fails at once (no network) if it is not prepared."""
  import tensorflow_datasets as tfds  # heavy import, only when needed

  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except Exception as e:  # unknown name, bad config
    reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise DataError(f"TFDS does not know the dataset {name!r} ({reason}). Check config.data.dataset: a "
                    f"TFDS name, or one of {sorted(IDX_DATASETS)} for IDX files.") from None
  if not builder.is_prepared():
    raise DataError(
        f"TFDS dataset {name!r} is not prepared under {builder.data_dir!r}, and adejax never downloads "
        f"at run time. Prepare it where there is network (`tfds build {name}`, or "
        f"`tfds.builder('{name}').download_and_prepare()`), copy the data_dir here, and pass "
        "--config.data.tfds_data_dir=DIR.")
  return builder


def check_split(builder, split: str) -> None:
  """Refuse a split string naming a split the prepared dataset does not have (one clear line)."""
  if not builder.info.splits:  # no split metadata to check against (e.g. tfds.testing.mock_data)
    return
  names = [part.split("[")[0].strip() for part in split.split("+")]
  missing = [n for n in names if n not in builder.info.splits]
  if missing:
    raise DataError(f"TFDS dataset {builder.name!r} under {builder.data_dir!r} has no split "
                    f"{missing[0]!r} (it has {sorted(builder.info.splits)}); set config.data.train_split "
                    "/ config.data.eval_split, or prepare that split.")


def load_tfds(name: str, split: str, data_dir: str = "") -> ImageData:
  """Load a prepared TFDS split (any TFDS split string, e.g. 'train[:50000]') into memory."""
  import tensorflow_datasets as tfds

  builder = prepared_builder(name, data_dir)
  check_split(builder, split)
  images, labels = [], []
  for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=4096)):
    images.append(np.asarray(batch["image"], np.uint8))
    labels.append(np.asarray(batch.get("label", np.full(len(batch["image"]), -1)), np.int32))
  images, labels = np.concatenate(images), np.concatenate(labels)
  if images.ndim == 3:
    images = images[..., None]
  return ImageData(images, labels)


# ----------------------------------------------------------------------------- resolution
def fit_images(images: np.ndarray, size: int, mode: str) -> np.ndarray:
  """Bring (N, H, W, C) uint8 images to (N, size, size, C): centre zero-padding ("pad") or centre-crop
  to a square and resize ("resize": area averaging down, bilinear up)."""
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  if mode == "pad":
    if h > size or w > size:
      raise DataError(f"Cannot pad {h}x{w} images to {size}x{size}; use data.resize='resize'.")
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(images, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return _resize_square(images[:, top:top + side, left:left + side], size).numpy()


def _resize_square(square, size: int):
  """(N, S, S, C) uint8 square images (numpy or tf, S may be dynamic) -> (N, size, size, C) uint8 tf."""
  import tensorflow as tf

  resize = lambda method: tf.image.resize(square, (size, size), method=method, antialias=True)
  out = tf.cond(tf.shape(square)[1] > size, lambda: resize("area"), lambda: resize("bilinear"))
  return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def _fit_image_tf(image, size: int, mode: str):
  """One (H, W, C) tf image of any (dynamic) size -> (size, size, C), as fit_images does for arrays
  (images larger than `size` in "pad" mode are centre-cropped)."""
  import tensorflow as tf

  if mode == "pad":
    return tf.image.resize_with_crop_or_pad(image, size, size)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.minimum(h, w)
  square = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
  return _resize_square(square[None], size)[0]


def load_split(data_config, split: str, limit: int = 0) -> ImageData:
  """The split named in the config (its first `limit` examples when limit > 0), at the model's
  resolution, in memory (a stacked dataset: its base images, stacked on demand)."""
  name = data_config.dataset
  if name in STACKED_DATASETS:
    return load_stacked(data_config, split, limit)
  if name in IDX_DATASETS:
    data = load_idx(idx_directory(name, data_config.idx_dir), split)
    if limit:
      data = ImageData(data.images[:limit], data.labels[:limit])
  else:
    data = load_tfds(name, f"{split}[:{limit}]" if limit else split, data_config.tfds_data_dir)
  native, size = data.images.shape[1], data_config.image_size
  if data_config.resize == "pad" and native != size:
    logging.warning("%s is %dx%d; padding it to %dx%d adds constant pixels, so bits/dim are per padded "
                    "dimension and NOT comparable with published %dx%d numbers.", name, native, native,
                    size, size, native, native)
  return ImageData(fit_images(data.images, size, data_config.resize), data.labels)


def stream_batches(data_config, split: str, local_batch: int, seed: int, start_step: int,
                   process_index: int = 0, process_count: int = 1,
                   shuffle_buffer: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """This process's training batches (uint8 images, int32 labels) streamed from a prepared TFDS split
  with tf.data, for datasets too large to hold in memory (ImageNet-64, LSUN, CelebA).

  Each process reads its own even share of the split; files and examples are shuffled with seeds
  derived from `seed`, deterministically, and repeated. A run resumed at `start_step` skips the
  start_step * local_batch examples it has consumed (still encoded, so the skip only reads bytes) and
  therefore sees the batches it would have seen.
  """
  import tensorflow as tf
  import tensorflow_datasets as tfds

  if data_config.dataset in LOCAL_DATASETS:
    raise DataError("config.data.stream: IDX datasets are small and always held in memory; "
                    "use data.stream=False.")
  builder = prepared_builder(data_config.dataset, data_config.tfds_data_dir)
  check_split(builder, split)
  share = tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]
  options = tf.data.Options()
  options.deterministic = True
  read_config = tfds.ReadConfig(shuffle_seed=seed, options=options, try_autocache=False)
  image_feature = builder.info.features["image"]
  has_label = "label" in builder.info.features
  ds = builder.as_dataset(split=share, shuffle_files=True, read_config=read_config,
                          decoders={"image": tfds.decode.SkipDecoding()})
  ds = ds.repeat().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.skip(start_step * local_batch)

  def decode(example):
    image = image_feature.decode_example(example["image"])
    image = _fit_image_tf(image, data_config.image_size, data_config.resize)
    label = tf.cast(example["label"], tf.int32) if has_label else tf.constant(-1, tf.int32)
    return image, label

  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  for images, labels in tfds.as_numpy(ds):
    yield images, labels


# ----------------------------------------------------------------------------- batch order
class BatchOrder:
  """Deterministic global batches: the batch of step s depends on (seed, s) alone."""

  def __init__(self, num_examples: int, global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    if global_batch % process_count:
      raise DataError(f"Global batch {global_batch} is not divisible by {process_count} processes.")
    self.n, self.batch, self.seed = num_examples, global_batch, seed
    self.local = global_batch // process_count
    self.offset = process_index * self.local
    self._epoch, self._perm = -1, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:
      self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
    return self._perm

  def local_indices(self, step: int) -> np.ndarray:
    start = step * self.batch + self.offset
    positions = np.arange(start, start + self.local)
    out = np.empty(self.local, np.int64)
    for epoch in np.unique(positions // self.n):
      sel = positions // self.n == epoch
      out[sel] = self._permutation(int(epoch))[positions[sel] % self.n]
    return out


def train_batches(data: ImageData, order: BatchOrder,
                  start_step: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """This process's training batches (uint8 images, int32 labels) from `start_step` on."""
  step = start_step
  while True:
    idx = order.local_indices(step)
    yield data.images[idx], data.labels[idx]
    step += 1


def eval_batches(data: ImageData, global_batch: int, num_examples: int = 0,
                 process_index: int = 0, process_count: int = 1):
  """Yield (local images, local labels, local weights) over the first `num_examples` (0 = all) in order.

  The last batch is padded with copies of the first image and weight 0, so every batch has the
  same shape (one compilation) and weighted averages are exact.
  """
  n = min(num_examples or len(data), len(data))
  local = global_batch // process_count
  for start in range(0, n, global_batch):
    idx = np.arange(start, start + global_batch)
    weights = (idx < n).astype(np.float32)
    idx = np.where(idx < n, idx, 0)
    sl = slice(process_index * local, (process_index + 1) * local)
    yield data.images[idx[sl]], data.labels[idx[sl]], weights[sl]
