"""The family contract (families/base.py): a family written and registered inside this test module, and
touching no other file, gets a config section with validation, trains, evaluates, samples and runs as a
sweep member whose row the results tables hold."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from adejax import config_lib, families, input_pipeline, losses, main, results, sweep
from adejax.experiment import Member
from adejax.families import base


class ToyModel(nn.Module):
  """A per-pixel Gaussian in y-space with a learned mean image and one learned sigma."""
  image_shape: tuple
  log_sigma_init: float

  @nn.compact
  def __call__(self, y, rng=None, train=True, labels=None):
    del rng, train, labels
    b = y.shape[0]
    mean = self.param("mean", nn.initializers.constant(0.5), self.image_shape)
    log_sigma = self.param("log_sigma", nn.initializers.constant(self.log_sigma_init), ())
    flat = lambda a: jnp.broadcast_to(a, y.shape).reshape(b, -1)
    zero = jnp.zeros((b,))
    return {"features": y.reshape(b, -1), "mean": flat(mean), "log_sigma": flat(log_sigma), "kl": zero,
            "log_q": zero, "log_p": zero, "logdet": zero, "flow_logdet": zero}

  def _mean(self, b):
    return jnp.broadcast_to(self.variables["params"]["mean"], (b,) + tuple(self.image_shape))

  def generate(self, rng, batch, temperature=1.0, noise=True, labels=None, train=False):
    sigma = jnp.exp(self.variables["params"]["log_sigma"])
    return self._mean(batch) + temperature * sigma * jax.random.normal(rng, (batch,) + tuple(self.image_shape))

  def reconstruct(self, y, rng, labels=None):
    return self._mean(y.shape[0])

  def interpolate(self, y_a, y_b, steps, labels=None):
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None, None, None]
    return y_a[:, None] * (1 - t) + y_b[:, None] * t


class ToyFamily(base.Family):

  @staticmethod
  def config_section():
    s = ml_collections.ConfigDict()
    s.log_sigma_init = -1.0  # the toy's initial log sigma
    return "toy", s

  @staticmethod
  def validate(c):
    base.check(c.toy.log_sigma_init < 3.0, "toy.log_sigma_init", "must be below 3")

  @staticmethod
  def results_mode(config):
    return "toy"

  def __init__(self, config, image_shape):
    self.image_shape = tuple(image_shape)
    self.model = ToyModel(self.image_shape, float(config.toy.log_sigma_init))
    self.groups = {"toy": base.Group("params", base.make_optimizer(config.optim))}
    self.label = "toy"

  def init(self, rng):
    return self.model.init(rng, jnp.zeros((1,) + self.image_shape))["params"], {}, {}

  def train_step(self, state, images, labels, rng, constrain, phase):
    y = losses.dequantize(images, rng)

    def loss_fn(params):
      out = self.model.apply({"params": params}, y)
      per_example, terms = losses.coverage_loss(out)
      return jnp.mean(per_example), losses.coverage_metrics(out, per_example, terms)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state, _ = base.update_group(state, self.groups, "toy", grads, loss)
    return state, {**metrics, "generator_loss": loss}


@pytest.fixture
def toy_registered(monkeypatch):
  monkeypatch.setitem(families.REGISTRY, "toy", (__name__, "ToyFamily"))


def toy_config(fashion_mnist_dir, tmp_path):
  c = config_lib.base_config()
  c.model.family = "toy"
  c.data.idx_dir = fashion_mnist_dir
  config_lib.make_tiny(c, num_steps=20)
  c.optim.lr = 0.05
  c.eval.feature_cache_dir = str(tmp_path / "cache")
  c.eval.num_mode_samples = 0
  config_lib.validate(c)
  return c


def test_a_family_of_this_file_trains_evaluates_samples_and_sweeps(toy_registered, fashion_mnist_dir, tmp_path):
  c = toy_config(fashion_mnist_dir, tmp_path)
  assert c.toy.log_sigma_init == -1.0  # its section is in the schema
  with pytest.raises(config_lib.ConfigError, match="config.toy.log_sigma_init: must be below 3"):
    bad = config_lib.base_config()
    bad.model.family, bad.toy.log_sigma_init = "toy", 5.0
    config_lib.validate(bad)
  workdir = str(tmp_path / "toy")
  metrics = sweep.run_member(Member("toy", c), workdir)  # trains 20 steps, then evaluates
  assert metrics["step"] == 20 and np.isfinite(metrics["bpd_elbo"]) and np.isfinite(metrics["fid_domain"])
  fam = families.make(c, (c.data.image_size, c.data.image_size, 1))
  test = input_pipeline.load_split(c.data, "test", limit=c.eval.num_examples)
  y = (jnp.asarray(test.images, jnp.float32) + 0.5) / 256.0
  untrained = losses.heldout_nll(fam.init(jax.random.key(0))[0], {}, y, jax.random.key(1), model=fam.model)
  untrained_bpd = float(jnp.mean(losses.bits_per_dim(untrained["elbo"], y[0].size)))
  print(f"held-out bits/dim: untrained {untrained_bpd:.2f}, after 20 steps {metrics['bpd_elbo']:.2f}")
  assert metrics["bpd_elbo"] < untrained_bpd - 0.5  # it learned
  paths = main.run(config_lib.load_run_config(workdir), workdir, "sample")
  assert all(os.path.exists(p) for p in paths) and any(p.endswith(".npz") for p in paths)
  (row,) = results.collect([Member("toy", c)], str(tmp_path))
  assert row["mode"] == "toy" and row["bpd_elbo"] == metrics["bpd_elbo"]
  assert os.path.exists(tmp_path / "results.md")
