"""Latent-use instruments (evaluation/latents.py, Trainer.latent_use) against known answers, free bits
against their definition, and latent use on real data."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import config_lib, input_pipeline, losses, train
from adejax.evaluation import latents
from configs import default


def test_active_units_of_an_encoder_that_copies_k_dimensions_is_k():
  x = np.random.default_rng(0).normal(size=(500, 10))
  for k in (0, 3, 10):
    means = np.concatenate([x[:, :k], np.full((500, 10 - k), 0.7)], axis=1)  # the rest: constant
    assert latents.active_units(means) == k
  # the threshold is on the variance: units of std 0.05 (var 0.0025) are inactive, std 0.2 active
  assert latents.active_units(np.concatenate([0.05 * x[:, :4], 0.2 * x[:, 4:]], 1)) == 6


def test_psnr_of_identical_images_is_infinite_and_of_known_noise_its_closed_form():
  rng = np.random.default_rng(0)
  images = rng.uniform(0.2, 0.8, (6, 5, 5, 1))
  assert latents.psnr(images, images) == math.inf
  for s in (0.01, 0.1):
    signs = np.where(rng.uniform(size=images.shape) < 0.5, -1.0, 1.0)  # MSE exactly s^2
    np.testing.assert_allclose(latents.psnr(images, images + s * signs), 10 * math.log10(1 / s ** 2),
                               rtol=1e-9)
  # uint8 images are read in [0, 1]: a 255-scale error of 51 is 0.2
  u8 = rng.integers(0, 200, (3, 4, 4, 1)).astype(np.uint8)
  np.testing.assert_allclose(latents.psnr(u8, u8 / 255.0 + 0.2), 10 * math.log10(1 / 0.04), rtol=1e-9)


def test_reconstruction_accuracy_of_an_identity_model_is_the_accuracy_on_real_images():
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (200, 4, 4, 1)).astype(np.uint8)
  labels = rng.integers(0, 2, 200)
  # a fixed classifier: class 1 when the mean intensity is above the median; right on ~half the images
  logits = lambda x: np.stack([np.zeros(len(x)), np.asarray(x, np.float32).mean((1, 2, 3)) - 127.5], -1)
  kl = rng.uniform(size=(200, 2))
  means = [rng.normal(size=(200, 3)), np.zeros((200, 5))]
  m = latents.latent_metrics(images, labels, images / 255.0, kl, means, logits)
  assert m["recon_accuracy_domain"] == m["real_accuracy_domain"]
  assert m["real_accuracy_domain"] == latents.classifier_accuracy(logits, images, labels)
  assert 0.3 < m["real_accuracy_domain"] < 0.7  # not a degenerate all-right / all-wrong case
  assert m["recon_psnr"] > 50  # identical up to the uint8 -> float division
  np.testing.assert_allclose(m["kl_bits_level1"], kl[:, 1].mean() / math.log(2))
  np.testing.assert_allclose(m["kl_bits_per_image"], kl.sum(1).mean() / math.log(2))
  assert m["active_units"] == 3 and m["latent_units"] == 8
  assert m["active_units_level0"] == 3 and m["active_units_level1"] == 0
  # a model whose reconstructions are all one image keeps no class information
  flat = latents.latent_metrics(images, labels, np.repeat(images[:1] / 255.0, 200, 0), kl,
                                [np.zeros((200, 3)), np.zeros((200, 5))], logits)
  assert flat["active_units"] == 0
  assert flat["recon_accuracy_domain"] == pytest.approx(np.mean(labels == np.argmax(logits(images[:1]))))


def test_free_bits_floor_each_channel_and_stop_its_gradient():
  kl = jnp.array([[0.0, 2.0, 5.0], [0.2, 4.0, 7.0]])  # batch means 0.1, 3.0, 6.0
  np.testing.assert_allclose(losses.free_bits_kl(kl, 1.0), 1.0 + 3.0 + 6.0)
  np.testing.assert_allclose(losses.free_bits_kl(kl, 4.0), 4.0 + 4.0 + 6.0)
  np.testing.assert_allclose(losses.free_bits_kl(kl, 0.0), kl.mean(0).sum())
  grad = jax.grad(lambda k: losses.free_bits_kl(k, 4.0))(kl)
  np.testing.assert_allclose(grad, [[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]])  # only the channel above 4
  # the training objective: L_C with its KL replaced by the floored KL; without free bits L_C itself
  per_example = jnp.array([10.0, 20.0])
  out = {"kl": kl.sum(1), "kl_channels": kl}
  np.testing.assert_allclose(losses.training_coverage_loss(per_example, out), 15.0)
  np.testing.assert_allclose(losses.training_coverage_loss(per_example, out, free_bits=4.0),
                             15.0 - float(kl.sum(1).mean()) + 14.0, rtol=1e-6)


def test_hierarchical_vae_reports_per_channel_kls_that_sum_to_its_kl():
  c = default.get_config("tiny")
  trainer = train.Trainer(c, (16, 16, 1), devices=jax.devices()[:1])
  state = trainer.init_state(0)
  leaves, tree = jax.tree.flatten(state.params)  # posteriors away from the prior
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  y = jax.random.uniform(jax.random.key(0), (4, 16, 16, 1))
  apply = jax.jit(trainer.model.apply, static_argnames=("train", "method"))
  out = apply({"params": params, "batch_stats": state.batch_stats}, y, jax.random.key(1), train=False)
  # one group for the global latent vector, then one per channel of each spatial level
  assert out["kl_channels"].shape == (4, 1 + c.model.latent_levels * c.model.latent_channels)
  np.testing.assert_allclose(out["kl_channels"].sum(-1), out["kl"], rtol=1e-5)
  assert float(out["kl"].min()) > 1.0
  diag = apply({"params": params, "batch_stats": state.batch_stats}, y, jax.random.key(1),
               method="latent_diagnostics")
  np.testing.assert_allclose(diag["kl"].sum(-1), out["kl"], rtol=1e-5)  # the same posterior sample
  assert [m.shape for m in diag["means"]] == [(4, c.model.global_latent_dim), (4, 2 * 2 * 4), (4, 4 * 4 * 4)]


def test_free_bits_apply_to_the_hierarchical_vae_only():
  from adejax.families import ade as family_ade
  c = default.get_config("tiny")
  assert family_ade.StepConfig.from_config(c).free_bits == 4.0
  c.mode, c.model.generator = "vae", "vector"  # BPD for a GAN: the GAN's generator, the plain ELBO
  config_lib.validate(c)
  assert family_ade.StepConfig.from_config(c).free_bits == 0.0
  c.loss.free_bits = -1.0
  with pytest.raises(config_lib.ConfigError, match="loss.free_bits"):
    config_lib.validate(c)


@pytest.mark.slow
def test_a_tiny_vae_on_real_fashion_mnist_uses_its_latents(fashion_mnist_dir):
  """A few hundred steps of the tiny VAE: each held-out reconstruction is closer to its own image than
  to the other images of its batch, and latent units are active."""
  c = default.get_config("tiny")
  c.mode, c.train.ema_decay = "vae", 0.0
  c.data.idx_dir, c.data.image_size, c.data.resize = fashion_mnist_dir, 28, "pad"
  c.model.width, c.train.batch_size = 0.125, 32
  config_lib.validate(c)
  data = input_pipeline.load_split(c.data, "train", limit=4096)
  test = input_pipeline.load_split(c.data, "test", limit=64)
  trainer = train.Trainer(c, data.images.shape[1:], devices=jax.devices()[:1])
  state = trainer.init_state(0)
  rng = np.random.default_rng(0)
  for _ in range(300):
    state, _ = trainer.step(state, trainer.global_batch(data.images[rng.integers(0, len(data), 32)]))
  rec = trainer.reconstruct(state, test.images)
  real = test.images.astype(np.float32) / 255.0
  dist = np.mean(np.square(rec[:, None] - real[None]), axis=(2, 3, 4))  # (reconstruction, image)
  own, other = np.diag(dist), (dist.sum(1) - np.diag(dist)) / (len(dist) - 1)
  assert np.mean(np.argmin(dist, axis=1) == np.arange(len(dist))) > 0.5
  assert np.all(own < other)
  m = trainer.latent_use(state, test, 64)
  assert m["active_units"] > 0 and m["kl_bits_per_image"] > 10


def test_the_global_latent_conditions_the_spatial_priors_and_is_the_top_posterior():
  """z_g ~ N(0, I) above the spatial levels (model.global_latent_dim): the lowest level's prior is no
  longer N(0, I) but a function of z_g; its posterior is the one papers/004's estimators read; it belongs
  to the inference network (its posterior head) and the generator (its merge)."""
  from adejax.models import vae

  m = vae.HierarchicalVAE((8, 8, 1), "sngan", 0.05, 3, 2, global_latent=5)
  f = jax.random.normal(jax.random.key(0), (3, 8, 8, 1))
  v = m.init(jax.random.key(1), f, jax.random.key(2))
  leaves, tree = jax.tree.flatten(v["params"])  # zero-initialised heads away from zero
  keys = jax.random.split(jax.random.key(3), len(leaves))
  v = {"params": jax.tree.unflatten(tree, [p + 0.2 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])}

  def lowest_prior(mod, z_g):
    x = jnp.broadcast_to(mod.start, (z_g.shape[0],) + mod.start.shape[1:])
    x, _, _ = mod.global_layer(x, None, jax.random.key(0), z=z_g)
    _, _, z = mod.stochastic[0](x, None, jax.random.key(4), temperature=0.0)  # the prior mean
    return z

  z_a, z_b = jnp.zeros((1, 5)), jnp.ones((1, 5))
  assert float(jnp.max(jnp.abs(m.apply(v, z_a, method=lowest_prior) - m.apply(v, z_b, method=lowest_prior)))) > 1e-3
  mean, log_std = m.apply(v, f, method="top_posterior")
  assert mean.shape == log_std.shape == (3, 5)
  zs = m.apply(v, f, jax.random.key(5), method="encode")
  assert [z.shape for z in zs] == [(3, 5), (3, 1, 1, 3), (3, 2, 2, 3)]  # z_g, 1x1 and 2x2 levels
  np.testing.assert_allclose(zs[0], mean, atol=1e-5)  # temperature 0: the posterior mean
  assert vae.is_inference_parameter(("global_latent", "posterior", "v"))
  assert not vae.is_inference_parameter(("global_latent", "merge", "v"))
  out = m.apply(v, f, jax.random.key(6))
  assert out["kl_channels"].shape == (3, 1 + 2 * 3)  # the global latent counts as one free-bits group
  np.testing.assert_allclose(out["kl_channels"].sum(-1), out["kl"], rtol=1e-5)
