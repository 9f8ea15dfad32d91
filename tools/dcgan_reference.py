"""A plain DCGAN, independent of adejax's models and train step: the known-good reference that adejax's
adversarial half is compared with at the same wall time on the same data and machine.

  python tools/dcgan_reference.py --out=DIR [--minutes=10 | --steps=N] [--batch=64]

Radford et al. (2016) for 28x28 images: generator z (100) -> dense 7x7x256 -> BN ReLU -> transposed conv
128 (4x4, stride 2) -> BN ReLU -> transposed conv 1 (4x4, stride 2) -> tanh; discriminator conv 64 (4x4,
stride 2) -> LReLU 0.2 -> conv 128 (4x4, stride 2) -> LReLU -> conv 256 (3x3) -> LReLU -> dense 1; no
normalisation in the discriminator; non-saturating loss; Adam 2e-4, b1 0.5. Trains on the offline
Fashion-MNIST training split for `--minutes` of wall time, then writes DIR/samples.npz (key `images`,
uint8, N x 28 x 28 x 1; N = --num_samples) and DIR/samples.png. Score it like any run with
`python tools/score_samples.py --samples=DIR/samples.npz`.
"""
from __future__ import annotations

import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from adejax import input_pipeline, reporting

FLAGS = flags.FLAGS


class Generator(nn.Module):
  @nn.compact
  def __call__(self, z, train: bool):
    bn = lambda x: nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(bn(nn.Dense(7 * 7 * 256)(z).reshape(-1, 7, 7, 256)))
    x = nn.relu(bn(nn.ConvTranspose(128, (4, 4), (2, 2))(x)))
    return jnp.tanh(nn.ConvTranspose(1, (4, 4), (2, 2))(x))


class Discriminator(nn.Module):
  @nn.compact
  def __call__(self, x):
    act = lambda h: nn.leaky_relu(h, 0.2)
    x = act(nn.Conv(64, (4, 4), (2, 2))(x))
    x = act(nn.Conv(128, (4, 4), (2, 2))(x))
    x = act(nn.Conv(256, (3, 3))(x))
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


def main(_):
  data = input_pipeline.load_idx(input_pipeline.idx_directory("fashion_mnist_idx"), "train").images
  g, d = Generator(), Discriminator()
  key = jax.random.key(FLAGS.seed)
  g_vars = g.init(key, jnp.zeros((2, 100)), train=True)
  d_params = d.init(key, jnp.zeros((2, 28, 28, 1)))["params"]
  tx = optax.adam(2e-4, b1=0.5)
  g_opt, d_opt = tx.init(g_vars["params"]), tx.init(d_params)
  print(f"generator {reporting.count_params(g_vars['params']):,} parameters, "
        f"discriminator {reporting.count_params(d_params):,}")

  @jax.jit
  def step(g_vars, d_params, g_opt, d_opt, real, key):
    z1, z2 = jax.random.normal(key, (2, real.shape[0], 100))
    fake, _ = g.apply(g_vars, z1, train=True, mutable=["batch_stats"])

    def d_loss(p):
      return (jnp.mean(jax.nn.softplus(-d.apply({"params": p}, real)))
              + jnp.mean(jax.nn.softplus(d.apply({"params": p}, fake))))
    d_grads = jax.grad(d_loss)(d_params)
    updates, d_opt = tx.update(d_grads, d_opt, d_params)
    d_params = optax.apply_updates(d_params, updates)

    def g_loss(p):
      fake, new = g.apply({"params": p, "batch_stats": g_vars["batch_stats"]}, z2, train=True,
                          mutable=["batch_stats"])
      return jnp.mean(jax.nn.softplus(-d.apply({"params": d_params}, fake))), new
    g_grads, new = jax.grad(g_loss, has_aux=True)(g_vars["params"])
    updates, g_opt = tx.update(g_grads, g_opt, g_vars["params"])
    return ({"params": optax.apply_updates(g_vars["params"], updates), **new}, d_params, g_opt, d_opt)

  rng = np.random.default_rng(FLAGS.seed)
  start, steps = time.time(), 0
  while (steps < FLAGS.steps) if FLAGS.steps else (time.time() - start < 60 * FLAGS.minutes):
    real = data[rng.integers(0, len(data), FLAGS.batch)].astype(np.float32) / 127.5 - 1.0
    g_vars, d_params, g_opt, d_opt = step(g_vars, d_params, g_opt, d_opt, real,
                                          jax.random.fold_in(key, steps))
    steps += 1
    if steps % 500 == 0:
      print(f"step {steps}, {time.time() - start:.0f} s", flush=True)
  z = jax.random.normal(jax.random.key(FLAGS.seed + 1), (FLAGS.num_samples, 100))
  images = np.asarray(g.apply(g_vars, z, train=False))
  images = np.round((images + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
  os.makedirs(FLAGS.out, exist_ok=True)
  np.savez(os.path.join(FLAGS.out, "samples.npz"), images=images)
  reporting.save_png(os.path.join(FLAGS.out, "samples.png"), images[:64])
  print(f"{steps} steps in {time.time() - start:.0f} s; wrote {FLAGS.out}/samples.npz")


if __name__ == "__main__":
  flags.DEFINE_string("out", None, "Output folder.", required=True)
  flags.DEFINE_float("minutes", 10.0, "Wall-clock training budget.")
  flags.DEFINE_integer("steps", 0, "Train this many steps instead of --minutes (0: by wall time).")
  flags.DEFINE_integer("batch", 64, "Batch size.")
  flags.DEFINE_integer("num_samples", 2000, "Samples written to samples.npz.")
  flags.DEFINE_integer("seed", 0, "Seed.")
  app.run(main)
