"""What every config of configs/ is and what it trains, as a JSON file two code versions can be compared on.

  python tools/config_digest.py --out=before.json [--params]   # on one version
  python tools/config_digest.py --out=after.json [--params]    # on the other
  python tools/config_digest.py --compare before.json after.json

For every config file and every variant it documents (its PAPER rows, or the default), the full and the
`:tiny` config flattened to {key: value} (the fields that differ from `base_config()`, which is written
once); with --params also, for the plainest row of each distinct family and mode (`--every_row`: every
row), a digest of the tiny config's parameters
at initialisation and after 3 training steps on a fixed random batch (per tree: the sum of |p| at
initialisation and the sum of |p_3 - p_0|). A refactoring that must not change behaviour leaves the
file identical. `tests/test_configs.py` checks the configs against the committed
`tests/data/config_digest.json` (written by `--out=tests/data/config_digest.json`, without --params), and
the distinct rows' parameters against `tests/data/params_digest.json`.
`tests/data/params_digest_every_row.json` holds every row's parameter digest (`--every_row`, about 15
minutes on one core with the tests' XLA flags, under which it was written): too slow for the suite, it is
the reference a refactoring's `--every_row` run's `params` are compared with.
"""
from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the project's adejax and configs/, installed or not
  sys.path.insert(0, ROOT)


def rows() -> list[tuple[str, str]]:
  """(config file, variant) for every config file of configs/ and every variant it documents."""
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))
  return [(n, v) for n in names for v in getattr(importlib.import_module(f"configs.{n}"), "PAPER", {"": None})]


def load(name: str, variant: str):
  c = importlib.import_module(f"configs.{name}").get_config(variant)
  if c.train.freeze:  # the "BPD for a GAN" row needs the GAN run's workdir from the command line
    c.train.init_checkpoint = "/path/to/gan_run"
  return c


def flat(c) -> dict:
  from adejax import config_lib
  return {k: v for k, v in sorted(config_lib._flatten(c).items())}


def config_digest() -> dict:
  """{"base": base_config() flattened, "rows": {row: its fields that differ from base}} for the full
  and the `:tiny` config of every row."""
  from adejax import config_lib

  base = flat(config_lib.base_config())
  out = {}
  for name, variant in rows():
    for row, v in ((f"{name}:{variant}", variant), (f"{name}:{variant}:tiny", ",".join(filter(None, [variant, "tiny"])))):
      c = flat(load(name, v))
      out[row] = {k: value for k, value in c.items() if k not in base or base[k] != value}
      out[row].update({f"(missing) {k}": None for k in base if k not in c})
  return {"base": base, "rows": out}


def train_digest(c, shape) -> dict:
  """{tree: [sum |p_0|, sum |p_3 - p_0|]} of a config trained 3 steps on fixed random uint8 batches of
  `shape` from `init_state(0)` (labels 0, 1, ... for a conditional model)."""
  import jax
  import numpy as np

  from adejax import train

  def l1(tree):
    return float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(tree)))

  trainer = train.Trainer(c, tuple(shape), devices=jax.devices()[:1])
  state = trainer.init_state(0)
  state0 = jax.device_get(state)  # (a step donates the state it is given)
  rng = np.random.default_rng(0)
  for _ in range(3):
    batch = rng.integers(0, 256, (c.train.batch_size,) + tuple(shape), np.uint8)
    labels = (trainer.global_batch(np.arange(c.train.batch_size, dtype=np.int32) % c.model.num_classes)
              if c.model.num_classes else None)
    state, _ = trainer.step(state, trainer.global_batch(batch), labels)
  assert int(state.step) == 3
  return {tree: [l1(getattr(state0, tree)),
                 l1(jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                 getattr(state, tree), getattr(state0, tree)))]
          for tree in ("params", "disc_params")}


def distinct_rows() -> dict:
  """{(family, ...): (config file, variant)}: the plainest row of each distinct family and mode (ADE's
  Table-1 modes, papers/003's priors and decoders, each other family once)."""
  seen = {}
  for name, variant in sorted(rows(), key=lambda row: (row[1] != "", row)):
    c = load(name, ",".join(filter(None, [variant, "tiny"])))
    key = (c.model.family,) + {"ade": (c.mode,), "glow_vae": (c.glow_vae.prior, c.glow_vae.decoder)}.get(
        c.model.family, ())
    seen.setdefault(key, (name, variant))
  return seen


def params_digest(every_row: bool = False) -> dict:
  from adejax import input_pipeline

  out = {}
  for name, variant in rows() if every_row else sorted(distinct_rows().values()):
    c = load(name, ",".join(filter(None, [variant, "tiny"])))
    shape = (c.data.image_size, c.data.image_size, input_pipeline.channels(c.data.dataset))
    out[f"{name}:{variant}:tiny"] = train_digest(c, shape)
    print(name, variant, out[f"{name}:{variant}:tiny"], flush=True)
  return out


def compare(a: dict, b: dict, prefix: str = "") -> list[str]:
  """One line per difference between two digests (nested dicts compared key by key)."""
  diffs = [f"only in the first: {prefix}{k}" for k in sorted(set(a) - set(b))]
  diffs += [f"only in the second: {prefix}{k}" for k in sorted(set(b) - set(a))]
  for k in sorted(set(a) & set(b)):
    if isinstance(a[k], dict) and isinstance(b[k], dict):
      diffs += compare(a[k], b[k], f"{prefix}{k} ")
    elif a[k] != b[k]:
      diffs.append(f"{prefix}{k}: {a[k]!r} -> {b[k]!r}")
  return diffs


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", help="write the digest here")
  p.add_argument("--params", action="store_true", help="also train the tiny config of each distinct family "
                 "and mode 3 steps (`distinct_rows`; minutes)")
  p.add_argument("--every_row", action="store_true", help="with --params: every row (15 minutes of one core with the tests' XLA flags, more at the defaults)")
  p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="print the differences of two digests")
  args = p.parse_args()
  if args.compare:
    a, b = (json.load(open(f)) for f in args.compare)
    diffs = compare(a, b)
    print("\n".join(diffs) if diffs else "identical")
    sys.exit(1 if diffs else 0)
  out = config_digest()
  if args.params:
    out["params"] = params_digest(args.every_row)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")


if __name__ == "__main__":
  main()
