"""papers/003 Table 4 at our scale: seconds per step of each phase of the VAE with a Glow decoder, of the
standalone multi-scale Glow, and of AV-ADE's step, as ratios measured in one run (with
`adejax.benchmark.train_step`).

  python benchmarks/glow_vae_phases.py [--steps=20]                       # the Fashion-MNIST configs
  python benchmarks/glow_vae_phases.py --config=configs/cifar_glow_vae.py \
      --glow_config=configs/cifar_glow.py --batch=8 --steps=3 --noade     # the paper's depths, CIFAR size

Phase 1 trains the VAE and its prior (the Glow layer left out), phase 2 the Glow layer alone (the
backward pass runs through the frozen VAE's likelihood); the standalone Glow trains every step.
papers/003 Table 4 (GTX 1080 Ti, CIFAR-10, s/epoch): VAE 118, Glow layer 162, average 140, standalone
Glow 512, i.e. 1.37x and 4.34x the VAE phase, and 3.66x the average of the two phases. An epoch is the
same number of steps for each at one batch size, so ratios of s/step are ratios of s/epoch.
"""
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from adejax import benchmark

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo's configs/
from configs import default  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/fmnist_glow_vae.py", "A glow_vae config to time.")
config_flags.DEFINE_config_file("glow_config", "configs/fmnist_glow.py", "A standalone glow config.")
flags.DEFINE_integer("steps", 20, "Timed steps per model (after warm-up).")
flags.DEFINE_integer("batch", 0, "Batch size for every model; 0 = the glow_vae config's.")
flags.DEFINE_bool("ade", True, "Also time AV-ADE (configs/default.py) at the same batch.")
FLAGS = flags.FLAGS


def main(_):
  c, g = FLAGS.config, FLAGS.glow_config
  batch = FLAGS.batch or c.train.batch_size
  c.train.batch_size = g.train.batch_size = batch
  boundary = c.glow_vae.phase1_steps
  times = {"phase 1 (VAE + prior)": benchmark.train_step(c, FLAGS.steps, 0)["step_s"],
           "phase 2 (Glow layer)": benchmark.train_step(c, FLAGS.steps, boundary + 1)["step_s"]}
  times["average of the two phases"] = sum(times.values()) / 2
  times[f"standalone Glow ({g.glow.levels} x {g.glow.depth}, width {g.glow.width})"] = (
      benchmark.train_step(g, FLAGS.steps, 1)["step_s"])
  if FLAGS.ade:
    ade = default.get_config()
    ade.train.batch_size = batch
    times["AV-ADE (configs/default.py)"] = benchmark.train_step(ade, FLAGS.steps)["step_s"]
  ref, avg = times["phase 1 (VAE + prior)"], times["average of the two phases"]
  print(f"{'step':<46} {'s/step':>8} {'x phase 1':>10} {'x average':>10}   ({jax.device_count()} "
        f"{jax.devices()[0].platform} devices, batch {batch})")
  for name, t in times.items():
    print(f"{name:<46} {t:8.3f} {t / ref:10.2f} {t / avg:10.2f}")


if __name__ == "__main__":
  app.run(main)
