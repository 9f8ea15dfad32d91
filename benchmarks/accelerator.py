"""The accelerator measurements of the README's "Performance" section, in one command: several
`adejax.benchmark` jobs in parallel processes that compile at the same time (compilation is most of
the wall time on a GPU, and runs on the host's cores) and then time their steps one job at a time, after
every job has compiled, so no timing shares the accelerator with another job or a compilation.

  python benchmarks/accelerator.py --out=DIR [--jobs=cifar_dtypes,glow_table4] [--steps=20]

Jobs (each writes DIR/<job>.json, the `adejax.benchmark` report, and prints its table):
  cifar_dtypes   configs/cifar_avade.py, batch 64: VAE and AV-ADE in float32 and bfloat16 compute
  cifar_batches  AV-ADE, bfloat16: batch 16, 32, 128 (64 is in cifar_dtypes)
  cifar_sizes    AV-ADE, bfloat16, batch 64: 64x64 and 128x128 (one more VAE level per 2x)
  cifar_remat    the same at 128x128 with train.remat (compare the temp MiB column)
  fmnist_input   configs/default.py (AV-ADE on Fashion-MNIST, batch 32): the step fed by the real input
                 path against a device-resident batch (needs the IDX files: $ADEJAX_IDX_DIR)
  glow_table4    papers/003 Table 4 at the paper's depths, batch 64, float32: the Glow-VAE's phase 1 and
                 phase 2 (configs/cifar_glow_vae.py) and the standalone 3 x 32 Glow (configs/cifar_glow.py)
Each job runs in its own process with XLA_PYTHON_CLIENT_PREALLOCATE=false, so the jobs share the
accelerator's memory. On a CPU the same command works, slowly (use --jobs and fewer --steps).
"""
from __future__ import annotations

import argparse
import fcntl
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = ("cifar_dtypes", "cifar_batches", "cifar_sizes", "cifar_remat", "fmnist_input", "glow_table4")


def _barrier(sync_dir: str, job: str, count: int, timeout_s: float):
  """Mark `job` compiled, wait (at most timeout_s) until `count` jobs are, then hold the timing lock
  (returned: the caller keeps it open until its timing is done)."""
  open(os.path.join(sync_dir, f"ready.{job}"), "w").close()
  deadline = time.time() + timeout_s
  while len(glob.glob(os.path.join(sync_dir, "ready.*"))) < count and time.time() < deadline:
    time.sleep(0.5)
  lock = open(os.path.join(sync_dir, "timing.lock"), "w")
  fcntl.flock(lock, fcntl.LOCK_EX)
  return lock


def run_job(job: str, out: str, steps: int, sync_dir: str, count: int, timeout_s: float,
            tiny: bool = False) -> None:
  sys.path.insert(0, ROOT)
  from adejax import benchmark, reporting
  from configs import cifar_avade, cifar_glow, cifar_glow_vae, default

  held = []
  before_timing = lambda: held.append(_barrier(sync_dir, job, count, timeout_s))
  variant = "tiny" if tiny else ""
  config = cifar_avade.get_config(variant)
  if job == "cifar_dtypes":
    report = benchmark.run(config, ["vae", "av-ade"], [64], [32], steps, dtypes=["float32", "bfloat16"],
                           before_timing=before_timing)
  elif job == "cifar_batches":
    report = benchmark.run(config, ["av-ade"], [16, 32, 128], [32], steps, dtypes=["bfloat16"],
                           before_timing=before_timing)
  elif job in ("cifar_sizes", "cifar_remat"):
    config.train.remat = job == "cifar_remat"
    sizes = [64, 128] if job == "cifar_sizes" else [128]
    report = benchmark.run(config, ["av-ade"], [64], sizes, steps, dtypes=["bfloat16"],
                           before_timing=before_timing)
  elif job == "fmnist_input":
    config = default.get_config(variant)
    config.data.image_size, config.data.resize = 28, "pad"  # native size: no resize (TensorFlow)
    report = benchmark.run(config, ["av-ade"], [32], [28], steps, with_input=True, before_timing=before_timing)
  elif job == "glow_table4":
    vae, glow = cifar_glow_vae.get_config(variant), cifar_glow.get_config(variant)
    for c in (vae, glow):
      c.train.batch_size = 8 if tiny else 64
    boundary = vae.glow_vae.phase1_steps
    rows = {"phase 1 (VAE + prior)": benchmark.PreparedStep(vae, 0),
            "phase 2 (Glow layer)": benchmark.PreparedStep(vae, boundary + 1),
            f"standalone Glow ({glow.glow.levels} x {glow.glow.depth}, width {glow.glow.width})":
                benchmark.PreparedStep(glow, 1)}
    before_timing()
    report = {"batch": vae.train.batch_size, "rows": {name: step.time(steps) for name, step in rows.items()}}
    first = report["rows"]["phase 1 (VAE + prior)"]["step_s"]
    for name, r in report["rows"].items():
      print(f"{job}: {name:<40} {r['step_s']:.4f} s/step  {r['step_s'] / first:.2f} x phase 1  "
            f"compile {r['compile_s']:.0f} s", flush=True)
  else:
    raise SystemExit(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
  if held:
    held[0].close()  # releases the timing lock
  import jax

  report["device"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  reporting.write_json(os.path.join(out, f"{job}.json"), report)
  if "steps" in report:
    print(f"== {job}\n{benchmark.format_report(report)}", flush=True)
  if "input" in report:
    print(f"== {job}: {report['input']}", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--jobs", default=",".join(JOBS))
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--barrier_timeout", type=float, default=300.0,
                      help="seconds a compiled job waits for the others before timing anyway")
  parser.add_argument("--tiny", action="store_true", help="the configs' tiny variants (a smoke run)")
  parser.add_argument("--job", default="", help=argparse.SUPPRESS)  # a child process's job
  parser.add_argument("--sync", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  jobs = [j for j in args.jobs.split(",") if j]
  if args.job:
    return run_job(args.job, args.out, args.steps, args.sync, len(jobs), args.barrier_timeout, args.tiny)
  os.makedirs(args.out, exist_ok=True)
  sync = tempfile.mkdtemp(prefix="adejax_accelerator_")  # the barrier's files (not among the results)
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PYTHONUNBUFFERED": "1"}
  start = time.time()
  children = {j: subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--job={j}", f"--out={args.out}",
                                   f"--jobs={args.jobs}", f"--steps={args.steps}", f"--sync={sync}",
                                   f"--barrier_timeout={args.barrier_timeout}"] + ["--tiny"] * args.tiny,
                                  env=env, cwd=ROOT)
              for j in jobs}
  status = {j: p.wait() for j, p in children.items()}
  print(json.dumps({"exit_status": status, "wall_s": round(time.time() - start, 1)}), flush=True)
  return 0 if not any(status.values()) else 1


if __name__ == "__main__":
  sys.exit(main())
