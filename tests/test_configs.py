"""Every config file of configs/ and every variant (one per paper row) loads and validates; variant
names are checked; one tiny training step of each distinct family and mode runs."""
import copy
import glob
import importlib
import json
import os
import sys

import numpy as np
import pytest

from adejax import config_lib, input_pipeline, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import config_digest  # noqa: E402  (tools/: every config row, and the digest of them all)

load = config_digest.load
ALL = config_digest.rows()


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
def test_three_tiny_steps_of_each_distinct_family_and_mode_train_what_they_trained_before():
  """The plainest row of each distinct family and mode (and papers/003's priors and decoders) trained 3
  steps from its :tiny config: the parameters (at initialisation, and how far 3 steps moved them) equal
  those in tests/data/params_digest.json, written by `tools/config_digest.py --params` on the code before
  the families took over their config sections (issue 31): behaviour did not change. (Every hybrid
  model's step: tests/test_hybrids.py.)"""
  with open(os.path.join(ROOT, "tests", "data", "params_digest.json")) as f:
    committed = json.load(f)["params"]
  seen = {key: (f"{name}:{variant}:tiny", load(name, ",".join(filter(None, [variant, "tiny"]))))
          for key, (name, variant) in config_digest.distinct_rows().items()}
  assert len(seen) >= 11, sorted(seen)  # 5 papers/002 modes, papers/003's 3 rows and its Glow
  # baseline, papers/004's hybrids, Flow-GAN
  for key, (row, c) in sorted(seen.items()):
    print(key, "from", row)
    shape = (c.data.image_size, c.data.image_size, input_pipeline.channels(c.data.dataset))
    # Built without the sections (and the seed) that train.LOOP_ONLY_FIELDS leaves out of the
    # compiled-function key: a family, model or step that read one would fail here instead of silently
    # sharing compiled functions between configs that differ in it.
    c = copy.deepcopy(c)
    with c.unlocked():
      for section in [f for f in train.LOOP_ONLY_FIELDS if "." not in f]:
        del c[section]
    digest = config_digest.train_digest(c, shape)
    for tree, (init, moved) in committed[row].items():
      # Initialisation exactly; the 3 steps' movement to 0.1%: the committed digest was computed without
      # the tests' XLA flags (tests/conftest.py), whose other fusions move the GAN's 3 steps by 6e-5
      # relative. A changed learning rate, loss weight or schedule moves it by far more.
      np.testing.assert_allclose(digest[tree][0], init, rtol=1e-7, err_msg=f"{row} {tree} at initialisation")
      np.testing.assert_allclose(digest[tree][1], moved, rtol=1e-3, err_msg=f"{row} {tree} after 3 steps")
      assert moved > 0 or tree == "disc_params", (row, tree)  # 3 steps moved the generator


def test_every_config_is_what_the_committed_digest_says():
  """Every config file's every row, full and :tiny, field by field against tests/data/config_digest.json
  (base_config, then each row's differences from it): a refactoring leaves configs as they were, and a
  deliberate change of a default or a config shows here, row by row. After a deliberate change:
  `python tools/config_digest.py --out=tests/data/config_digest.json` and commit the diff with it."""
  tool = config_digest
  with open(os.path.join(ROOT, "tests", "data", "config_digest.json")) as f:
    committed = json.load(f)
  now = json.loads(json.dumps(tool.config_digest()))  # (tuples as lists, as in the file)
  assert len(now["rows"]) == 2 * len(ALL)
  diffs = tool.compare(committed, now)
  assert not diffs, "configs changed (committed -> now):\n" + "\n".join(diffs[:40])


def test_no_family_is_named_outside_the_families_package():
  """Families own everything about themselves: no code of adejax/ outside adejax/families/ holds a
  family's name as a string (a branch like `config.model.family == "glow"`) or reads a family's own
  config section (`config.hybrid...`). Read with ast, docstrings and comments excepted."""
  import ast

  from adejax import families

  names = set(families.REGISTRY)
  sections = {f.config_section()[0] for f in families.family_classes() if f.config_section()}
  assert {"glow_vae", "glow", "hybrid"} <= names | sections
  offenders = []
  for path in sorted(glob.glob(os.path.join(ROOT, "adejax", "**", "*.py"), recursive=True)):
    if os.sep + "families" + os.sep in path:
      continue
    tree = ast.parse(open(path).read())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
      if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
          and (node.value in names or any(f"'{n}'" in node.value or f'"{n}"' in node.value for n in names))):
        offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.value[:60]!r}")
      if (isinstance(node, ast.Attribute) and node.attr in sections
          and not (isinstance(node.value, ast.Name) and node.value.id == "self")):  # (a module's submodule)
        offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} .{node.attr}")
  assert not offenders, offenders


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
