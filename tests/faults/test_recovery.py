"""Runaway instability, a single bad update, batch-norm statistics, the workdir lock, a full disk and a
preempted sweep member: the run stops or recovers as documented and nothing of the user's is lost."""
import errno
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import faultlib
from adejax import checkpointing, experiment, faults, sweep, train
from adejax.families import base
from configs import default

pytestmark = pytest.mark.faults
SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  return faultlib.small_idx_dir(tmp_path_factory.mktemp("idx"), n_train=32, n_test=8)


def tiny(idx_dir, num_steps, **overrides):
  c = default.get_config("tiny")
  c.data.idx_dir, c.train.num_steps = idx_dir, num_steps
  c.train.log_every = c.ckpt.every = 1
  c.train.image_every = c.eval.every = 1000
  for key, value in overrides.items():
    section, name = key.split(".")
    c[section][name] = value
  return c


def leaves_equal(a, b) -> bool:
  a, b = jax.device_get((a, b))
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_runaway_training_stops_with_the_step_and_the_last_good_checkpoint(tmp_path, idx_dir):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny(idx_dir, 2), workdir)  # two good steps, checkpoints 1 and 2
  good = faultlib.load_checkpoint(workdir, 2)
  # From step 3 on every generator update is non-finite (an infinite loss weight): a runaway run.
  runaway = tiny(idx_dir, 50, **{"loss.adv_weight": float("inf"), "train.max_consecutive_skips": 3})
  with pytest.raises(train.RunawayError) as info:
    train.train_and_evaluate(runaway, workdir)
  message = str(info.value)
  assert "Stopped at step 5: the last 3 steps all skipped" in message
  assert "train.max_consecutive_skips = 3" in message and "3 skipped in all" in message
  assert "the last good checkpoint, step 2" in message
  faultlib.assert_identical(faultlib.load_checkpoint(workdir, 2), good)  # intact
  assert faultlib.checkpoint_steps(workdir)[-1] <= 4  # never a checkpoint beyond the limit
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  meta = ckpt.custom_metadata(4)
  ckpt.close()
  assert meta == {"skipped_updates": 2, "skip_streak": 2, "max_consecutive_skips": 3}


def test_one_bad_batch_is_skipped_and_training_goes_on(idx_dir):
  config = tiny(idx_dir, 3, **{"train.ema_decay": 0.5})
  trainer = train.Trainer(config, SHAPE, devices=jax.devices()[:1])
  rng = np.random.default_rng(0)
  good = lambda: trainer.global_batch(rng.integers(0, 256, (8,) + SHAPE).astype(np.float32))
  bad = np.full((8,) + SHAPE, np.nan, np.float32)  # e.g. a corrupt decoded batch
  s1, _ = trainer.step(trainer.init_state(0), good())
  h1 = jax.device_get(s1)  # the step donates its input state
  s2, _ = trainer.step(s1, trainer.global_batch(bad))
  h2 = jax.device_get(s2)
  assert int(h2.skipped) > int(h1.skipped) and int(h2.skip_streak) == 1
  for field in ("params", "disc_params", "opt_state", "batch_stats", "ema_params"):
    assert leaves_equal(getattr(h2, field), getattr(h1, field)), field  # those of the last good step
  s3, _ = trainer.step(s2, good())
  assert int(s3.skip_streak) == 0 and int(s3.skipped) == int(h2.skipped)
  assert not leaves_equal(s3.params, h2.params) and not leaves_equal(s3.ema_params, h2.ema_params)
  assert bool(train.all_finite(s3.params)) and bool(train.all_finite(s3.ema_params))


def test_a_finite_loss_with_a_nan_gradient_changes_nothing():
  trainer = train.Trainer(default.get_config("tiny"), SHAPE, devices=jax.devices()[:1])
  state = jax.device_get(trainer.init_state(0))
  nan_grads = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), state.disc_params)
  new, ok = base.update_group(state, trainer.family.groups, "disc", nan_grads, jnp.float32(1.0))
  assert not bool(ok) and int(new.skipped) == 1
  assert leaves_equal(new.disc_params, state.disc_params)
  assert leaves_equal(new.opt_state, state.opt_state)


def test_batch_norm_statistics_are_updated_by_a_step_and_used_by_sampling_and_evaluation(idx_dir):
  from adejax import input_pipeline

  config = tiny(idx_dir, 1)
  config.mode = "v-ade"
  trainer = train.Trainer(config, SHAPE, devices=jax.devices()[:1])
  init = trainer.init_state(0)
  before = jax.device_get(init.batch_stats)  # the step donates its input state
  batch = np.random.default_rng(1).integers(0, 256, (8,) + SHAPE).astype(np.uint8)
  state, _ = trainer.step(init, trainer.global_batch(batch))
  assert jax.tree.leaves(state.batch_stats) and not leaves_equal(state.batch_stats, before)
  shifted = state.replace(batch_stats=jax.tree.map(lambda s: s * 3.0 + 0.5, state.batch_stats))
  assert not np.allclose(trainer.sample(state, 4, seed=0), trainer.sample(shifted, 4, seed=0))
  data = input_pipeline.load_split(config.data, "test")
  kw = dict(batch_size=8, num_examples=8)
  assert trainer.evaluate(state, data, **kw)["bpd_elbo"] != trainer.evaluate(shifted, data, **kw)["bpd_elbo"]


def test_a_second_launch_on_a_busy_workdir_is_refused_and_a_killed_lock_is_not_stale(tmp_path, idx_dir):
  workdir = str(tmp_path)
  with train.WorkdirLock(workdir):
    with pytest.raises(train.WorkdirInUseError, match=f"pid {os.getpid()}"):
      train.train_and_evaluate(tiny(idx_dir, 1), workdir)
    result = faultlib.launch("--config=configs/default.py:tiny", f"--workdir={workdir}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = faultlib.error_lines(result)
    assert "is in use by another training run" in line
  # a holder killed with -9 leaves the lock file but not the lock
  holder = subprocess.Popen(
      ["python", "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
       "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
       os.path.join(workdir, ".lock")], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "locked"
  with pytest.raises(train.WorkdirInUseError):
    with train.WorkdirLock(workdir):
      pass
  holder.kill()
  holder.wait()
  with train.WorkdirLock(workdir):  # free at once
    pass
  train.train_and_evaluate(tiny(idx_dir, 1), workdir)


@pytest.fixture
def small_disk(tmp_path):
  """A 24 MB tmpfs mounted for the test (needs root and a kernel that allows it; skipped otherwise)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                        capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'})")
  yield str(mount)
  subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path) -> str:
  filler = os.path.join(path, "filler")
  fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
  try:
    while True:
      os.write(fd, b"\0" * 65536)
  except OSError as e:
    assert e.errno == errno.ENOSPC
  try:  # the last few free blocks
    while True:
      os.write(fd, b"\0" * 512)
  except OSError:
    pass
  os.close(fd)
  return filler


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_and_resumes(small_disk, idx_dir,
                                                                                 monkeypatch):
  workdir = os.path.join(small_disk, "run")
  train.train_and_evaluate(tiny(idx_dir, 2), workdir)
  before = faultlib.load_checkpoint(workdir, 2)
  fillers = []
  # the disk fills up during step 3, after the run started: the checkpoint write of step 3 fails
  monkeypatch.setattr(train.faults, "at", lambda point: point == "step" and not fillers
                      and fillers.append(fill(small_disk)))
  with pytest.raises(checkpointing.CheckpointWriteError, match="the disk is full") as info:
    train.train_and_evaluate(tiny(idx_dir, 6), workdir)
  assert "the checkpoint of step 2 is intact" in str(info.value)
  assert "Free some space, then re-run the same command to resume" in str(info.value)
  assert faultlib.checkpoint_steps(workdir)[-1] == 2
  faultlib.assert_identical(faultlib.load_checkpoint(workdir, 2), before)  # intact and restorable
  # relaunched while the disk is still full: refused at once with the same advice
  with pytest.raises(checkpointing.CheckpointError, match="the disk is full"):
    train.train_and_evaluate(tiny(idx_dir, 6), workdir)
  os.remove(fillers[0])
  train.train_and_evaluate(tiny(idx_dir, 6), workdir)  # space is back: it resumes and finishes
  assert faultlib.checkpoint_steps(workdir)[-1] == 6


def test_a_preempted_sweep_member_is_not_marked_done(tmp_path, idx_dir, monkeypatch):
  member = experiment.Member("m", tiny(idx_dir, 4))
  member.config.eval.num_fid_samples = 0
  workdir = str(tmp_path / "m")
  monkeypatch.setenv(faults.ENV, "step:2:TERM")
  monkeypatch.setattr(faults, "_plan", None)
  monkeypatch.setattr(faults, "_counts", faults.collections.Counter())
  with pytest.raises(train.Interrupted, match="SIGTERM at step 2"):
    sweep.run_member(member, workdir)
  assert not os.path.exists(os.path.join(workdir, "done.json"))
  assert faultlib.checkpoint_steps(workdir)[-1] == 2
  monkeypatch.setattr(faults, "_plan", {})
  metrics = sweep.run_member(member, workdir)  # the next call resumes and finishes it
  assert os.path.exists(os.path.join(workdir, "done.json")) and np.isfinite(metrics["bpd_elbo"])
