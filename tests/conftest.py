"""Test set-up: 4 virtual CPU devices (set before jax is imported), quiet TensorFlow, no persistent
compilation cache, and each test file's compiled programs released when it ends."""
import gc
import os
import subprocess
import sys

# Tests compile many small programs and run each a few times, so XLA:CPU's compile time dominates. Its
# backend optimisations off (one tiny AV-ADE step: 132 s to compile and run at the default, 42 s without
# them), and its older loop emitters instead of the fusion emitters (the same step's backend compilation
# 22 s -> 9 s on one core; the whole suite 30:47 -> 18:33 on the 2 cores). Steps run up to 7x slower, so
# a test whose time is in running steps starts a process without these (test_critic.py).
# (A test worker once crashed with SIGSEGV in a GAN step compiled with the loop emitters, on 2026-12-05,
# while other changes were in flight; it did not recur in three full runs on 2026-12-06. If it does, set
# ADEJAX_TEST_XLA_FLAGS to the first two flags alone: the suite is slower by a third, not wrong.)
# Newer jaxlibs (0.12) no longer have the loop emitters and abort at an unknown XLA flag, so that flag
# is used only where this jaxlib accepts it (one probe process, in the xdist master; workers inherit it).
# Subprocesses the tests start (CLI runs, notebook kernels, multi-process workers) read this too.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
LOOP_EMITTERS = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flags: str) -> bool:
  """Whether this jaxlib's XLA starts with `flags` (it aborts a process at a flag it does not know)."""
  probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], capture_output=True,
                         env={**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}, timeout=300)
  return probe.returncode == 0


if "ADEJAX_TEST_XLA_FLAGS" not in os.environ:
  both = f"{FAST_COMPILE} {LOOP_EMITTERS}"
  os.environ["ADEJAX_TEST_XLA_FLAGS"] = both if _xla_accepts(both) else FAST_COMPILE
os.environ["XLA_FLAGS"] = " ".join(filter(None, (
    os.environ.get("XLA_FLAGS", "--xla_force_host_platform_device_count=4"),
    os.environ["ADEJAX_TEST_XLA_FLAGS"])))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No persistent compilation cache, here or in any subprocess (CLI runs, notebook kernels, workers): XLA:CPU
# executables written to or read from it crashed test workers with SIGSEGV
# (compilation_cache.get_executable_and_time / put_executable_and_time in jaxlib 0.10.2), and an xdist
# master whose worker crashed could hang until CI's limit. Each test file compiles its own.
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Each test file's compiled programs are released when the file ends. A worker used to keep every
  file's executables: 8-9 GB per worker by the end of the suite, and two workers plus the fault tests'
  subprocesses neared the machine's 24 GB."""
  yield
  from adejax import train
  train.clear_compiled_cache()
  jax.clear_caches()
  gc.collect()


@pytest.fixture
def fashion_mnist_dir():
  if not os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
    pytest.skip("Debian's dataset-fashion-mnist is not installed (`.ci/run` installs it).")
  return FASHION_MNIST


@pytest.fixture(scope="session")
def prepared_tfds_dir(tmp_path_factory):
  """A real TFDS dataset prepared on disk (no network): 64 non-square images whose pixel value is
  their index, in 4 shards, with labels = index mod 4."""
  import tensorflow_datasets as tfds

  class AdejaxTinyStream(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3)),
          "label": tfds.features.ClassLabel(num_classes=4)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(64), "test": self._generate_examples(8)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, {"image": np.full((12 + i % 3, 10, 3), i, np.uint8), "label": i % 4}

  path = str(tmp_path_factory.mktemp("tfds"))
  builder = AdejaxTinyStream(data_dir=path)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(max_shard_size=400))
  return path, builder.name


# The longest test files, started first: with one test file per worker, a long file scheduled last runs
# alone on one core while the other idles (the kill/resume test alone takes about 3.5 minutes).
LONGEST_FIRST = ("faults/test_kill_resume.py", "test_critic.py", "faults/test_recovery.py")


def pytest_collection_modifyitems(config, items):
  del config
  rank = lambda item: next((i for i, name in enumerate(LONGEST_FIRST)
                            if item.nodeid.startswith("tests/" + name)), len(LONGEST_FIRST))
  items.sort(key=rank)  # stable: the order within each file, and of the other files, is kept
