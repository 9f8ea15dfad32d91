"""What every command-line door (main, evaluate, sweep, estimate_kl) does with an error: one line.

A user error (config, data, checkpoint, workdir, weights file, runaway training) prints
`<program>: error: <one line>` on stderr and exits 2; SIGTERM, after the checkpoint of the current step,
exits 0; Ctrl-C exits 130. Nothing here defines flags, so every door can import it.
"""
from __future__ import annotations

import contextlib
import sys

from absl import flags


@contextlib.contextmanager
def user_errors(program: str, *extra: type[BaseException]):
  from adejax import checkpointing, config_lib, input_pipeline, train
  from adejax.evaluation import inception

  try:
    yield
  except train.Interrupted as e:
    print(f"{program}: stopped by {e}", file=sys.stderr)
    sys.exit(130 if e.signal_name == "SIGINT" else 0)
  except KeyboardInterrupt:
    print(f"{program}: interrupted (Ctrl-C); the latest checkpoint is intact.", file=sys.stderr)
    sys.exit(130)
  except (config_lib.ConfigError, input_pipeline.DataError, checkpointing.CheckpointError,
          train.RunawayError, train.WorkdirInUseError, inception.UnsafeWeightsError, *extra) as e:
    print(f"{program}: error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


def flags_parser(program: str):
  """absl's flag parser with every mistake (unknown flag, bad value, misspelled or mistyped --config.*
  override, missing config file) as one line on stderr and exit status 2."""

  def parse(argv):
    from adejax import config_lib

    for arg in argv:  # config files import the configs/ package beside them
      if arg.startswith("--config="):
        config_lib.make_configs_importable(arg[len("--config="):].split(":")[0])
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      message, hint = str(e), " (pass --helpshort to see the flags)"
    except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
      message, hint = "bad --config or --config.* override: " + str(e).strip("'\""), ""
    message = message.replace("\\n", "\n").replace("\\'", "'")
    if "Traceback (most recent call last)" in message:  # a config file raised: keep its own message
      head = message.split("Traceback (most recent call last)")[0].rstrip(": \n")
      message = f"{head}: {message.strip().splitlines()[-1].split(': ', 1)[-1]}"
    print(f"{program}: error: {' '.join((message + hint).split())}", file=sys.stderr)
    sys.exit(2)

  return parse
