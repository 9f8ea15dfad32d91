"""One process of a localhost multi-process run (used by test_multiprocess.py).

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_JSON

Each process has 4 // NUM_PROCESSES CPU devices; together they train 2 steps of the tiny AV-ADE config on
fixed synthetic data, each process feeding its slice of every global batch. Process 0 writes the metrics.
"""
import json
import os
import sys

pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.environ["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={4 // nproc} "
                           + os.environ.get("ADEJAX_TEST_XLA_FLAGS", ""))  # conftest's
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

if nproc > 1:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)

from adejax import input_pipeline, train  # noqa: E402
from configs import default  # noqa: E402

assert jax.device_count() == 4 and jax.process_count() == nproc
config = default.get_config("tiny")
trainer = train.Trainer(config, (16, 16, 1))
images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1)).astype(np.uint8)
order = input_pipeline.BatchOrder(len(images), config.train.batch_size, 0, jax.process_index(), nproc)
state, history = trainer.init_state(0), []
for step in range(2):
  state, metrics = trainer.step(state, trainer.global_batch(images[order.local_indices(step)]))
  history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
if pid == 0:
  with open(out, "w") as f:
    json.dump(history, f)
