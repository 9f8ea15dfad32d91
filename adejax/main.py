"""adejax's door: `python -m adejax.main --config=configs/default.py --workdir=DIR [--mode=train|eval|sample]`.

  train   train from scratch or resume from the latest checkpoint in DIR/checkpoints
  eval    held-out bits/dim bounds, samples and reconstructions of the latest checkpoint -> DIR/eval
  sample  sample grids at several temperatures and eval.num_fid_samples samples as uint8
          (DIR/eval/samples.npz, key `images`, N x H x W x C) for external scoring tools

Config fields can be overridden on the command line: `--config.train.num_steps=200`.
User errors (unknown key, invalid value, missing dataset) print one line and exit with status 2.
"""
from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/default.py or configs/default.py:tiny.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs, samples and metrics.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "What to do.")
flags.DEFINE_bool("jax_distributed", False,
                  "Call jax.distributed.initialize() (multi-host TPU pods, multi-process GPU). "
                  "Also done automatically when JAX_COORDINATOR_ADDRESS is set.")


def _maybe_initialize_distributed():
  import jax

  if FLAGS.jax_distributed or os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.distributed.initialize()
    logging.info("jax.distributed: process %d of %d.", jax.process_index(), jax.process_count())


def run(config, workdir: str, mode: str):
  from adejax import evaluate, train

  if mode == "train":
    return train.train_and_evaluate(config, workdir)
  if mode == "eval":
    return evaluate.evaluate_run(config, workdir)
  trainer, state, _ = evaluate.restore_trainer(config, workdir)
  out_dir = os.path.join(workdir, "eval")
  paths = evaluate.write_samples(trainer, state, out_dir, config.eval.num_samples)
  if config.eval.num_fid_samples:
    paths.append(evaluate.write_samples_npz(trainer, state, out_dir, config.eval.num_fid_samples,
                                            config.eval.batch_size))
  print("\n".join(paths))
  return paths


def _load_config():
  from adejax import config_lib

  try:
    config = FLAGS.config
    if config is None:
      raise config_lib.ConfigError("--config is required, e.g. --config=configs/default.py")
    config.mode  # noqa: B018 -- config_flags reports a config file it could not load on first access
  except OSError as e:
    reason = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
    raise config_lib.ConfigError(f"cannot load --config: {reason}") from None
  return config


def main(argv):
  from adejax import cli, config_lib, reporting

  reporting.quiet_library_logs()
  with cli.user_errors("adejax"):
    if len(argv) > 1:
      raise config_lib.ConfigError(f"unexpected arguments {argv[1:]}; flags are written --name=value")
    config = _load_config()
    if not FLAGS.workdir:
      raise config_lib.ConfigError("--workdir is required")
    _maybe_initialize_distributed()
    config_lib.validate(config)
    run(config, FLAGS.workdir, FLAGS.mode)


if __name__ == "__main__":
  from adejax import cli

  app.run(main, flags_parser=cli.flags_parser("adejax"))
