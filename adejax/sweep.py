"""Run the paper's tables: `python -m adejax.sweep --experiment=experiments/ablation.py --workdir=DIR`.

An experiment file defines `get_experiment(scale) -> list[Member]`: one named config per row of a
paper table, with the paper's numbers for that row. Each member trains (or resumes) in DIR/<name>,
is evaluated, and leaves DIR/<name>/done.json; finished members are skipped on the next call (with
--report=STEM also those whose rows a committed STEM.csv holds, `results.restore_reported`).
The collected metrics go to DIR/results.md and DIR/results.csv, with the paper's numbers beside ours
(`adejax.results`).

  --scale=full    the paper's settings (GPUs / TPUs)
  --scale=small   the same structure at a budget a 2-core CPU runs (offline Fashion-MNIST)
  --scale=tiny    seconds per member (tests)
  --print_commands  one launch line per member (for a cluster scheduler), then a --collect_only line
  --jobs=N        N members at once, each in its own process on its share of the CPU cores and, on an
                  accelerator host, of each device's memory
  --curve_every=K each member trains in stages of K steps and is evaluated after each: its learning
                  curve in DIR/<name>/curve.csv, and with --report=STEM all members' curves in STEM.csv,
                  .md and .png (`results.write_curve_report`); --curve_steps=N trains every member to N
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from adejax import config_lib, reporting, results
from adejax.experiment import SCALES, Member, generator_param_count, load_experiment
from adejax.experiment import load_module as experiment_module

# ----------------------------------------------------------------------------- running and collecting
def run_member(member: Member, workdir: str, curve_every: int = 0, on_stage=lambda: None) -> dict:
  """Train and evaluate one member in `workdir` (resuming its checkpoint); its metrics go to done.json.
  curve_every > 0: in stages, with a learning curve (`train_in_stages`)."""
  from adejax import evaluate

  done = os.path.join(workdir, "done.json")
  if os.path.exists(done):
    logging.info("%s: finished earlier, skipping.", member.name)
    return json.load(open(done))
  if curve_every:
    metrics = train_in_stages(member, workdir, curve_every, on_stage)
  else:
    trained, trained_for = _timed_train(member.config, workdir)
    began = time.time()
    metrics = evaluate.evaluate_run(member.config, workdir, trained)  # no restore of what it just trained
    metrics["train_seconds"], metrics["eval_seconds"] = round(trained_for, 1), round(time.time() - began, 1)
  metrics["generator_params"] = generator_param_count(member.config)
  reporting.write_json(done, metrics)
  return metrics


CURVE_FILE = "curve.csv"  # in a member's workdir: one row per evaluated stage (--curve_every)


def train_in_stages(member: Member, workdir: str, every: int, on_stage=lambda: None) -> dict:
  """Train `member` to its train.num_steps in stages of `every` steps, each resuming the last stage's
  checkpoint, and evaluate after each (every metric of `evaluate.evaluate_run`): one row per stage, with
  the training seconds so far, in workdir/curve.csv, and the stage's samples kept as
  eval/samples_step<N>.png (a stage stopped by SIGTERM or Ctrl-C and resumed counts the time of both
  attempts). train.num_steps is a loop-only field (`train.LOOP_ONLY_FIELDS`), so every
  stage trains the same model with the same schedule: the curve is one run's. Stages already in
  curve.csv are not repeated (a stopped member resumes). Returns the last stage's metrics."""
  import shutil

  from adejax import evaluate

  path = os.path.join(workdir, CURVE_FILE)
  rows = results.load_results(path) if os.path.exists(path) else []
  total = int(member.config.train.num_steps)
  metrics = {}
  for stage in [*range(every, total, every), total]:
    if any(r.get("step") == stage for r in rows):
      continue
    config = member.config.copy_and_resolve_references()
    config.train.num_steps = stage
    trained, trained_for = _timed_train(config, workdir)
    began = time.time()
    metrics = evaluate.evaluate_run(config, workdir, trained)
    evaluated_for = time.time() - began
    done_before = [r for r in rows if r["step"] < stage]
    rows.append({"step": int(metrics["step"]),
                 "train_seconds": round(trained_for + (done_before[-1]["train_seconds"] if done_before else 0), 1),
                 "eval_seconds": round(evaluated_for, 1),
                 **{k: v for k, v in metrics.items() if k != "step"}})
    rows.sort(key=lambda r: r["step"])
    results.write_rows(rows, path)
    out = os.path.join(workdir, "eval")
    shutil.copyfile(os.path.join(out, f"samples_t{evaluate.TEMPERATURES[-1]:.1f}.png"),
                    os.path.join(out, f"samples_step{stage}.png"))
    logging.info("%s: curve at step %d (%s).", member.name, stage, path)
    on_stage()
  if not metrics:  # every stage was in curve.csv (stopped before done.json was written)
    metrics = dict(rows[-1])
  # the member's cost: training to its last stage, and its last stage's evaluation
  return {**metrics, **{k: rows[-1][k] for k in ("train_seconds", "eval_seconds") if k in rows[-1]}}


def _timed_train(config, workdir: str):
  """`train.train(config, workdir)` and the seconds it took to reach config.train.num_steps, counting
  the attempts stopped by SIGTERM or Ctrl-C before this one (`_add_partial_seconds`)."""
  from adejax import train

  steps, began = int(config.train.num_steps), time.time()
  try:
    trained = train.train(config, workdir)
  except train.Interrupted:  # this attempt's time counts when it resumes
    _add_partial_seconds(workdir, steps, time.time() - began)
    raise
  return trained, time.time() - began + _add_partial_seconds(workdir, steps, 0.0, clear=True)


def _add_partial_seconds(workdir: str, stage: int, seconds: float, clear: bool = False) -> float:
  """The training seconds a stage's (or a run's: its last step) stopped attempts spent
  (workdir/curve_partial.json), plus `seconds`;
  kept for the stage's next attempt, or cleared once it is done. A process killed without SIGTERM or
  Ctrl-C leaves no record: its stage's train_seconds then miss that attempt's time."""
  path = os.path.join(workdir, "curve_partial.json")
  kept = json.load(open(path)) if os.path.exists(path) else {}
  total = float(kept.get(str(stage), 0.0)) + seconds
  if clear:
    if os.path.exists(path):
      os.remove(path)
  else:
    reporting.write_json(path, {str(stage): total})
  return total


class Stopped(Exception):
  """A --jobs sweep stopped by SIGTERM after its running members saved their checkpoints."""


JOB_CPUS_ENV = "ADEJAX_SWEEP_JOB_CPUS"  # set by --jobs in each member's process: the CPUs it runs on
JOBS_ENV = "ADEJAX_SWEEP_JOBS"  # ... and how many members share the host
MEM_FRACTION_ENV = "XLA_PYTHON_CLIENT_MEM_FRACTION"  # JAX's share of each accelerator's memory (default 0.75)
ACCELERATOR_MEMORY = 0.8  # what --jobs members share of each accelerator's memory, split evenly


def cpu_slices(jobs: int) -> list[list[int]]:
  """The CPUs this process may use, split into `jobs` contiguous slices (one per concurrent member)."""
  cpus = (sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
          else list(range(os.cpu_count() or 1)))
  if not 1 <= jobs <= len(cpus):
    raise config_lib.ConfigError(f"--jobs={jobs}: must be between 1 and the {len(cpus)} CPUs this "
                                 "process may use")
  return [[int(c) for c in part] for part in np.array_split(cpus, jobs)]


def member_env(cpus: list[int], jobs: int, environ=None) -> dict:
  """The environment of one --jobs member's process: its slice of the CPUs, and on an accelerator host
  its even share of each device's memory (JAX preallocates that fraction when its backend starts; small
  models use a few per cent of a GPU, so N members pack onto one). A fraction the user set wins."""
  environ = dict(os.environ if environ is None else environ)
  env = {**environ, JOB_CPUS_ENV: ",".join(map(str, cpus)), JOBS_ENV: str(jobs)}
  if MEM_FRACTION_ENV not in environ:
    env[MEM_FRACTION_ENV] = f"{ACCELERATOR_MEMORY / jobs:.4f}"
  return env


def pin_to_job_cpus() -> None:
  """In a member's process started by --jobs: keep to its slice of the CPUs (XLA:CPU sizes its thread
  pool from them when its backend starts); on an accelerator, say which share of its memory it has."""
  cpus = [int(c) for c in os.environ[JOB_CPUS_ENV].split(",")]
  if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, cpus)
    cpus = sorted(os.sched_getaffinity(0))  # what the process now runs on
  logging.info("Member process on CPUs %s (--jobs).", cpus)
  if jax.default_backend() != "cpu":
    logging.info("Sharing %d %s device(s) with the other members of --jobs=%s: %s of each device's "
                 "memory (%s).", jax.device_count(), jax.default_backend(), os.environ.get(JOBS_ENV, "?"),
                 os.environ.get(MEM_FRACTION_ENV, "JAX's default"), MEM_FRACTION_ENV)


def prerequisites(member: Member, members: list[Member], workdir: str) -> list[str]:
  """The members whose run `member` starts from (train.init_checkpoint naming another member's
  workdir, e.g. gan_bpd's "../gan"): under --jobs it waits until they are done."""
  start = member.config.train.get("init_checkpoint", "")
  if not start:
    return []
  path = os.path.normpath(os.path.join(workdir, member.name, start))
  return [m.name for m in members if m.name != member.name
          and os.path.normpath(os.path.join(workdir, m.name)) == path]


def next_ready(pending: list[Member], members: list[Member], workdir: str):
  """The first pending member whose prerequisites are all done, or None."""
  done = lambda name: os.path.exists(os.path.join(workdir, name, "done.json"))
  return next((m for m in pending if all(done(p) for p in prerequisites(m, members, workdir))), None)


def run_parallel(members: list[Member], experiment: str, workdir: str, scale: str, jobs: int,
                 on_finish=lambda name: None, extra_flags=(), on_tick=lambda: None) -> list[str]:
  """Run `members` `jobs` at a time, each in its own process (`--only=NAME`) pinned to its slice of the
  CPUs and with its share of each accelerator's memory (`member_env`), with its output appended to
  workdir/logs/NAME.log. Small models use two CPU threads poorly, so on a
  2-core host two members at once finish sooner than one after the other (README, "The paper's
  experiments"). Returns the names of the members that failed. On Ctrl-C or SIGTERM the running
  members save a checkpoint of their step and stop (SIGTERM then raises `Stopped`), and the same
  command resumes them. A member that starts from another's checkpoint (`prerequisites`) waits for it.
  `on_finish(name)` is called as each member finishes, `on_tick()` about every 30 s (learning curves'
  reports); `extra_flags` are passed on to each member's command line."""
  import signal
  import subprocess

  slices, logs = cpu_slices(jobs), os.path.join(workdir, "logs")
  os.makedirs(logs, exist_ok=True)
  pending = [m for m in members if not os.path.exists(os.path.join(workdir, m.name, "done.json"))]
  running, failed, start, stop, ticked = {}, [], time.time(), [], time.time()
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
  try:
    while (pending or running) and not stop:
      for slot in range(jobs):
        m = next_ready(pending, members, workdir) if slot not in running else None
        if m is not None:
          pending.remove(m)
          path = os.path.join(logs, f"{m.name}.log")
          log = open(path, "a")  # a resumed member adds to its log
          command = [sys.executable, "-m", "adejax.sweep", f"--experiment={experiment}",
                     f"--workdir={workdir}", f"--scale={scale}", f"--only={m.name}", *extra_flags]
          env = member_env(slices[slot], jobs)
          proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
          running[slot] = (m.name, proc, log, path, time.time())
          logging.info("%s: started on CPUs %s, output in %s.", m.name, slices[slot], path)
      if pending and not running and next_ready(pending, members, workdir) is None:
        for m in pending:  # what they start from failed: they cannot run
          failed.append(m.name)
          logging.error("%s not started: it starts from %s, which did not finish.", m.name,
                        ", ".join(prerequisites(m, members, workdir)))
        pending = []
        break
      time.sleep(0.5)
      if time.time() - ticked > 30:
        on_tick()
        ticked = time.time()
      for slot, (name, proc, log, path, began) in list(running.items()):
        if proc.poll() is None:
          continue
        log.close()
        del running[slot]
        if proc.returncode:
          failed.append(name)
          logging.error("%s failed (exit status %d): see %s.", name, proc.returncode, path)
        else:
          logging.info("%s: finished in %.0f s.", name, time.time() - began)
          on_finish(name)
  finally:
    signal.signal(signal.SIGTERM, previous)
    for _, proc, log, _, _ in running.values():
      proc.terminate()  # SIGTERM: the member saves a checkpoint of its step and exits
    for _, proc, log, _, _ in running.values():
      proc.wait()
      log.close()
    on_tick()  # what the stopped members' last stages left
  if stop:
    raise Stopped(f"SIGTERM: the running members ({', '.join(r[0] for r in running.values())}) saved a "
                  "checkpoint of their step; run the same command again to resume them.")
  logging.info("--jobs=%d: %d members in %.1f minutes.", jobs, len(members), (time.time() - start) / 60)
  return failed


FLAGS = flags.FLAGS


def choose(members: list[Member], only: list[str]) -> list[Member]:
  """The members `--only` names, in its order (the order they start in: with --jobs, the longest
  first finishes soonest), or all of them; an unknown name is an error that lists the members."""
  by_name = {m.name: m for m in members}
  unknown = sorted(set(only) - set(by_name))
  if unknown:
    raise config_lib.ConfigError(f"--only: unknown members {unknown}; members are {list(by_name)}")
  return [by_name[n] for n in dict.fromkeys(only)] if only else members


def _when_changed(report, members: list[Member], workdir: str):
  """`report()`, called only when a member's curve.csv changed since the last call; a report that
  fails is logged, never stops the running members (the next change or the end writes it again)."""
  seen = {}

  def tick():
    paths = [os.path.join(workdir, m.name, CURVE_FILE) for m in members]
    now = {p: os.path.getmtime(p) for p in paths if os.path.exists(p)}
    if now != seen:
      seen.clear()
      seen.update(now)
      try:
        report()
      except Exception as e:  # noqa: BLE001  (a plot or a file: the members' runs matter more)
        logging.warning("The curve report could not be written (%s: %s); trying again later.",
                        type(e).__name__, e)
  return tick


@contextlib.contextmanager
def _stopped_exits_0():
  try:
    yield
  except Stopped as e:  # as a training run does on SIGTERM (adejax.cli)
    print(f"adejax.sweep: stopped by {e}", file=sys.stderr)
    sys.exit(0)


def main(argv):
  del argv
  from adejax import cli

  reporting.quiet_library_logs()
  with cli.user_errors("adejax.sweep"), _stopped_exits_0():
    member_process = bool(os.environ.get(JOB_CPUS_ENV))  # one member's process under --jobs
    if member_process:
      pin_to_job_cpus()  # before anything starts XLA's thread pool
    command = " ".join(["python -m adejax.sweep"] + [a for a in sys.argv[1:] if a != "--collect_only"])
    if FLAGS.combine:
      if not FLAGS.report:
        raise config_lib.ConfigError("--combine writes a report: give --report=STEM (e.g. docs/results/all_small)")
      print("Wrote", results.write_report(results.combine(FLAGS.combine), FLAGS.report, command))
      return
    if not FLAGS.experiment or not FLAGS.workdir:
      raise config_lib.ConfigError("--experiment and --workdir are required (or --combine with --report)")
    module = experiment_module(FLAGS.experiment)
    members = load_experiment(FLAGS.experiment, FLAGS.scale, module)
    comparisons = getattr(module, "COMPARISONS", ())
    names = [m.name for m in members]
    chosen = choose(members, FLAGS.only)
    if FLAGS.print_commands:
      base = f"python -m adejax.sweep --experiment={FLAGS.experiment} --workdir={FLAGS.workdir} --scale={FLAGS.scale}"
      print("\n".join([f"{base} --only={n}" for n in names] + [f"{base} --collect_only"]))
      return
    if FLAGS.curve_every < 0 or FLAGS.curve_steps < 0:
      raise config_lib.ConfigError("--curve_every and --curve_steps must be >= 0 (0 = off)")
    if FLAGS.curve_steps:  # a loop-only field: the members' models and schedules are unchanged
      for m in members:
        m.config.train.num_steps = FLAGS.curve_steps
    if member_process:  # the parent collects
      for m in chosen:
        run_member(m, os.path.join(FLAGS.workdir, m.name), FLAGS.curve_every)
      return
    failed, report = [], lambda name=None: None
    if FLAGS.report:
      # Members whose rows a committed report already holds are not run again (another machine, a
      # deleted workdir), and the report is rewritten as each member finishes (each stage of a
      # learning curve): commit it as you go.
      for path in [FLAGS.report + ".csv", *FLAGS.restore_from]:
        restored = results.restore_reported(members, FLAGS.workdir, path)
        if restored:
          logging.info("Finished in %s, not run again: %s.", path, ", ".join(restored))
      if FLAGS.curve_every:
        report = lambda name=None: results.write_curve_report(members, FLAGS.workdir, FLAGS.report, command)
      else:
        report = lambda name=None: results.write_report(results.collect(members, FLAGS.workdir),
                                                        FLAGS.report, command, comparisons)
    if not FLAGS.collect_only:
      if FLAGS.jobs != 1:  # (cpu_slices refuses 0 and more jobs than CPUs)
        extra = [f"--curve_every={FLAGS.curve_every}", f"--curve_steps={FLAGS.curve_steps}"]
        failed = run_parallel(chosen, FLAGS.experiment, FLAGS.workdir, FLAGS.scale, FLAGS.jobs, report,
                              extra_flags=extra if FLAGS.curve_every else (),
                              on_tick=_when_changed(report, members, FLAGS.workdir) if FLAGS.curve_every
                              else lambda: None)
      else:
        for m in chosen:
          run_member(m, os.path.join(FLAGS.workdir, m.name), FLAGS.curve_every, on_stage=report)
          report()
    results.collect(members, FLAGS.workdir)
    print(open(os.path.join(FLAGS.workdir, "results.md")).read())
    if FLAGS.report:
      # the command that regenerates everything (a --collect_only call only gathers finished runs)
      print("Wrote", report())
    if failed:
      raise config_lib.ConfigError(f"members failed: {', '.join(failed)} (their logs are in "
                                   f"{os.path.join(FLAGS.workdir, 'logs')}); run again to retry them")


if __name__ == "__main__":
  flags.DEFINE_string("experiment", None, "Experiment file, e.g. experiments/ablation.py.")
  flags.DEFINE_string("workdir", None, "Root folder; each member runs in a sub-folder.")
  flags.DEFINE_enum("scale", "full", list(SCALES), "full (paper), medium (2-core CPU, hours: the "
                    "experiment's measured budget), small (2-core CPU, minutes), tiny (tests).")
  flags.DEFINE_list("only", [], "Run only these members, started in this order (with --jobs=N, the "
                    "longest first finishes soonest).")
  flags.DEFINE_bool("print_commands", False, "Print one launch line per member and exit.")
  flags.DEFINE_integer("jobs", 1, "Members run at once, each in its own process on its share of this "
                       "host's CPU cores and of each accelerator's memory.")
  flags.DEFINE_bool("collect_only", False, "Only collect finished members into results.md/csv.")
  flags.DEFINE_string("report", "", "Also write REPORT.md (command + table), REPORT.csv and REPORT.png "
                      "(scatter), rewritten as each member finishes; members whose rows REPORT.csv holds at "
                      "their budget are restored from it, not run again.")
  flags.DEFINE_integer("curve_every", 0, "Train each member in stages of this many steps, evaluated after "
                       "each: a learning curve per member (with --report: REPORT.csv/.md/.png are the curves).")
  flags.DEFINE_integer("curve_steps", 0, "Train every member to this many steps instead of its budget (a "
                       "loop-only setting: models and schedules unchanged); for learning curves.")
  flags.DEFINE_list("restore_from", [], "With --report: also restore members from these results CSVs (e.g. a "
                    "learning curve's, whose row at a member's budget is that member, trained in stages).")
  flags.DEFINE_list("combine", [], "Sweeps' results (workdirs or results CSVs) to put in one --report "
                    "table and plot, instead of running an experiment.")
  from adejax import cli

  app.run(main, flags_parser=cli.flags_parser("adejax.sweep"))
