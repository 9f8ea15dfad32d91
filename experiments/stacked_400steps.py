"""experiments/stacked.py with 400 steps per run at small scale, its budget until 2026-12-05.

  python -m adejax.sweep --experiment=experiments/stacked_400steps.py --workdir=DIR --scale=small \\
      --report=docs/results/stacked_small_400steps

The same 24 runs (8 members x 3 seeds) with 60% more training each: about 140 minutes on 2 CPU cores one
after the other, about 120 with --jobs=2. experiments/frontier.py runs at this budget and shares these
runs' seed 0. Other scales are experiments/stacked.py's.
"""
from experiments import stacked

SMALL_STEPS = 400


def get_experiment(scale: str):
  return stacked.get_experiment(scale, small_steps=SMALL_STEPS)
