"""Speed, measured: `python -m adejax.benchmark --config=configs/cifar_avade.py [--modes=vae,av-ade]
[--batch=16,32,64] [--image_size=32,64] [--compute_dtypes=float32,bfloat16] [--devices=1,4] [--steps=10]
[--breakdown] [--input] [--eval] [--loop] [--json=FILE]`.

One row per compute dtype, device count, mode, image size and batch size: compile seconds, the median
time of a compiled train step over --steps steps after warm-up, images/s, GFLOP per image (XLA's cost
analysis of the compiled step), achieved GFLOP/s and XLA's temporary memory for the step, beside this
process's own matmul and 3x3-convolution rates (in float32 and in every timed compute dtype), so every
speed is also a fraction of what this machine does on the simplest dense work in the same precision;
and the host's peak memory (device memory where the backend reports it). Options:

  --breakdown  the step's disjoint parts as its family lists them (`Family.step_parts`; AV-ADE's:
               preprocessing + f_psi forward, the VAE's likelihood pass on features, its sampling pass
               from the prior, f_psi's inverse, the discriminator on real and fake, the gradient
               penalty's double backward and the optimiser update), each compiled and timed alone
               (forward and backward, as in training), as FLOPs and as time
  --input      training throughput of the real loop's input path (host batches from the in-memory
               split, as train.py feeds them) against a device-resident batch: is the run input-bound?
  --eval       held-out bits/dim and sampling, per image, against a train step's per-image time
  --loop       the real training loop (train.train_and_evaluate on the config's data for 6 x
               train.log_every steps, the last 5 logging windows timed) against the bare step queued
               back to back: the loop's overhead, with and without the logging step's gradient norms
  --image_size sizes to time beside the config's (e.g. 32,64,128: one more generator level per 2x)
  --compute_dtypes  train.compute_dtype values (bfloat16: bf16 convolutions and matmuls, float32 rest)
  --devices    the first N devices of the mesh (e.g. 1,4 with
               XLA_FLAGS=--xla_force_host_platform_device_count=4: the sharding overhead on a CPU)
  --config.train.remat=True  rematerialised top-down VAE and f_psi (compare temp MiB)

Times are medians of synchronised steps (block_until_ready), so they are the device's work, not
dispatch; "x first" is each step time over the first row's, a ratio measured in one run (e.g.
`--config=configs/default.py --modes=vae,v-ade,av-gde,av-ade,gan`: what f_psi and the adversarial terms
cost). Nothing here is asserted in tests: speed is a measurement (tests/test_benchmark.py only runs
the harness on a tiny config).
"""
from __future__ import annotations

import itertools
import math
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

from adejax import config_lib, families, input_pipeline, reporting, train
from adejax.models import layers


# ----------------------------------------------------------------------------- measuring
def timed(fn, *args, steps: int = 10, warmup: int = 1) -> float:
  """Median seconds of fn(*args), each call synchronised, after `warmup` calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def flops_of(lowered) -> float:
  """The model's FLOPs: XLA's cost analysis of the lowered (not yet optimised) program, 0 where the
  backend gives none. Before optimisation every convolution is still an HLO convolution, so the count is
  the same on every backend (after it, a GPU's convolutions are cuDNN calls that the analysis does not
  count: 0.09 of 11.9 GFLOP per image measured for the CIFAR AV-ADE step on an H200); on a CPU it is
  within 1% of the compiled program's count."""
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def compile_and_time(fn, *args, steps: int = 10) -> dict:
  """jit `fn`, compile it for `args` (seconds), count its FLOPs and time it."""
  lowered = jax.jit(fn).lower(*args)
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  seconds = timed(compiled, *args, steps=steps)
  flops = flops_of(lowered)
  return {"compile_s": compile_s, "seconds": seconds, "gflop": flops / 1e9,
          "gflops_per_s": flops / seconds / 1e9 if seconds else 0.0}


def _rate(fn, flops: float, *args, calls: int = 10) -> float:
  """GFLOP/s of `fn(*args)` over `calls` calls queued back to back and synchronised once (on an
  accelerator a single small call is mostly dispatch), after one warm-up call."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  out = [fn(*args) for _ in range(calls)]
  jax.block_until_ready(out)
  return flops * calls / (time.perf_counter() - start) / 1e9


def ceilings(dtypes=("float32",)) -> dict:
  """This process's rates on the simplest dense work, per compute dtype: an n^2 matmul (n = 2048 on a
  CPU, 8192 on an accelerator, where a smaller one does not fill the chip) and a 3x3 convolution (NHWC,
  32x32, 128 -> 128 channels, batch 64 on a CPU and 256 on an accelerator: the shape of a CIFAR
  generator's middle layer), and the same convolution at 32 -> 32 channels (the width of f_psi's coupling
  networks: narrow layers run fewer FLOP/s on the same machine). Keys: matmul_gflops_per_s,
  conv3x3_gflops_per_s, conv3x3_w32_gflops_per_s (float32) and matmul_<dtype>_gflops_per_s,
  conv3x3_<dtype>_gflops_per_s, conv3x3_w32_<dtype>_gflops_per_s for the others."""
  cpu = jax.devices()[0].platform == "cpu"
  n, batch = (2048, 64) if cpu else (8192, 256)
  k = jax.random.split(jax.random.key(0), 4)
  conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                           dimension_numbers=("NHWC", "HWIO", "NHWC")))
  out = {}
  for dtype in dtypes:
    a, b = (jax.random.normal(key, (n, n), dtype) for key in k[:2])
    x, w = jax.random.normal(k[2], (batch, 32, 32, 128), dtype), jax.random.normal(k[3], (3, 3, 128, 128), dtype)
    suffix = "" if dtype == "float32" else f"_{dtype}"
    out[f"matmul{suffix}_gflops_per_s"] = _rate(jax.jit(jnp.matmul), 2 * n ** 3, a, b)
    out[f"conv3x3{suffix}_gflops_per_s"] = _rate(conv, 2 * batch * 32 * 32 * 128 * 128 * 9, x, w)
    out[f"conv3x3_w32{suffix}_gflops_per_s"] = _rate(conv, 2 * batch * 32 * 32 * 32 * 32 * 9, x[..., :32],
                                                     w[:, :, :32, :32])
  return out


def conv_ceiling(report: dict, dtype: str) -> float:
  return report["ceilings"]["conv3x3" + ("" if dtype == "float32" else f"_{dtype}") + "_gflops_per_s"]


def peak_memory() -> dict:
  out = {"host_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
  return out


def _shape(config) -> tuple[int, int, int]:
  return (config.data.image_size, config.data.image_size, input_pipeline.channels(config.data.dataset))


def _batch(trainer, config, batch_size: int):
  shape = _shape(config)
  images = np.random.default_rng(0).integers(0, 256, (batch_size,) + shape, np.uint8)
  labels = None
  if config.model.num_classes:
    labels = trainer.global_batch(np.arange(batch_size, dtype=np.int32) % config.model.num_classes)
  return trainer.global_batch(images), labels


class _Stepper:
  """Calls the trainer's donated-state step on given batches, keeping the latest state."""

  def __init__(self, trainer, state, step: int = 0):
    self.trainer, self.state, self.step = trainer, state, step

  def __call__(self, images, labels=None):
    self.state, metrics = self.trainer.step(self.state, images, labels, step=self.step)
    return self.state, metrics


# ----------------------------------------------------------------------------- the train step
class PreparedStep:
  """A config's train step, compiled and ready to time: compile seconds, FLOPs (XLA's cost analysis)
  and XLA's memory for the step, at state step `start_step` (which picks a multi-phase family's phase,
  e.g. glow_vae's phase 2), on `devices` (default: all). `run` compiles every row before timing any, so
  no measurement shares the machine with a compilation."""

  def __init__(self, config, start_step: int = 0, devices=None):
    trainer = train.Trainer(config, _shape(config), devices=devices)
    state = trainer.init_state(config.seed)
    state = state.replace(step=jax.device_put(np.int32(start_step), state.step.sharding))
    phase = trainer.family.phase(start_step) if trainer.family.num_phases > 1 else 0
    self.images, self.labels = _batch(trainer, config, config.train.batch_size)
    lowered = trainer._step.lower(state, self.images, self.labels, phase)
    start = time.perf_counter()
    compiled = lowered.compile()
    self.compile_s = time.perf_counter() - start
    self.flops, memory = flops_of(lowered), compiled.memory_analysis()
    self.batch = config.train.batch_size
    self.stepper = _Stepper(trainer, state, start_step)
    self.info = {"temp_mib": memory.temp_size_in_bytes / 2 ** 20 if memory else 0.0,
                 "generator_params": reporting.count_params(state.params),
                 "disc_params": reporting.count_params(state.disc_params)}

  def time(self, steps: int) -> dict:
    """Median step time, images/s, GFLOP per image and GFLOP/s over `steps` steps after warm-up
    (steps = 0: not run, times NaN: compile seconds, FLOPs and memory alone)."""
    seconds = timed(self.stepper, self.images, self.labels, steps=steps, warmup=2) if steps else math.nan
    return {"compile_s": self.compile_s, "step_s": seconds, "images_per_s": self.batch / seconds,
            "gflop_per_image": self.flops / self.batch / 1e9, "gflops_per_s": self.flops / seconds / 1e9,
            **self.info}


def train_step(config, steps: int, start_step: int = 0, devices=None) -> dict:
  """`PreparedStep(config, start_step, devices).time(steps)`: one config's step, compiled and timed."""
  return PreparedStep(config, start_step, devices).time(steps)


def breakdown(config, steps: int) -> dict[str, dict]:
  """Each part of a train step compiled and timed alone, as the family lists them
  (`Family.step_parts`: forward and backward, as in training), with its FLOPs: where the step's time
  goes."""
  trainer = train.Trainer(config, _shape(config))
  state = trainer.init_state(config.seed)
  images, labels = _batch(trainer, config, config.train.batch_size)
  try:
    parts = trainer.family.step_parts(state, images, labels, jax.random.key(0))
  except NotImplementedError as e:
    raise config_lib.ConfigError(f"--breakdown: {e}") from None
  in_dtype = lambda fn: train.in_compute_dtype(fn, config.train.compute_dtype)
  return {name: compile_and_time(in_dtype(fn), *args, steps=steps) for name, (fn, args) in parts.items()}


def input_share(config, steps: int) -> dict:
  """Steps/s of the train step fed as train.py feeds it (host batches of the in-memory training split,
  copied to the device each step) against the same step on one device-resident batch."""
  trainer = train.Trainer(config, _shape(config))
  state = trainer.init_state(config.seed)
  data = input_pipeline.load_split(config.data, config.data.train_split)
  order = input_pipeline.BatchOrder(len(data), config.train.batch_size, config.seed, 0, 1)
  batches = input_pipeline.train_batches(data, order, 0)
  resident, labels = _batch(trainer, config, config.train.batch_size)
  stepper = _Stepper(trainer, state)

  def fed():
    host, host_labels = next(batches)
    lab = trainer.global_batch(host_labels) if trainer.num_classes else None
    return stepper(trainer.global_batch(host), lab)

  t_resident = timed(stepper, resident, labels, steps=steps, warmup=2)
  t_fed = timed(fed, steps=steps, warmup=2)
  return {"resident_step_s": t_resident, "fed_step_s": t_fed,
          "input_overhead_percent": 100.0 * (t_fed - t_resident) / t_resident}


def back_to_back(fn, *args, steps: int = 10, warmup: int = 2) -> float:
  """Seconds per call of fn(*args) over `steps` calls queued back to back and synchronised once, after
  `warmup` synchronised calls: the device's throughput, as a training loop that never waits runs it."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(steps - 1):
    fn(*args)
  jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / steps


def loop_share(config, windows: int = 5) -> dict:
  """The training loop as a run executes it (`train.train_and_evaluate`: host batches from the
  in-memory split copied to the device, the donated state, one synchronising read of the metrics per
  logging step, the logging step's instruments and progress line) against the bare compiled step
  queued back to back on one device-resident batch. The loop is timed between the synchronisation
  points of its logging steps, from the first (after the compilation) over `windows` logging windows
  of train.log_every steps, and the bare step over as many windows of as many steps; each is the
  median window's seconds per step. The final evaluation, images and checkpoint come after. The
  logging step's instruments (`Trainer.gradient_norms`) are also timed alone, so the loop's overhead is
  shown with them and without them."""
  import tempfile
  from unittest import mock

  every = config.train.log_every
  n = every * (windows + 1)
  c = ml_collections.ConfigDict(config.to_dict())
  c.train.num_steps, c.train.image_every, c.ckpt.every, c.eval.every = n, n, n, 0
  c.eval.num_examples = c.eval.batch_size  # the final evaluation is outside the window: keep it short
  ticks = {}
  tick = reporting.Reporter.tick

  def recorded(self, step):  # called right after the logging step's synchronising read
    ticks[step] = time.perf_counter()
    tick(self, step)

  with tempfile.TemporaryDirectory() as workdir, mock.patch.object(reporting.Reporter, "tick", recorded):
    train.train_and_evaluate(c, workdir)
  windows_s = [(ticks[every * (i + 1)] - ticks[every * i]) / every for i in range(1, windows + 1)]
  prepared = PreparedStep(c)
  stepper = prepared.stepper
  bare_windows_s = [back_to_back(stepper, prepared.images, prepared.labels, steps=every, warmup=w)
                    for w in [2] + [0] * (windows - 1)]
  loop_s, bare_s = statistics.median(windows_s), statistics.median(bare_windows_s)
  norms_s = timed(lambda: stepper.trainer.gradient_norms(stepper.state, prepared.images, prepared.labels),
                  steps=max(3, windows), warmup=1)
  overhead = 100.0 * (loop_s - bare_s) / bare_s
  norms = 100.0 * norms_s / every / bare_s
  return {"loop_step_s": loop_s, "bare_step_s": bare_s, "loop_windows_s": windows_s,
          "bare_windows_s": bare_windows_s, "steps_timed": n - every, "log_every": every,
          "gradient_norms_s": norms_s, "loop_overhead_percent": overhead,
          "gradient_norms_percent": norms, "loop_overhead_without_instruments_percent": overhead - norms}


def eval_costs(config, steps: int) -> dict:
  """Per image: a train step, held-out bits/dim (the ELBO pass) and sampling."""
  trainer = train.Trainer(config, _shape(config))
  state = trainer.init_state(config.seed)
  b = config.train.batch_size
  images, labels = _batch(trainer, config, b)
  stepper = _Stepper(trainer, state)
  t_step = timed(stepper, images, labels, steps=steps, warmup=2)
  host = np.asarray(jax.device_get(images))
  state = stepper.state
  t_eval = timed(lambda: trainer.per_example_bpd(state, host, chunk=b), steps=steps)
  t_sample = timed(lambda: trainer.sample(state, b), steps=steps)
  return {"train_ms_per_image": 1e3 * t_step / b, "eval_bpd_ms_per_image": 1e3 * t_eval / b,
          "sample_ms_per_image": 1e3 * t_sample / b}


# ----------------------------------------------------------------------------- the report
def run(config: ml_collections.ConfigDict, modes, batches, image_sizes, steps: int, *,
        dtypes=None, device_counts=None, with_breakdown: bool = False, with_input: bool = False,
        with_eval: bool = False, with_loop: bool = False, before_timing=None) -> dict:
  """One row per compute dtype x device count x mode x image size x batch (defaults: the config's), all
  compiled before any is timed (`before_timing()`, if given, runs in between: e.g. to wait for other
  processes sharing an accelerator), then the optional parts on the last mode at the config's dtype."""
  dtypes = list(dtypes or [config.train.compute_dtype])
  device_counts = list(device_counts or [jax.device_count()])
  report = {"device": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "jax": jax.__version__,
            "steps": []}
  prepared = []
  for dtype, count, mode, size, batch in itertools.product(dtypes, device_counts, modes, image_sizes, batches):
    c = ml_collections.ConfigDict(config.to_dict())
    c.mode = mode
    c.train.batch_size, c.data.image_size, c.train.compute_dtype = batch, size, dtype
    config_lib.validate(c)
    config_lib.check_devices(c, count)
    row = {"mode": mode, "batch": batch, "image_size": size, "compute_dtype": dtype, "devices": count,
           "remat": bool(c.train.remat)}
    prepared.append((row, PreparedStep(c, devices=jax.devices()[:count])))
    logging.info("compiled %s in %.1f s", row, prepared[-1][1].compile_s)
  if before_timing is not None:
    before_timing()
  report["ceilings"] = ceilings(tuple(dict.fromkeys(["float32"] + dtypes)))  # timed with the steps
  for row, step in prepared:
    row.update(step.time(steps))
    row["fraction_of_conv3x3"] = row["gflops_per_s"] / conv_ceiling(report, row["compute_dtype"])
    report["steps"].append(row)
    logging.info("%s", row)
  del prepared
  first = ml_collections.ConfigDict(config.to_dict())
  first.mode = modes[-1]
  if with_breakdown:
    report["breakdown"] = {"mode": first.mode, "compute_dtype": first.train.compute_dtype,
                           "parts": breakdown(first, steps)}
  if with_input:
    report["input"] = input_share(first, steps)
  if with_eval:
    report["eval"] = eval_costs(first, steps)
  if with_loop:
    report["loop"] = loop_share(first)
  report["memory"] = peak_memory()
  return report


def format_report(report: dict) -> str:
  c = report["ceilings"]
  rates = ", ".join(f"{k.replace('_gflops_per_s', '').replace('_', ' ')} {v:.0f}" for k, v in c.items())
  lines = [f"{report['device']}, jax {report['jax']}; this process's GFLOP/s: {rates} (no dtype named: "
           "float32)", "",
           "| mode | dtype | devices | batch | size | compile s | step s | x first | images/s | GFLOP/image "
           "| GFLOP/s | of conv3x3 | temp MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  first = report["steps"][0]["step_s"] if report["steps"] else 1.0
  for r in report["steps"]:
    dtype = r.get("compute_dtype", "float32") + (" remat" if r.get("remat") else "")
    lines.append(f"| {r['mode']} | {dtype} | {r.get('devices', 1)} | {r['batch']} | {r['image_size']} | "
                 f"{r['compile_s']:.1f} | {r['step_s']:.3g} | {r['step_s'] / first:.2f} | {r['images_per_s']:.1f} | "
                 f"{r['gflop_per_image']:.3g} | {r['gflops_per_s']:.3g} | {100 * r['fraction_of_conv3x3']:.0f}% | "
                 f"{r.get('temp_mib', 0):.0f} |")
  if "breakdown" in report:
    parts = report["breakdown"]["parts"]
    total_s = sum(p["seconds"] for p in parts.values()) or 1.0
    total_f = sum(p["gflop"] for p in parts.values()) or 1.0
    lines += ["", f"Parts of a {report['breakdown']['mode']} step, each compiled alone (forward + backward):", "",
              "| part | GFLOP | share of FLOPs | ms | share of time | GFLOP/s |", "|---|---|---|---|---|---|"]
    for name, p in parts.items():
      lines.append(f"| {name} | {p['gflop']:.3g} | {100 * p['gflop'] / total_f:.0f}% | {1e3 * p['seconds']:.3g} | "
                   f"{100 * p['seconds'] / total_s:.0f}% | {p['gflops_per_s']:.3g} |")
  if "input" in report:
    i = report["input"]
    lines += ["", f"Input path: {i['fed_step_s']:.3f} s/step fed from host batches vs {i['resident_step_s']:.3f} "
              f"s/step on a device-resident batch ({i['input_overhead_percent']:+.1f}%)."]
  if "eval" in report:
    e = report["eval"]
    lines += ["", f"Per image: train step {e['train_ms_per_image']:.2f} ms, held-out bits/dim "
              f"{e['eval_bpd_ms_per_image']:.2f} ms, sampling {e['sample_ms_per_image']:.2f} ms."]
  if "loop" in report:
    lo = report["loop"]
    spread = lambda ts: ", ".join(f"{t:.4g}" for t in ts)
    lines += ["", f"Training loop: {lo['loop_step_s']:.4g} s/step (median of windows of {lo['log_every']} steps "
              f"between synchronised logging steps: {spread(lo['loop_windows_s'])}) vs {lo['bare_step_s']:.4g} "
              f"s/step for the bare step queued back to back ({spread(lo['bare_windows_s'])}): "
              f"{lo['loop_overhead_percent']:+.1f}%; of that, the logging step's gradient norms "
              f"({lo['gradient_norms_s']:.3g} s every {lo['log_every']} steps) "
              f"{lo['gradient_norms_percent']:.1f}% and the rest of the loop "
              f"{lo['loop_overhead_without_instruments_percent']:+.1f}%."]
  m = report["memory"]
  lines += ["", "Peak memory: host " + f"{m['host_peak_mib']:.0f} MiB"
            + (f", device {m['device_peak_mib']:.0f} MiB" if "device_peak_mib" in m else " (device: not reported)")]
  return "\n".join(lines)


FLAGS = flags.FLAGS


def _positive_ints(flag: str, values) -> list[int]:
  """A list flag of positive integers, or a ConfigError naming the flag."""
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise config_lib.ConfigError(f"--{flag}: expected comma-separated positive integers, got "
                                 f"{','.join(values)!r}") from None
  if any(v < 1 for v in out):
    raise config_lib.ConfigError(f"--{flag}: each value must be positive, got {','.join(values)!r}")
  return out


def main(argv):
  from adejax import cli

  del argv
  reporting.quiet_library_logs()
  with cli.user_errors("adejax.benchmark"):
    config = FLAGS.config
    if config is None:
      raise config_lib.ConfigError("--config is required, e.g. --config=configs/cifar_avade.py")
    config_lib.validate(config)
    modes = FLAGS.modes or [config.mode]
    known = families.family_class(config).modes
    if FLAGS.modes and not known:
      raise config_lib.ConfigError(f"--modes: family {config.model.family!r} has no modes; leave --modes out")
    unknown = [m for m in FLAGS.modes or [] if m not in known]
    if unknown:
      raise config_lib.ConfigError(f"--modes: unknown {unknown}; modes are {sorted(known)}")
    batches = _positive_ints("batch", FLAGS.batch) or [config.train.batch_size]
    sizes = _positive_ints("image_size", FLAGS.image_size) or [config.data.image_size]
    bad = [d for d in FLAGS.compute_dtypes if d not in layers.COMPUTE_DTYPES]
    if bad:
      raise config_lib.ConfigError(f"--compute_dtypes: unknown {bad}; choose from {list(layers.COMPUTE_DTYPES)}")
    counts = _positive_ints("devices", FLAGS.devices)
    if any(not 1 <= n <= jax.device_count() for n in counts):
      raise config_lib.ConfigError(f"--devices: each count must be in 1..{jax.device_count()} (more host "
                                   "devices: XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    report = run(config, modes, batches, sizes, FLAGS.steps, dtypes=FLAGS.compute_dtypes,
                 device_counts=counts, with_breakdown=FLAGS.breakdown, with_input=FLAGS.input,
                 with_eval=FLAGS.eval, with_loop=FLAGS.loop)
    print(format_report(report))
    if FLAGS.json:
      reporting.write_json(FLAGS.json, report)
      print("Wrote", FLAGS.json)


if __name__ == "__main__":
  from ml_collections import config_flags

  from adejax import cli

  config_flags.DEFINE_config_file("config", None, "Config to time, e.g. configs/cifar_avade.py.",
                                  lock_config=True)
  flags.DEFINE_list("modes", [], "Modes to time (families with modes: AV-ADE's Table-1 rows); default: the config's.")
  flags.DEFINE_list("batch", [], "Batch sizes; default: the config's.")
  flags.DEFINE_list("image_size", [], "Image sizes; default: the config's.")
  flags.DEFINE_list("compute_dtypes", [], "train.compute_dtype values to time (float32, bfloat16); "
                    "default: the config's.")
  flags.DEFINE_list("devices", [], "Device counts to time (the first N devices); default: all.")
  flags.DEFINE_integer("steps", 10, "Timed steps per measurement (after warm-up); 0: compile only "
                       "(FLOPs and memory, no times).")
  flags.DEFINE_bool("breakdown", False, "Time the parts of the step (families that list them).")
  flags.DEFINE_bool("input", False, "Compare host-fed steps with a device-resident batch.")
  flags.DEFINE_bool("eval", False, "Time held-out bits/dim and sampling per image.")
  flags.DEFINE_bool("loop", False, "Time the real training loop against the bare step.")
  flags.DEFINE_string("json", "", "Also write the report as JSON here.")
  app.run(main, flags_parser=cli.flags_parser("adejax.benchmark"))
