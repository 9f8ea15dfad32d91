"""The benchmark harness runs on a tiny config and reports every number it promises (no timing is
asserted: speed is measured by `python -m adejax.benchmark`, not tested)."""
import json

import pytest

from adejax import benchmark
from configs import default


@pytest.mark.slow
def test_harness_reports_steps_parts_input_eval_and_memory(tmp_path):
  config = default.get_config("tiny")
  report = benchmark.run(config, ["vae", "av-ade"], [8], [16], steps=1, with_breakdown=True,
                         with_input=True, with_eval=True, with_loop=True)
  c = report["ceilings"]
  assert c["matmul_gflops_per_s"] > 0 and c["conv3x3_gflops_per_s"] > 0 and c["conv3x3_w32_gflops_per_s"] > 0
  assert [(r["mode"], r["batch"]) for r in report["steps"]] == [("vae", 8), ("av-ade", 8)]
  for r in report["steps"]:
    assert r["step_s"] > 0 and r["images_per_s"] > 0 and r["gflop_per_image"] > 0 and r["compile_s"] > 0
  vae, avade = report["steps"]
  assert avade["gflop_per_image"] > vae["gflop_per_image"]  # f_psi, discriminator and penalty cost FLOPs
  parts = report["breakdown"]["parts"]
  assert {"preprocess + f_psi forward", "f_psi inverse", "discriminator on real + fake",
          "gradient penalty (double backward)", "optimiser update (generator)"} <= set(parts)
  assert all(p["gflop"] > 0 and p["seconds"] > 0 for p in parts.values())
  assert report["input"]["fed_step_s"] > 0 and report["eval"]["eval_bpd_ms_per_image"] > 0
  assert report["memory"]["host_peak_mib"] > 0
  loop = report["loop"]  # the real loop over 5 logging windows (6 x log_every steps) against the bare step
  assert loop["steps_timed"] == 5 * config.train.log_every and loop["loop_step_s"] > 0
  assert loop["bare_step_s"] > 0 and loop["gradient_norms_s"] > 0
  text = benchmark.format_report(report)
  assert "Training loop:" in text
  row = next(line for line in text.splitlines() if line.startswith("| av-ade |"))
  assert row.startswith("| av-ade | float32 | ") and "| 8 | 16 |" in row and "gradient penalty" in text
  json.dumps(report)  # the --json file
