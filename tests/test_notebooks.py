"""The notebooks run top to bottom on their tiny setting, in a fresh kernel, as a user runs them
(nbclient); committed notebooks carry no outputs. quickstart trains the workdir the others open."""
import glob
import os
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_committed_notebooks_carry_no_outputs_and_take_parameters():
  assert {os.path.basename(p) for p in NOTEBOOKS} >= {"quickstart.ipynb", "explore_checkpoint.ipynb",
                                                       "results.ipynb", "flows.ipynb"}
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path}: strip its outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, f"{path}: one parameter cell"
    assert "google.colab" in code[0].source, f"{path}: the first cell installs adejax in Colab"


def execute(name, tmp_path, **params):
  """Run notebooks/<name> with `params` injected after its parameter cell (as papermill does); the
  executed copy is saved under tmp_path for inspection."""
  from nbclient import NotebookClient

  nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
  at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  injected = [f"{k} = {v!r}" for k, v in params.items()]
  injected.append(f"assert sys.executable == {sys.executable!r}, sys.executable  # the tests' own Python")
  nb.cells.insert(at + 1, nbformat.v4.new_code_cell("import sys\n" + "\n".join(injected)))
  client = NotebookClient(nb, timeout=900, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}})
  try:
    client.execute()
  finally:
    nbformat.write(nb, str(tmp_path / name))
  return nb


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
  """One CPU device in the kernels (the tests' 4 virtual devices are for the sharding tests), with
  conftest's compile flags, and one compilation cache that the kernels, run one after another, share:
  each notebook reads the programs the ones before it compiled (see tests/faults/faultlib.refill_cache
  for why the suite's other processes keep the cache off)."""
  saved = dict(os.environ)
  os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=1 "
                             + os.environ.get("ADEJAX_TEST_XLA_FLAGS", ""))  # conftest's
  os.environ["MPLBACKEND"] = "Agg"
  os.environ.update(JAX_ENABLE_COMPILATION_CACHE="true", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("compilation_cache")))
  yield
  os.environ.clear()
  os.environ.update(saved)


@pytest.mark.slow
@pytest.mark.notebooks
def test_notebooks_run_top_to_bottom(tmp_path, kernel_env):
  workdir = str(tmp_path / "run")
  figures = tmp_path / "figures"
  execute("quickstart.ipynb", tmp_path, WORKDIR=workdir, STEPS=4, TINY=True, FIGURES=str(figures))
  assert os.path.exists(os.path.join(workdir, "checkpoints", "4"))
  execute("explore_checkpoint.ipynb", tmp_path, WORKDIR=workdir, NUM_EXAMPLES=16, IWAE_SAMPLES=2,
          NEIGHBOUR_POOL=64, FIGURES=str(figures))
  execute("flows.ipynb", tmp_path, WORKDIR=workdir, FIGURES=str(figures))
  execute("results.ipynb", tmp_path, FIGURES=str(figures))
  saved = sorted(os.listdir(figures))
  for name in ("quickstart_samples.png", "explore_worst.png", "explore_neighbours.png",
               "flows_feature_space.png", "flows_with_without.png", "results_coverage_quality.png"):
    assert name in saved, saved
