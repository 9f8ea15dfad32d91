"""Orbax checkpoints: periodic, atomic, keep-N; restore the latest readable one, never save NaNs.

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an interrupted
save never looks like a checkpoint. A checkpoint that exists but cannot be read (corrupt files) is
moved aside to `<workdir>/corrupt_checkpoints/` with a warning, and the previous one is used: the
user's files are never deleted.
"""
from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging


class NonFiniteStateError(RuntimeError):
  pass


class CheckpointMismatchError(RuntimeError):
  """A readable checkpoint whose arrays do not fit the current config (e.g. a changed architecture)."""


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _finite(tree) -> bool:
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return bool(jax.device_get(jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves]))))


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler())  # declared, so metadata reads without a save

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, state) -> None:
    """Save `state` at its step (asynchronously); refuses a state with a NaN or Inf in it."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    if not _finite(state):
      raise NonFiniteStateError(
          f"Refusing to checkpoint step {step}: the state holds NaN or Inf. The previous checkpoints "
          f"in {self.directory} are intact; lower the learning rate or check the data and resume.")
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore_latest(self, template):
    """The newest readable checkpoint restored into `template`'s structure and shardings, else template."""
    for step in sorted(self.manager.all_steps(), reverse=True):
      self._check_layout(step, template)
      try:
        return self.manager.restore(step, args=ocp.args.StandardRestore(_abstract(template)))
      except Exception as e:  # noqa: BLE001 -- any unreadable checkpoint falls back to the previous one
        self._quarantine(step, e)
    return template

  def _check_layout(self, step: int, template) -> None:
    """Refuse (without touching the files) a readable checkpoint of a different model."""
    try:
      metadata = self.manager.item_metadata(step)
      leaves = jax.tree.leaves(getattr(metadata, "tree", metadata))
    except Exception:  # noqa: BLE001 -- unreadable metadata: let the restore decide (corrupt)
      return
    saved = sorted(tuple(x.shape) for x in leaves if hasattr(x, "shape"))
    wanted = sorted(tuple(x.shape) for x in jax.tree.leaves(template))
    if saved and saved != wanted:
      raise CheckpointMismatchError(
          f"The checkpoint at step {step} in {self.directory} holds {len(saved)} arrays that do not fit "
          f"this config's {len(wanted)} (was the model or optimiser changed?). Resume with the config "
          "the run was started with (its config.json), or use a new --workdir.")

  def _quarantine(self, step: int, error: Exception) -> None:
    aside = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints", str(step))
    logging.warning("Checkpoint %d in %s cannot be restored (%s: %s); moving it to %s and trying the "
                    "previous one.", step, self.directory, type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "", aside)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      if os.path.exists(aside):
        shutil.rmtree(aside)
      shutil.move(os.path.join(self.directory, str(step)), aside)
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
