"""Test set-up: 4 virtual CPU devices (set before jax is imported), quiet TensorFlow, and a persistent
compilation cache so the few distinct train steps compile once per machine rather than once per test."""
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("ADEJAX_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "adejax_jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def fashion_mnist_dir():
  if not os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
    pytest.skip("Debian's dataset-fashion-mnist is not installed (`.ci/run` installs it).")
  return FASHION_MNIST
