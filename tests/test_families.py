"""The family contract (families/base.py): a family written and registered inside this test module, and
touching no other file, gets a config section with validation, trains, evaluates, samples and runs as a
sweep member whose row the results tables hold."""
import copy
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from adejax import config_lib, families, input_pipeline, losses, main, results, sweep, train
from adejax.experiment import Member
from adejax.families import base
from adejax.models import contract, hybrids


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
  y = losses.pixel_centres(test.images)
  untrained = losses.heldout_nll(fam.init(jax.random.key(0))[0], {}, y, jax.random.key(1), model=fam.model)
  untrained_bpd = float(jnp.mean(losses.bits_per_dim(untrained["elbo"], y[0].size)))
  print(f"held-out bits/dim: untrained {untrained_bpd:.2f}, after 20 steps {metrics['bpd_elbo']:.2f}")
  assert metrics["bpd_elbo"] < untrained_bpd - 0.5  # it learned
  paths = main.run(config_lib.load_run_config(workdir), workdir, "sample")
  assert all(os.path.exists(p) for p in paths) and any(p.endswith(".npz") for p in paths)
  (row,) = results.collect([Member("toy", c)], str(tmp_path))
  assert row["mode"] == "toy" and row["bpd_elbo"] == metrics["bpd_elbo"]
  assert os.path.exists(tmp_path / "results.md")


def contract_configs():
  """The plainest :tiny row of each distinct family and mode (tools/config_digest.py), and every hybrid
  model (they share one row there)."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
  import config_digest

  out = {}
  for key, (name, variant) in sorted(config_digest.distinct_rows().items()):
    c = config_digest.load(name, ",".join(filter(None, [variant, "tiny"])))
    if c.model.family != "hybrid":
      out["/".join(key)] = c
      continue
    for model in hybrids.MODELS:
      h = copy.deepcopy(c)
      h.hybrid.model = model
      config_lib.validate(h)
      out[f"hybrid/{model}"] = h
  return out


def test_every_familys_model_keeps_the_contract():
  """adejax/models/contract.py for every family and mode, traced with jax.eval_shape (nothing compiled):
  the likelihood pass returns TERMS (and maybe terms its own family reads) with per-example terms of
  shape (B,), and `generate`,
  `reconstruct` and `interpolate` give images of the documented shapes when called as `train.Trainer`
  calls them."""
  configs = contract_configs()
  assert len(configs) >= 17, sorted(configs)  # 5 ADE modes, 4 papers/003 rows, 7 hybrids, Flow-GAN
  b, n, steps = 2, 3, 4
  extras = {}
  for name, c in configs.items():
    shape = (c.data.image_size, c.data.image_size, input_pipeline.channels(c.data.dataset))
    fam = families.make(c, shape)
    assert isinstance(fam.model, contract.GenerativeModel), name
    params, batch_stats, _ = jax.eval_shape(fam.init, jax.random.key(0))
    variables = {"params": params, "batch_stats": batch_stats}
    y = jax.ShapeDtypeStruct((b,) + shape, jnp.float32)
    labels = jnp.zeros((b,), jnp.int32) if c.model.num_classes else None
    rng = jax.random.key(1)

    def call(method, *args, **kw):  # arrays traced, Python numbers static
      traced = [i for i, a in enumerate(args) if isinstance(a, (jax.ShapeDtypeStruct, jax.Array))]

      def apply(v, *arrays):
        full = list(args)
        for i, a in zip(traced, arrays):
          full[i] = a
        return fam.model.apply(v, *full, method=method, **kw)
      return jax.eval_shape(apply, variables, *[args[i] for i in traced])

    out = call("__call__", y, rng, train=False, labels=labels)
    assert set(contract.TERMS) <= set(out), (name, sorted(out))
    for k in set(out) - set(contract.TERMS):
      extras.setdefault(k, []).append(name)
    for k in contract.PER_EXAMPLE:
      assert out[k].shape == (b,), (name, k, out[k].shape)
    assert out["features"].shape == out["mean"].shape and out["mean"].shape[0] == b, name
    np.broadcast_shapes(out["log_sigma"].shape, out["mean"].shape)  # broadcastable to the mean
    gen_labels = None if labels is None else jnp.zeros((n,), jnp.int32)
    assert call("generate", rng, n, 1.0, labels=gen_labels).shape == (n,) + shape, name
    assert call("reconstruct", y, rng, labels).shape == (b,) + shape, name
    assert call("interpolate", y, y, steps, labels).shape == (b, steps) + shape, name
  print("terms of the families' own:", extras)


def test_a_model_without_the_contracts_methods_is_refused_and_missing_terms_are_named():
  class NoSampler(nn.Module):
    @nn.compact
    def __call__(self, y, rng=None, train=True, labels=None):
      return {"features": y, "mean": y}

  class BareFamily(ToyFamily):
    def __init__(self, config, image_shape):
      super().__init__(config, image_shape)
      self.model = NoSampler()

  assert isinstance(ToyModel((4, 4, 1), 0.0), contract.GenerativeModel)
  assert not isinstance(NoSampler(), contract.GenerativeModel)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(sys.modules[__name__], "BareFamily", BareFamily, raising=False)
    mp.setitem(families.REGISTRY, "toy", (__name__, "BareFamily"))
    c = config_lib.base_config()
    c.model.family = "toy"
    config_lib.make_tiny(c, num_steps=2)
    with pytest.raises(TypeError, match=r"lacks \['generate', 'reconstruct', 'interpolate'\]"):
      train.Trainer(c, (16, 16, 1), devices=jax.devices()[:1])
  y = jnp.zeros((2, 4, 4, 1))
  with pytest.raises(KeyError, match=r"NoSampler's likelihood pass .* lacks \['log_sigma', 'kl'"):
    losses.heldout_nll({}, {}, y, jax.random.key(0), model=NoSampler())
