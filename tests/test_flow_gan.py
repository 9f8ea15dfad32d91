"""Flow-GAN (families/flow_gan.py): its likelihood is the Glow family's, its weight routes the likelihood
gradient, and on real data its discriminator leads while the exact bound stays finite."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import config_lib, families, input_pipeline, losses, train
from configs import cifar_flow_gan, cifar_glow

SHAPE = (16, 16, 3)


def tiny(variant=""):
  c = cifar_flow_gan.get_config(",".join(filter(None, [variant, "tiny"])))
  config_lib.validate(c)
  return c


def batch(seed, n=8, shape=SHAPE):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n,) + shape).astype(np.float32) + rng.uniform(size=(n,) + shape)) / 256.0


def test_its_likelihood_is_the_glow_familys_for_the_same_parameters():
  """The same Glow parameters give the same per-example -log p(y) (and held-out bound) in both families:
  Flow-GAN's bits/dim are the Glow's exact ones, whatever its adversary did to the parameters."""
  glow_config = cifar_glow.get_config("tiny")
  glow_config.glow.coupling = "additive"  # (Flow-GAN's config chooses additive couplings)
  assert glow_config.glow.to_dict() == tiny().glow.to_dict()
  glow_family = families.make(glow_config, SHAPE)
  flow_gan = families.make(tiny(), SHAPE)
  params, _, _ = jax.jit(glow_family.init)(jax.random.key(0))
  params = jax.tree.map(lambda p: p + 0.01 * jax.random.normal(jax.random.key(1), p.shape), params)  # not the identity
  y = jnp.asarray(batch(0))
  nll = lambda fam: jax.jit(lambda p: losses.heldout_nll(p, {}, y, jax.random.key(2), model=fam.model))(params)
  a, b = nll(glow_family), nll(flow_gan)
  np.testing.assert_allclose(np.asarray(a["elbo"]), np.asarray(b["elbo"]), rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(a["elbo"])))
  assert flow_gan.has_likelihood(tiny()) and flow_gan.has_likelihood(tiny("a"))  # exact, even FlowGAN(A)
  assert families.family_class(tiny()).results_mode(tiny("a")) == "flow_gan/a"


def test_the_likelihood_weight_routes_the_likelihood_gradient():
  """The generator's gradient with likelihood_weight 0 does not depend on the real batch (the
  likelihood gradient is zero: FlowGAN(A)); with weight w it is that gradient plus w times the gradient
  of the Glow's mean NLL (computed here from the model's own terms)."""
  c = tiny()
  fam = families.make(c, SHAPE)
  params, _, disc_params = jax.jit(fam.init)(jax.random.key(0))
  y1, y2, rng = jnp.asarray(batch(1)), jnp.asarray(batch(2)), jax.random.key(3)

  def grad(weight):
    fam.likelihood_weight = weight  # (read when traced)
    return jax.jit(jax.grad(lambda p, y: fam.generator_objective(p, disc_params, y, rng)[0]))

  grad0 = grad(0.0)
  g0_y1, g0_y2, g3_y1 = grad0(params, y1), grad0(params, y2), grad(3.0)(params, y1)
  nll_grad = jax.jit(jax.grad(lambda p: jnp.mean(losses.coverage_loss(fam.model.apply({"params": p}, y1))[0])))(
      params)
  for a, b in zip(jax.tree.leaves(g0_y1), jax.tree.leaves(g0_y2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(nll_grad)) > 1e-3
  for w3, w0, n in zip(jax.tree.leaves(g3_y1), jax.tree.leaves(g0_y1), jax.tree.leaves(nll_grad)):
    np.testing.assert_allclose(np.asarray(w3), np.asarray(w0 + 3.0 * n), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_few_dozen_steps_on_real_fashion_mnist_with_the_discriminator_leading(fashion_mnist_dir):
  """FlowGAN(H) at test width on real Fashion-MNIST (28x28, as `--scale=small` runs it): after the
  actnorm initialisation and 40 steps the discriminator classifies most real and generated images right,
  the penalty and the exact bound stay finite, and the bound fell."""
  from adejax import experiment

  c = experiment.apply_scale(cifar_flow_gan.get_config(), "small")
  c.data.idx_dir = fashion_mnist_dir
  c.glow.depth, c.glow.width = 2, 16
  c.model.disc_width = 0.125
  c.train.batch_size = 32
  config_lib.validate(c)
  data = input_pipeline.load_split(c.data, "train", limit=2048)
  trainer = train.Trainer(c, data.images.shape[1:], devices=jax.devices()[:1])
  order = input_pipeline.BatchOrder(len(data), c.train.batch_size, c.seed)
  state, history = trainer.init_state(0), []
  for _, (images, _) in zip(range(40), input_pipeline.train_batches(data, order, 0)):
    state, metrics = trainer.step(state, trainer.global_batch(images))
    history.append(jax.device_get(metrics))
  last = history[-10:]
  accuracy = np.mean([m["disc_accuracy"] for m in last])
  print(f"bpd {history[0]['bpd']:.2f} -> {history[-1]['bpd']:.2f}, last 10 steps: discriminator "
        f"accuracy {accuracy:.2f}")
  assert accuracy > 0.6
  assert all(np.isfinite(m["gradient_penalty"]) and np.isfinite(m["bpd"]) for m in history)
  assert np.mean([m["bpd"] for m in last]) < history[1]["bpd"]
  assert int(state.skipped) == 0
  held_out = trainer.evaluate(state, input_pipeline.load_split(c.data, "test", limit=64), batch_size=32)
  assert np.isfinite(held_out["bpd_elbo"])
