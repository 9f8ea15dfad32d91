"""Every config file of configs/ and every variant (one per paper row) loads and validates; variant
names are checked; one tiny training step of each distinct family and mode runs."""
import copy
import glob
import importlib
import os

import jax
import numpy as np
import pytest

from adejax import config_lib, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))


def variants(name):
  """The variants a config file documents: its paper rows (PAPER keys), or just the default."""
  return list(getattr(importlib.import_module(f"configs.{name}"), "PAPER", {"": None}))


def load(name, variant):
  c = importlib.import_module(f"configs.{name}").get_config(variant)
  if c.train.freeze:  # the "BPD for a GAN" row needs the GAN run's workdir from the command line
    c.train.init_checkpoint = "/path/to/gan_run"
  return c


ALL = [(name, v) for name in FILES for v in variants(name)]


def test_every_paper_row_has_a_config():
  rows = {f"{n}:{v}" for n, v in ALL}
  for row in ("cifar_gan:", "cifar_vae:", "cifar_vade:", "cifar_avgde:", "cifar_avade:",   # Table 1
              "cifar_gan:rd", "cifar_avade:rd", "cifar_avade:wg,rd", "cifar_avade:iaf,rd",  # Table 2
              "cifar_avade:s2", "stl10_avade:wg,rd", "stl10_avade:iaf,rd", "stl10_avade:s2",  # Table 4
              "imagenet_avade:wg,rd", "lsun_avade:church_outdoor,128", "lsun_avade:bedroom,64",  # 4, 5
              "cifar_gan:cond", "cifar_avade:cond",                                            # Table 8
              "cifar_avade:flow2x4", "cifar_avade:flow3x3", "cifar_vade:flow4x1"):           # Table 9
    assert row in rows, row
  assert sum(n == "lsun_avade" for n, _ in ALL) == 20


@pytest.mark.parametrize("name,variant", ALL, ids=[f"{n}:{v}" for n, v in ALL])
def test_every_config_and_variant_loads_and_validates(name, variant):
  module = importlib.import_module(f"configs.{name}")
  assert f"configs/{name}.py" in module.__doc__ and "python -m adejax.main" in module.__doc__
  full, tiny = load(name, variant), load(name, ",".join(filter(None, [variant, "tiny"])))
  config_lib.validate(full)
  config_lib.validate(tiny)
  assert full.model.family == tiny.model.family and full.mode == tiny.mode
  assert tiny.train.num_steps <= 4 and tiny.data.image_size <= 16 < full.data.image_size
  if name != "default" and not name.startswith("fmnist"):
    assert full.train.num_steps >= 100_000  # the paper's schedule, not a CPU budget


def test_refinements_do_what_their_names_say():
  from configs import cifar_avade, lsun_avade

  base, wgrd = cifar_avade.get_config(), cifar_avade.get_config("wg,rd")
  assert (base.model.width, base.model.disc_arch) == (1.0, "conv")
  assert (wgrd.model.width, wgrd.model.disc_arch) == (2.0, "resnet")
  assert cifar_avade.get_config("rd,wg").to_dict() == wgrd.to_dict()  # order does not matter
  assert (cifar_avade.get_config("iaf,rd").model.iaf, cifar_avade.get_config("s2").model.flow_scales) == (True, 2)
  assert cifar_avade.get_config("cond").model.num_classes == 10
  t9 = cifar_avade.get_config("flow2x4")
  assert (t9.model.arch, t9.model.flow_scales, t9.model.flow_blocks) == ("resnet", 2, 4)
  assert t9.loss.adv_start_step == int(0.4 * t9.train.num_steps)
  church = lsun_avade.get_config("church_outdoor,128")
  assert (church.data.dataset, church.data.image_size, church.model.width) == ("lsun/church_outdoor", 128, 2.0)
  assert church.data.stream and church.data.eval_split == "validation"


@pytest.mark.parametrize("name,variant,message", [
    ("cifar_avade", "wg,bogus", "valid names, comma-separated: rd, wg, iaf, s2, cond"),
    ("cifar_gan", "iaf", "valid names, comma-separated: rd, cond, tiny"),
    ("cifar_avade", "flow2x2,flow2x4", "exclude each other"),
    ("lsun_avade", "tower,bedroom", "exclude each other"),
    ("lsun_avade", "64,128", "exclude each other"),
    ("cifar_glow_vae", "flow_prior,two_stage", "exclude each other"),
    ("default", "huge", "valid names, comma-separated: tiny"),
    ("cifar_hybrids", "aae,veegan", "exclude each other"),
])
def test_unknown_or_clashing_variants_are_errors_that_list_the_valid_names(name, variant, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    importlib.import_module(f"configs.{name}").get_config(variant)


def test_a_frozen_decoder_needs_the_run_it_comes_from():
  from configs import cifar_vae

  with pytest.raises(config_lib.ConfigError, match="train.init_checkpoint"):
    config_lib.validate(cifar_vae.get_config("gan_bpd"))


@pytest.mark.slow
def test_one_tiny_step_of_each_distinct_family_and_mode():
  seen = {}
  for name, variant in sorted(ALL, key=lambda row: (row[1] != "", row)):  # the plainest row of each
    c = load(name, ",".join(filter(None, [variant, "tiny"])))
    # (every hybrid model's step: tests/test_hybrids.py)
    key = (c.model.family,) + {"ade": (c.mode,), "glow_vae": (c.glow_vae.prior, c.glow_vae.decoder)}.get(
        c.model.family, ())
    seen.setdefault(key, (f"{name}:{variant}", c))
  assert len(seen) >= 10, sorted(seen)  # 5 papers/002 modes, papers/003's 3 rows and its Glow
  # baseline, papers/004's hybrids
  for key, (row, c) in sorted(seen.items()):
    print(key, "from", row)
    shape = (c.data.image_size, c.data.image_size, 3)
    # Built without the sections (and the seed) that train.LOOP_ONLY_FIELDS leaves out of the
    # compiled-function key: a family, model or step that read one would fail here instead of silently
    # sharing compiled functions between configs that differ in it.
    c = copy.deepcopy(c)
    with c.unlocked():
      for section in [f for f in train.LOOP_ONLY_FIELDS if "." not in f]:
        del c[section]
    trainer = train.Trainer(c, shape, devices=jax.devices()[:1])
    batch = np.random.default_rng(0).integers(0, 256, (c.train.batch_size,) + shape, np.uint8)
    labels = trainer.global_batch(np.arange(c.train.batch_size, dtype=np.int32) % 10) if c.model.num_classes else None
    state, metrics = trainer.step(trainer.init_state(0), trainer.global_batch(batch), labels)
    assert int(state.step) == 1, row
    assert np.isfinite(float(metrics["generator_loss"])), (row, metrics)


def test_configs_and_experiments_never_import_the_sweep_runner():
  """The runner runs: the papers' config factories live in configs/papers/, what an experiment is in
  adejax/experiment.py; no config or experiment file imports adejax.sweep (read with ast)."""
  import ast
  import glob

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  files = glob.glob(os.path.join(root, "configs", "**", "*.py"), recursive=True) + glob.glob(
      os.path.join(root, "experiments", "*.py"))
  assert len(files) > 30
  offenders = []
  for path in files:
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.ImportFrom) and node.module == "adejax" and any(a.name == "sweep" for a in node.names):
        offenders.append(path)
      if isinstance(node, (ast.Import, ast.ImportFrom)) and "adejax.sweep" in (
          [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]):
        offenders.append(path)
  assert not offenders, offenders
