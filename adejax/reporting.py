"""What the user sees: clu metric writers (TensorBoard + console), progress with ETA, image grids as PNG."""
from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
from absl import logging
from PIL import Image


class _LibraryInfoFilter:
  """Drops INFO records logged from inside orbax (dozens per checkpoint) and TFDS (its search for a
  dataset's files); warnings still pass."""

  def filter(self, record) -> bool:
    return record.levelno >= 30 or not any(f"/{lib}/" in record.pathname
                                           for lib in ("orbax", "tensorflow_datasets"))


def quiet_library_logs() -> None:
  import logging as std_logging

  from absl import logging as absl_logging

  absl_logging.get_absl_handler().addFilter(_LibraryInfoFilter())
  std_logging.getLogger("absl").addFilter(_LibraryInfoFilter())


def count_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
  """(N, H, W, C) floats in [0,1] or uint8 -> one (rows*H, cols*W, 3) uint8 grid. Non-finite pixels
  (a numerically unstable sampler) are drawn magenta, so they are seen rather than cast at random."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    bad = ~np.isfinite(images)
    images = np.round(np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    if bad.any():
      images = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
      images[bad.any(axis=-1)] = (255, 0, 255)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, q = divmod(i, ncols)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
  return grid


def side_by_side(real: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
  """Interleave real images and their reconstructions (real | reconstruction pairs)."""
  real = np.asarray(real, np.float32) / (255.0 if np.asarray(real).dtype == np.uint8 else 1.0)
  out = np.empty((2 * len(real),) + real.shape[1:], np.float32)
  out[0::2], out[1::2] = real, reconstructed
  return out


def save_png(path: str, images: np.ndarray, ncols: int | None = None) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(image_grid(images, ncols)).save(path)
  return path


def write_text_atomically(path: str, text: str) -> None:
  """Write `path` so that a kill at any moment leaves the old file or the new one, never half of it."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def save_config(config, workdir: str) -> None:
  if jax.process_index() == 0:
    write_text_atomically(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))


def write_json(path: str, payload: dict) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True))


def cached_json(path: str, compute) -> dict:
  """`compute()`'s dict, computed once and kept as JSON at `path` (written atomically); an unreadable
  cache file is computed again and replaced."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    pass
  except (OSError, ValueError) as e:
    logging.warning("Cache %s is unreadable (%s): computing it again.", path, e)
  payload = compute()
  write_json(path, payload)
  return payload


class Reporter:
  """TensorBoard + console scalars on process 0, progress/ETA, and image grids under workdir/samples."""

  def __init__(self, workdir: str, num_steps: int, start: int = 0, progress_bar: bool = False):
    # clu's writers import TensorFlow (its summary writer): only a training run needs them, so the
    # model, the step and the benchmark import on machines without TensorFlow (e.g. a GPU image).
    from clu import metric_writers, periodic_actions

    self.workdir = workdir
    self.main = jax.process_index() == 0
    self.writer = metric_writers.create_default_writer(workdir, just_logging=not self.main)
    self.progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=self.writer,
                                                    every_secs=30.0)
    self.bar = None
    if progress_bar and self.main:  # a notebook's (or terminal's) bar with the latest train/eval bpd
      from tqdm.auto import tqdm

      self.bar = tqdm(total=num_steps, initial=start, unit="step", desc="training")

  def tick(self, step: int) -> None:
    self.progress(step)
    if self.bar is not None:
      self.bar.update(step - self.bar.n)

  def scalars(self, step: int, values: dict, prefix: str) -> None:
    self.writer.write_scalars(step, {f"{prefix}/{k}": v for k, v in values.items()})
    if self.bar is not None:
      shown = {k: v for k, v in values.items() if k in ("bpd", "bpd_elbo", "disc_accuracy")}
      self.bar.set_postfix({f"{prefix}/{k}": f"{float(v):.3f}" for k, v in shown.items()}, refresh=False)

  def images(self, step: int, named: dict[str, np.ndarray]) -> None:
    if not self.main:
      return
    for name, images in named.items():
      path = save_png(os.path.join(self.workdir, "samples", f"{name}_{step:07d}.png"), images)
      self.writer.write_images(step, {name: image_grid(images)[None]})
      logging.info("Wrote %s", path)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
    self.writer.flush()
    self.writer.close()
