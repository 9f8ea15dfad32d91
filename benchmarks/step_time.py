"""Train-step time of each Table-1 mode on one config, as ratios measured in one run.

  python benchmarks/step_time.py [--config=configs/default.py] [--steps=20]

Prints seconds per step (absolute times vary from machine to machine) and each mode's time relative
to the plain VAE, e.g. what f_psi and the adversarial terms cost.
"""
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from adejax import train

FLAGS = flags.FLAGS


def seconds_per_step(config, steps: int, start_step: int = 0) -> float:
  """Seconds per train step from state step `start_step` + 2 (a multi-phase family's phase), after
  two warm-up steps that compile the step (and a phase boundary's own step)."""
  shape = (config.data.image_size, config.data.image_size, 1)
  trainer = train.Trainer(config, shape)
  batch = np.random.default_rng(0).integers(0, 256, (config.train.batch_size,) + shape, np.uint8)
  images = trainer.global_batch(batch)
  state = trainer.init_state(0)
  state = state.replace(step=jax.device_put(np.int32(start_step), state.step.sharding))
  for _ in range(2):  # compile: a phase boundary's own step, then the phase's step
    state, _ = trainer.step(state, images)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = trainer.step(state, images)
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / steps


def main(_):
  times = {}
  for mode in FLAGS.modes:
    config = FLAGS.config
    config.mode = mode
    times[mode] = seconds_per_step(config, FLAGS.steps)
  ref = times.get("vae", next(iter(times.values())))
  print(f"{'mode':<8} {'s/step':>8} {'x vae':>7}   ({jax.device_count()} {jax.devices()[0].platform} devices)")
  for mode, t in times.items():
    print(f"{mode:<8} {t:8.3f} {t / ref:7.2f}")


if __name__ == "__main__":
  # Defined here, so that other benchmarks can import seconds_per_step beside their own flags.
  config_flags.DEFINE_config_file("config", "configs/default.py", "Config to time.")
  flags.DEFINE_integer("steps", 20, "Timed steps per mode (after one compiled warm-up step).")
  flags.DEFINE_list("modes", ["vae", "v-ade", "av-gde", "av-ade", "gan"], "Modes to time.")
  app.run(main)
