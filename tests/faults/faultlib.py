"""Shared by the fault-injection suite: launch the real command lines in subprocesses (with a fault
planned through ADEJAX_FAULT, see adejax/faults.py), read checkpoints, make small real datasets."""
import os
import subprocess
import sys

import numpy as np

from adejax import input_pipeline
from test_input_pipeline import write_idx  # tests/ is on the path (its conftest)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def small_idx_dir(path, n_train=64, n_test=16) -> str:
  """The first images of real Fashion-MNIST (random images where Debian's package is missing)."""
  os.makedirs(path, exist_ok=True)
  for split, n in (("train", n_train), ("test", n_test)):
    names = input_pipeline.IDX_FILES[split]
    if os.path.exists(os.path.join(FASHION_MNIST, names[0] + ".gz")):
      data = input_pipeline.load_idx(FASHION_MNIST, split)
      images, labels = data.images[:n, ..., 0], data.labels[:n]
    else:
      rng = np.random.default_rng(0)
      images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
    write_idx(os.path.join(path, names[0]), images)
    write_idx(os.path.join(path, names[1]), labels)
  return str(path)


def env(fault: str = "", compilation_cache: str = "") -> dict:
  """The subprocess environment: one CPU device, conftest's compile flags and settings, the planned
  fault, and (only when given) a persistent compilation cache folder (see `refill_cache`)."""
  e = dict(os.environ)
  e["XLA_FLAGS"] = os.environ.get("ADEJAX_TEST_XLA_FLAGS", "")  # conftest's; one device
  e.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", ADEJAX_FAULT=fault, PYTHONPATH=ROOT)
  if compilation_cache:
    e.update(JAX_ENABLE_COMPILATION_CACHE="true", JAX_COMPILATION_CACHE_DIR=compilation_cache,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  return e


def refill_cache(warm: str, path: str) -> str:
  """Make the compilation cache folder `path` a fresh copy of `warm` (what a launch that finished
  cleanly with its cache at the same `path` filled), and return `path`.

  Many launches of one config (the kill/resume test's ten) then compile nothing: most of a tiny AV-ADE
  launch's time. The path must be the one the warm launch used: JAX puts the cache folder's path into
  every cache key (as xla_gpu_per_fusion_autotune_cache_dir, even on CPU), so a copy elsewhere never
  hits. Each launch starts from a fresh copy because JAX writes cache entries in place, not atomically:
  a launch killed mid-write (or a full disk) leaves a truncated entry, and reading one crashed processes
  with SIGSEGV (jaxlib 0.10.2; why conftest switches the cache off everywhere else). `warm` is only read."""
  import shutil

  shutil.rmtree(path, ignore_errors=True)
  shutil.copytree(warm, path)
  return path


def launch(*args, module="adejax.main", fault="", timeout=300,
           compilation_cache="") -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        env=env(fault, compilation_cache), capture_output=True, text=True, timeout=timeout)


def error_lines(result, program="adejax") -> list[str]:
  return [l for l in result.stderr.splitlines() if l.startswith(f"{program}: ")]


def checkpoint_steps(workdir) -> list[int]:
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


def load_checkpoint(workdir, step) -> dict:
  """A checkpoint's arrays as a flat {path: numpy array}, read without a template."""
  import jax
  import orbax.checkpoint as ocp

  tree = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "default"))
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def assert_identical(a: dict, b: dict):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
