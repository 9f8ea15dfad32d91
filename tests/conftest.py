"""Test set-up: 4 virtual CPU devices (set before jax is imported), quiet TensorFlow, and a persistent
compilation cache so the few distinct train steps compile once per machine rather than once per test."""
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# One cache per jax/jaxlib version and per pytest-xdist worker: CI runs the suite under two Pythons with
# different jax releases, and workers must not read each other's half-written entries. (A crash of the
# disk-full fault test in compilation_cache.get_executable_and_time persisted after this split: open.)
import jaxlib  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.path.join(
    os.environ.get("ADEJAX_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "adejax_jax_cache")),
    f"jax{jax.__version__}_jaxlib{jaxlib.__version__}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


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
