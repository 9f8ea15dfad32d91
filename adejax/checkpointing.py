"""Orbax checkpoints: periodic, atomic, keep-N; restore the latest readable one, never save NaNs.

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an interrupted
save (a kill, a full disk) never looks like a checkpoint. On restore, each checkpoint's saved layout
(array paths, shapes, dtypes) is compared with the current config's first:
  - a readable checkpoint of another layout (changed architecture or optimiser, another adejax version)
    is refused with `CheckpointMismatchError`, and its files are never touched;
  - a checkpoint whose layout matches (or cannot be read) but whose arrays cannot be read is corrupt:
    it is moved aside to `<workdir>/corrupt_checkpoints/` with a warning and the previous one is used;
  - if checkpoints existed and none could be restored, `NoReadableCheckpointError`: a run never
    restarts from step 0 over checkpoints it could not read.
The user's files are never deleted. Every error here is one line that says what to do.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from adejax import families


class CheckpointError(RuntimeError):
  """A checkpoint problem the user must act on; printed as one line by the command-line tools."""


class NonFiniteStateError(CheckpointError):
  pass


class CheckpointMismatchError(CheckpointError):
  """A readable checkpoint whose arrays do not fit the current config (e.g. a changed architecture)."""


class NoReadableCheckpointError(CheckpointError):
  """Checkpoints exist (or were moved aside as corrupt) but none can be restored."""


class CheckpointWriteError(CheckpointError):
  """A checkpoint could not be written (e.g. the disk is full); the previous ones are intact."""


CORRUPT_DIR = "corrupt_checkpoints"
# Errors that say nothing about the checkpoint's bytes: never a reason to move a checkpoint aside.
_ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EMFILE)


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


# One compiled check per state structure (run eagerly, every leaf shape would compile its own).
_all_finite = jax.jit(families.all_finite)


def _finite(tree) -> bool:
  return bool(jax.device_get(_all_finite(tree)))


def _key(entry) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def layout(tree) -> dict[str, tuple]:
  """{"params/vae/out/g": (shape, dtype), ...}: what must match between a checkpoint and a config."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(_key(k) for k in path): (tuple(x.shape), str(np.dtype(x.dtype))) for path, x in flat}


def describe_mismatch(saved: dict, wanted: dict) -> str:
  """A short account of how two layouts differ, with the config change that most likely caused it."""
  missing = sorted(set(wanted) - set(saved))
  extra = sorted(set(saved) - set(wanted))
  changed = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
  parts = []
  if changed:
    k = changed[0]
    parts.append(f"{len(changed)} arrays changed shape or dtype (e.g. {k}: {saved[k][0]} in the checkpoint, "
                 f"{wanted[k][0]} now)")
  if missing:
    parts.append(f"{len(missing)} arrays are new (e.g. {missing[0]})")
  if extra:
    parts.append(f"{len(extra)} saved arrays are gone (e.g. {extra[0]})")
  tops = {k.split("/")[0] for k in missing + extra + changed}
  if tops <= {"opt_state"}:
    cause = "the optimiser changed (optim.name, optim.grad_clip, optim.lr_halve_every)"
  elif tops & {"params", "disc_params", "batch_stats", "ema_params"}:
    cause = "the model changed (model.*, mode, glow_vae.*, train.ema_decay)"
  else:
    cause = "the checkpoint was written by another adejax version"
  return "; ".join(parts) + f" -- {cause}"


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler())  # declared, so metadata reads without a save

  @property
  def corrupt_directory(self) -> str:
    return os.path.join(os.path.dirname(self.directory), CORRUPT_DIR)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state, metadata: dict | None = None) -> None:
    """Save `state` at its step (asynchronously; a failure of the previous save is raised here as
    `CheckpointWriteError`); refuses a state with a NaN or Inf in it. `metadata`: small JSON-able
    values stored with the checkpoint (`custom_metadata(step)`)."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    if not _finite(state):
      raise NonFiniteStateError(
          f"Refusing to checkpoint step {step}: the state holds NaN or Inf. The previous checkpoints "
          f"in {self.directory} are intact; lower the learning rate or check the data and resume.")
    with self._writing(step):
      self.manager.save(step, args=ocp.args.StandardSave(state), force=True,
                        custom_metadata=dict(metadata or {}))

  def custom_metadata(self, step: int) -> dict:
    return dict(self.manager.metadata(step).custom_metadata or {})

  @contextlib.contextmanager
  def _writing(self, step: int):
    """Turns a failed write (ours or a pending asynchronous one) into one clear CheckpointWriteError."""
    try:
      yield
    except CheckpointError:
      raise
    except Exception as error:  # noqa: BLE001 -- orbax reports write failures in many types
      previous = [s for s in self.manager.all_steps() if s != step]
      kept = f"the checkpoint of step {max(previous)} is intact" if previous else "no earlier checkpoint exists"
      full = _has_errno(error, errno.ENOSPC)
      what = "the disk is full" if full else f"{type(error).__name__}: {_first_line(error)}"
      raise CheckpointWriteError(
          f"Could not write a checkpoint to {self.directory} ({what}); {kept}. "
          f"{'Free some space, then r' if full else 'R'}e-run the same command to resume.") from None

  def restore_latest(self, template):
    """The newest readable checkpoint restored into `template`'s structure and shardings; `template`
    itself only when the run has never written a checkpoint."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    wanted = layout(template)
    for step in steps:
      saved = self._saved_layout(step)
      if saved is not None and saved != wanted:
        raise CheckpointMismatchError(
            f"The checkpoint at step {step} in {self.directory} does not fit this config: "
            f"{describe_mismatch(saved, wanted)}. Resume with the config the run was started with "
            "(its config.json), or use a new --workdir; the checkpoint was left untouched.")
      try:
        return self.manager.restore(step, args=ocp.args.StandardRestore(_abstract(template)))
      except Exception as e:  # noqa: BLE001 -- unreadable bytes: fall back to the previous one
        if _has_errno(e, *_ENVIRONMENT_ERRNOS):
          raise CheckpointError(f"Cannot read the checkpoint at step {step} in {self.directory} "
                                f"({_first_line(e)}); fix the permissions or the disk and re-run.") from None
        self._quarantine(step, e)
    aside = self.corrupt_directory
    if steps or (os.path.isdir(aside) and os.listdir(aside)):
      raise NoReadableCheckpointError(
          f"No checkpoint in {self.directory} can be restored; the unreadable ones are in {aside}. "
          "Nothing was deleted. To start this run over from step 0, move that folder away (or use a "
          "new --workdir).")
    return template

  def _saved_layout(self, step: int):
    """The saved arrays' layout, or None when the metadata itself cannot be read (then the restore
    decides whether the checkpoint is corrupt)."""
    try:
      metadata = self.manager.item_metadata(step)
      return layout(getattr(metadata, "tree", metadata))
    except Exception:  # noqa: BLE001
      return None

  def _quarantine(self, step: int, error: Exception) -> None:
    aside = os.path.join(self.corrupt_directory, str(step))
    if os.path.exists(aside):  # never overwrite what an earlier fallback kept
      aside += time.strftime("-%Y%m%d-%H%M%S")
    logging.warning("Checkpoint %d in %s cannot be restored (%s: %s); moving it to %s and trying the "
                    "previous one.", step, self.directory, type(error).__name__, _first_line(error), aside)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), aside)
    self.manager.reload()

  def wait(self) -> None:
    with self._writing(-1):
      self.manager.wait_until_finished()

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:200] if text else ""


def _has_errno(error: BaseException, *codes: int) -> bool:
  """Whether `error` or anything in its cause/context chain is an OSError with one of `codes`."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in codes:
      return True
    if any(f"[Errno {c}]" in str(error) or os.strerror(c) in str(error) for c in codes):
      return True
    error = error.__cause__ or error.__context__
  return False
