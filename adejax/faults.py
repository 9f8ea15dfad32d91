"""Fault injection for the fault-tolerance suite (tests/faults): named points of the training system.

`ADEJAX_FAULT="point:n[:SIGNAL][,point:n[:SIGNAL]...]"` sends SIGNAL (default KILL) to this process the
n-th time (1-based) it passes `point`. Without the variable every `at(point)` is a dictionary lookup.

  step        after a train step is dispatched (the device may still be computing it)
  checkpoint  after a checkpoint save has started and before it is finished (orbax's temporary
              folder exists: the write is in progress)
  eval        after the first batch of a held-out evaluation
"""
from __future__ import annotations

import collections
import os
import signal

ENV = "ADEJAX_FAULT"
POINTS = ("step", "checkpoint", "eval")
_counts: collections.Counter = collections.Counter()
_plan: dict | None = None


def parse(spec: str) -> dict[str, list[tuple[int, int]]]:
  """{point: [(n, signal number), ...]} from the ADEJAX_FAULT syntax."""
  plan: dict[str, list[tuple[int, int]]] = {}
  for item in filter(None, (s.strip() for s in spec.split(","))):
    parts = item.split(":")
    if len(parts) not in (2, 3) or parts[0] not in POINTS or not parts[1].isdigit():
      raise ValueError(f"{ENV}: bad item {item!r}; use point:n[:SIGNAL] with point in {POINTS}")
    sig = getattr(signal, "SIG" + (parts[2] if len(parts) == 3 else "KILL").upper().removeprefix("SIG"))
    plan.setdefault(parts[0], []).append((int(parts[1]), int(sig)))
  return plan


def at(point: str) -> None:
  """Count one pass of `point`; send the planned signal if this pass is the planned one."""
  global _plan
  if _plan is None:
    _plan = parse(os.environ.get(ENV, ""))
  if point not in _plan:
    return
  _counts[point] += 1
  for n, sig in _plan[point]:
    if _counts[point] == n:
      os.kill(os.getpid(), sig)
