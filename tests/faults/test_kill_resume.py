"""kill -9, SIGTERM and Ctrl-C at seeded moments of a real training run (during a step, during a
checkpoint write, during evaluation): relaunching the same command always finishes the run, no
partial checkpoint is ever restored, and every checkpoint -- the final one included -- is
bit-identical to that of an uninterrupted run of the same config."""
import os
import random
import shutil
import signal

import pytest

import faultlib

pytestmark = pytest.mark.faults

NUM_STEPS = 36  # > the progress of all interrupted launches together (at most 4 steps each)
# Seeded kill -9 moments: step, checkpoint write, evaluation, step (each launch a fresh process: about
# 20 s of startup with the reference run's compiled programs, so the suite samples 4 moments, every kind
# at least once).
KILL_SEEDS = range(4)
POINTS = ("step", "checkpoint", "eval")


def kill_plan(seed: int) -> str:
  """A seeded moment: the point cycles over the three kinds, the occurrence is drawn."""
  rng = random.Random(seed)
  point = POINTS[seed % 3]
  return f"{point}:{1 if point == 'eval' else rng.randint(1, 3)}"


def args(workdir, idx_dir, num_steps=NUM_STEPS):
  return ["--config=configs/default.py:tiny", f"--workdir={workdir}", f"--config.data.idx_dir={idx_dir}",
          f"--config.train.num_steps={num_steps}", "--config.ckpt.every=1", "--config.ckpt.keep=1000",
          "--config.train.log_every=2", "--config.eval.every=4", "--config.train.image_every=18"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  return faultlib.small_idx_dir(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, idx_dir):
  """The uninterrupted run, compiled from scratch. The compilation cache it fills is kept aside (warm)
  and copied back to the same folder before each interrupted launch (`faultlib.refill_cache`), so they
  compile nothing and a kill mid-write spoils only that launch's copy. That the relaunched runs'
  checkpoints equal this run's also checks that executables read back from the cache compute exactly
  what freshly compiled ones do."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  caches = tmp_path_factory.mktemp("compilation_cache")
  live, warm = str(caches / "live"), str(caches / "warm")
  result = faultlib.launch(*args(workdir, idx_dir), compilation_cache=live)
  assert result.returncode == 0, result.stderr[-3000:]
  assert faultlib.checkpoint_steps(workdir) == list(range(1, NUM_STEPS + 1))
  shutil.copytree(live, warm)
  assert any(n.startswith("jit_") for n in os.listdir(warm))
  return workdir, lambda: faultlib.refill_cache(warm, live)


def test_kills_terms_and_ctrl_c_then_relaunch_give_bit_identical_checkpoints(tmp_path, idx_dir, reference):
  reference, cache = reference
  workdir = str(tmp_path / "run")
  plans = [(kill_plan(s), -signal.SIGKILL) for s in KILL_SEEDS]
  plans[3:3] = [("step:2:TERM", 0), ("checkpoint:1:TERM", 0)]   # preemption notice mid-step / mid-write
  plans[6:6] = [("step:1:INT", 130), ("checkpoint:2:INT", 130)]  # Ctrl-C mid-step / mid-write
  assert {p.split(":")[0] for p, _ in plans} == set(POINTS)
  mid_write = 0
  for plan, expected in plans:
    before = faultlib.checkpoint_steps(workdir)
    result = faultlib.launch(*args(workdir, idx_dir), fault=plan, compilation_cache=cache())
    assert result.returncode == expected, (plan, result.stderr[-3000:])
    after = faultlib.checkpoint_steps(workdir)
    if before:
      assert f"Resumed from step {before[-1]} " in result.stderr, plan  # the latest, never an older one
    assert not after or after[-1] < NUM_STEPS, plan  # interrupted before the end (maybe before any
    #                                                   checkpoint was complete)
    if expected >= 0:  # SIGTERM / Ctrl-C: a checkpoint of the step it stopped at, one clear line
      (line,) = faultlib.error_lines(result)
      name = "SIGTERM" if expected == 0 else "SIGINT"
      assert f"stopped by {name} at step {after[-1]}: saved a checkpoint" in line, line
      assert "Traceback" not in result.stderr
    mid_write += any("orbax-checkpoint-tmp" in n for n in os.listdir(os.path.join(workdir, "checkpoints")))
  assert mid_write >= 1  # at least one kill left a half-written checkpoint behind (never restored)

  result = faultlib.launch(*args(workdir, idx_dir), compilation_cache=cache())
  assert result.returncode == 0, result.stderr[-3000:]
  steps = faultlib.checkpoint_steps(workdir)
  assert steps[-1] == NUM_STEPS
  assert not os.path.exists(os.path.join(workdir, "corrupt_checkpoints"))  # nothing needed fixing
  for step in steps:  # every checkpoint ever written, the final parameters included
    faultlib.assert_identical(faultlib.load_checkpoint(workdir, step),
                              faultlib.load_checkpoint(reference, step))
