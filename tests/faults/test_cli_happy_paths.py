"""The command lines users run, end to end at tiny size: train, eval, sample, adejax.evaluate and
adejax.estimate_kl on one workdir, each its own process as a user launches it."""
import json
import os

import numpy as np
import pytest

import faultlib

pytestmark = pytest.mark.faults


def test_train_eval_sample_evaluate_and_estimate_kl(tmp_path):
  idx = faultlib.small_idx_dir(tmp_path / "idx", n_train=32, n_test=16)
  workdir = str(tmp_path / "run")
  config = ["--config=configs/default.py:tiny", f"--workdir={workdir}", f"--config.data.idx_dir={idx}",
            f"--config.eval.feature_cache_dir={tmp_path / 'cache'}"]
  cases = [["adejax.main", config],
           ["adejax.main", [*config, "--mode=eval"]],
           ["adejax.main", [*config, "--mode=sample"]],
           ["adejax.evaluate", [f"--workdir={workdir}", "--override=eval.iwae_samples=2"]],
           ["adejax.estimate_kl", [f"--workdir={workdir}", "--num_posteriors=16", "--num_samples=16",
                                   "--classifier_steps=5"]]]
  # One compilation cache for the five launches, which run one after another and all finish (what
  # `faultlib.refill_cache` guards against, a launch killed mid-write, cannot happen here): the later
  # doors read the programs the earlier ones compiled, as a user's persistent cache would give them.
  cache = str(tmp_path / "compilation_cache")
  for module, args in cases:
    result = faultlib.launch(*args, module=module, compilation_cache=cache)
    assert result.returncode == 0, (module, args, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, (module, result.stderr[-3000:])
  assert faultlib.checkpoint_steps(workdir)[-1] == 4
  metrics = json.load(open(os.path.join(workdir, "eval", "metrics.json")))
  assert np.isfinite(metrics["bpd_elbo"]) and np.isfinite(metrics["bpd_iwae"]) and metrics["step"] == 4
  with np.load(os.path.join(workdir, "eval", "samples.npz")) as f:
    assert f["images"].dtype == np.uint8 and f["images"].shape[1:] == (16, 16, 1)
  assert os.path.exists(os.path.join(workdir, "eval", "samples_t1.0.png"))
  kl = json.load(open(os.path.join(workdir, "eval", "marginal_kl.json")))
  assert kl and all(np.isfinite(v) for v in kl.values() if isinstance(v, float))
