"""Same seed and global batch: 1 process with 4 devices == 2 processes x 2 devices (localhost, gloo)."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run(nproc, tmp_path):
  out, port = str(tmp_path / f"metrics_{nproc}.json"), _free_port()
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  procs = [subprocess.Popen([sys.executable, WORKER, str(i), str(nproc), str(port), out], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(nproc)]
  logs = [p.communicate(timeout=400)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(l[-3000:] for l in logs)
  return json.load(open(out))


@pytest.mark.slow
def test_one_and_two_processes_agree(tmp_path):
  single, multi = _run(1, tmp_path), _run(2, tmp_path)
  assert len(single) == len(multi) == 2
  for a, b in zip(single, multi):
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-4, err_msg=key)
