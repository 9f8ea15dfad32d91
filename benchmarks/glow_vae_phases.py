"""papers/003 Table 4 at our scale: seconds per step of each phase of the VAE with a Glow decoder, and
of AV-ADE's step, as ratios measured in one run (with `adejax.benchmark.train_step`).

  python benchmarks/glow_vae_phases.py [--config=configs/fmnist_glow_vae.py] [--steps=20]

Phase 1 trains the VAE and its prior (the Glow layer left out), phase 2 the Glow layer alone (the
backward pass runs through the frozen VAE's likelihood). papers/003 Table 4 (GTX 1080 Ti, CIFAR-10):
VAE 118 s/epoch, Glow layer 162, standalone Glow 512. The standalone Glow of the paper's depth (3 levels
of 32 steps with squeezes) is not a model of this codebase, so it is not timed here.
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
flags.DEFINE_integer("steps", 20, "Timed steps per phase (after warm-up).")
FLAGS = flags.FLAGS


def main(_):
  c = FLAGS.config
  boundary = c.glow_vae.phase1_steps
  times = {"phase 1 (VAE + prior)": benchmark.train_step(c, FLAGS.steps, 0)["step_s"],
           "phase 2 (Glow layer)": benchmark.train_step(c, FLAGS.steps, boundary + 1)["step_s"]}
  ade = default.get_config()
  ade.train.batch_size = c.train.batch_size
  times["AV-ADE (configs/default.py, same batch)"] = benchmark.train_step(ade, FLAGS.steps)["step_s"]
  ref = times["phase 1 (VAE + prior)"]
  print(f"{'step':<42} {'s/step':>8} {'x phase 1':>10}   ({jax.device_count()} "
        f"{jax.devices()[0].platform} devices, batch {c.train.batch_size})")
  for name, t in times.items():
    print(f"{name:<42} {t:8.3f} {t / ref:10.2f}")


if __name__ == "__main__":
  app.run(main)
