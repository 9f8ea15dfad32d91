"""Bad command lines, table-driven: each is refused with exactly one line on stderr that names the key
or flag, exit status 2 and no stack trace -- before any training starts."""
import json
import os
import subprocess
import sys

import pytest

import faultlib

pytestmark = pytest.mark.faults

T = "--config=configs/default.py:tiny"
MAIN, SWEEP, EVALUATE = "adejax.main", "adejax.sweep", "adejax.evaluate"
ESTIMATE_KL, BENCHMARK = "adejax.estimate_kl", "adejax.benchmark"

CASES = [  # (id, module, arguments (the workdir is added as {w}), text the one line must contain)
    # misspelled keys at each nesting level
    ("top-level key", MAIN, [T, "--config.sed=1"], "sed"),
    ("model key", MAIN, [T, "--config.model.widht=2"], 'Did you mean "width"'),
    ("optim key", MAIN, [T, "--config.optim.b11=0.5"], "b11"),
    ("glow_vae key", MAIN, [T, "--config.glow_vae.depht=3"], "depht"),
    ("section", MAIN, [T, "--config.modle.width=2"], "modle"),
    # wrong types
    ("int as text", MAIN, [T, "--config.train.num_steps=abc"], "num_steps"),
    ("float as text", MAIN, [T, "--config.model.width=wide"], "width"),
    ("bool as text", MAIN, [T, "--config.data.stream=perhaps"], "stream"),
    # out-of-range values
    ("unknown mode", MAIN, [T, "--config.mode=bogus"], "config.mode: 'bogus' is not one of"),
    ("unknown family", MAIN, [T, "--config.model.family=nope"], "config.model.family"),
    ("zero steps", MAIN, [T, "--config.train.num_steps=0"], "config.train.num_steps"),
    ("negative batch", MAIN, [T, "--config.train.batch_size=-8"], "config.train.batch_size"),
    ("beta above 1", MAIN, [T, "--config.optim.b1=1.5"], "config.optim.b1"),
    ("logit alpha", MAIN, [T, "--config.model.logit_alpha=0.7"], "config.model.logit_alpha"),
    ("ema decay 1", MAIN, [T, "--config.train.ema_decay=1.0"], "config.train.ema_decay"),
    ("skip limit", MAIN, [T, "--config.train.max_consecutive_skips=-1"], "config.train.max_consecutive_skips"),
    ("eval interval", MAIN, [T, "--config.eval.every=-1"], "config.eval.every"),
    ("gp form", MAIN, [T, "--config.loss.gp_form=three-sided"], "config.loss.gp_form"),
    ("checkpoint interval", MAIN, [T, "--config.ckpt.every=0"], "config.ckpt.every"),
    # impossible combinations
    ("flow scales vs size", MAIN, [T, "--config.data.image_size=28", "--config.model.flow_scales=4"],
     "config.model.flow_scales: 4 scales need an image size divisible by 8"),
    ("frozen decoder in av-ade", MAIN, [T, "--config.train.freeze=decoder"], "config.train.freeze"),
    ("streaming an IDX dataset", MAIN, [T, "--config.data.stream=True"], "config.data.stream"),
    ("conditional glow-vae", MAIN, [T, "--config.model.family=glow_vae", "--config.model.num_classes=10"],
     "config.model.num_classes"),
    ("two-stage prior, joint", MAIN, [T, "--config.model.family=glow_vae", "--config.glow_vae.prior=two_stage",
                                      "--config.glow_vae.schedule=joint"], "config.glow_vae.stage2_steps"),
    # config files and variants
    ("missing config file", MAIN, ["--config=configs/nothing.py"], "configs/nothing.py"),
    ("unknown variant", MAIN, ["--config=configs/default.py:huge"], "huge"),
    ("unknown refinement", MAIN, ["--config=configs/cifar_avade.py:wg,bogus"],
     "unknown variant 'bogus'; valid names, comma-separated: rd, wg, iaf, s2"),
    ("two LSUN categories", MAIN, ["--config=configs/lsun_avade.py:tower,bedroom"], "exclude each other"),
    ("GAN bpd without a GAN", MAIN, ["--config=configs/cifar_vae.py:gan_bpd,tiny"], "train.init_checkpoint"),
    ("no --config", MAIN, [], "--config is required"),
    # flags
    ("unknown flag", MAIN, [T, "--bogus_flag=1"], "bogus_flag"),
    ("bad --mode", MAIN, [T, "--mode=fly"], "mode"),
    ("positional argument", MAIN, [T, "stray"], "stray"),
    ("missing dataset", MAIN, [T, "--config.data.idx_dir=/nonexistent"], "apt-get install dataset-fashion-mnist"),
    ("unknown TFDS dataset", MAIN, [T, "--config.data.dataset=no_such_dataset_xyz"], "no_such_dataset_xyz"),
    # the other doors
    ("unknown experiment", SWEEP, ["--experiment=experiments/nothing.py", "--scale=tiny"], "experiments/nothing.py"),
    ("unknown member", SWEEP, ["--experiment=experiments/ablation.py", "--scale=tiny", "--only=nobody"], "nobody"),
    ("bad --scale", SWEEP, ["--experiment=experiments/ablation.py", "--scale=huge"], "scale"),
    ("evaluate a non-run", EVALUATE, [], "config.json not found"),
    ("evaluate, bad override", EVALUATE, ["--override=eval.nothing=1"], "eval.nothing"),
    ("estimate_kl a non-run", ESTIMATE_KL, [], "config.json not found"),
    ("estimate_kl, int as text", ESTIMATE_KL, ["--num_posteriors=many"], "num_posteriors"),
    ("benchmark without config", BENCHMARK, [], "--config is required"),
    ("benchmark, unknown mode", BENCHMARK, [T, "--modes=bogus"], "--modes: unknown"),
    ("benchmark, batch as text", BENCHMARK, [T, "--batch=x"], "--batch"),
    ("benchmark, zero devices", BENCHMARK, [T, "--devices=0"], "--devices"),
]


def command_line_modules() -> set[str]:
  """The package's command lines, found in its source: every adejax module that calls absl's app.run."""
  package = os.path.join(faultlib.ROOT, "adejax")
  found = set()
  for root, _, files in os.walk(package):
    for name in files:
      path = os.path.join(root, name)
      if name.endswith(".py") and "app.run(" in open(path).read():
        found.add(os.path.relpath(path, faultlib.ROOT)[:-3].replace(os.sep, "."))
  return found


def test_every_command_line_of_the_package_has_bad_cases():
  """A new door without bad command lines here fails this test (the doors are read from the source)."""
  assert len({c[0] for c in CASES}) == len(CASES)
  doors = command_line_modules()
  assert doors >= {MAIN, SWEEP, EVALUATE, ESTIMATE_KL, BENCHMARK}, doors
  assert doors == {c[1] for c in CASES}, doors ^ {c[1] for c in CASES}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """Every case run by tests/faults/cli_runner.py: one process, one fork per command line."""
  root = tmp_path_factory.mktemp("cli")
  (root / "config.json").write_text("{}")  # a run's config with every field at its default
  cases = []
  for name, module, arguments, _ in CASES:
    workdir = str(root) if "override" in " ".join(arguments) else str(root / "runs" / name.replace(" ", "_"))
    cases.append([module, [*arguments] + ([] if module == BENCHMARK else [f"--workdir={workdir}"])])
  (root / "cases.json").write_text(json.dumps(cases))
  runner = os.path.join(os.path.dirname(__file__), "cli_runner.py")
  done = subprocess.run([sys.executable, runner, str(root / "cases.json"), str(root / "results.json")],
                        cwd=faultlib.ROOT, env=faultlib.env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return dict(zip([c[0] for c in CASES], json.loads((root / "results.json").read_text())))


@pytest.mark.parametrize("name,module,expected", [(c[0], c[1], c[3]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_command_line_is_one_clear_line(results, name, module, expected):
  code, stderr = results[name]
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert code == 2, (name, stderr[-2000:])
  assert len(lines) == 1, (name, stderr[-2000:])
  program = module.replace("adejax.main", "adejax")
  assert lines[0].startswith(f"{program}: error: "), lines[0]
  assert expected in lines[0], (name, lines[0])
  assert "Traceback" not in stderr
