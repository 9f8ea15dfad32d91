"""Run many command lines of adejax's doors quickly: import everything once, then fork one child per
command line that runs the module as `python -m` would (runpy, __main__), with its stderr captured.
For command lines refused before any computation only: a child that starts JAX or tf.data after the
fork can deadlock on a lock a parent thread held (seen with a training run).

  python tests/faults/cli_runner.py CASES.json RESULTS.json
CASES.json: [[module, [args...]], ...]; RESULTS.json: [[exit status, stderr], ...].
"""
import json
import os
import runpy
import signal
import sys
import time
import tempfile
import warnings

warnings.filterwarnings("ignore", message="os.fork")

import adejax  # noqa: F401 -- the heavy imports, shared by every child
import adejax.cli  # noqa: F401
import adejax.train  # noqa: F401
import absl.app  # noqa: F401
import ml_collections.config_flags  # noqa: F401


def run_one(module: str, args: list[str]) -> tuple[int, str]:
  with tempfile.TemporaryFile("w+") as err:
    pid = os.fork()
    if pid == 0:  # child: the command line, exactly as `python -m module args...`
      os.dup2(err.fileno(), 2)
      sys.stderr = os.fdopen(2, "w", buffering=1)
      sys.argv = [module, *args]
      code = 0
      try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
      except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
      except BaseException:  # noqa: BLE001 -- an uncaught error: print it as python would
        import traceback

        traceback.print_exc()
        code = 1
      sys.stderr.flush()
      os._exit(code)
    deadline = time.monotonic() + 120
    while True:
      done, status = os.waitpid(pid, os.WNOHANG)
      if done:
        break
      if time.monotonic() > deadline:  # a hung child fails its case instead of hanging the suite
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return -9, "cli_runner: the command did not finish within 120 s"
      time.sleep(0.05)
    err.seek(0)
    return os.waitstatus_to_exitcode(status), err.read()


if __name__ == "__main__":
  cases = json.load(open(sys.argv[1]))
  json.dump([run_one(m, a) for m, a in cases], open(sys.argv[2], "w"))
