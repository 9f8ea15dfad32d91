"""Corrupt and wrong files, each refused with one line that names the file and what to do: truncated or
unreadable checkpoints (fall back, never restart from step 0), checkpoints of another architecture or
optimiser (refused, never moved or deleted), truncated IDX files, a TFDS folder without the split,
broken or crafted weights files, a config.json of another version, a workdir that is not a folder."""
import gzip
import json
import os

import jax
import numpy as np
import pytest

import faultlib
from adejax import checkpointing, config_lib, input_pipeline, train
from adejax.evaluation import inception
from configs import default
from test_inception import write_pth

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  return faultlib.small_idx_dir(tmp_path_factory.mktemp("idx"), n_train=32, n_test=8)


def tiny(idx_dir, num_steps):
  c = default.get_config("tiny")
  c.data.idx_dir, c.train.num_steps, c.ckpt.every = idx_dir, num_steps, 1
  c.train.image_every = c.eval.every = 1000
  return c


def truncate_arrays(workdir, step):
  """Cut every data file of a checkpoint to half its size (a disk error, a partial copy)."""
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", str(step))):
    for name in files:
      path = os.path.join(root, name)
      if "/d/" in path or name.startswith("manifest"):
        with open(path, "r+b") as f:
          f.truncate(os.path.getsize(path) // 2)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, idx_dir):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny(idx_dir, 3), workdir)
  truncate_arrays(workdir, 3)
  train.train_and_evaluate(tiny(idx_dir, 4), workdir)  # resumes from 2, redoes 3, finishes 4
  assert faultlib.checkpoint_steps(workdir)[-2:] == [3, 4]
  assert os.path.isdir(os.path.join(workdir, "corrupt_checkpoints", "3"))  # kept aside, not deleted


def test_no_readable_checkpoint_never_restarts_from_step_zero(tmp_path, idx_dir):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny(idx_dir, 2), workdir)
  for step in (1, 2):
    truncate_arrays(workdir, step)
  for attempt in range(2):  # and again on the next launch, when the checkpoints folder is empty
    with pytest.raises(checkpointing.NoReadableCheckpointError, match="move that folder away"):
      train.train_and_evaluate(tiny(idx_dir, 4), workdir)
  assert sorted(os.listdir(os.path.join(workdir, "corrupt_checkpoints"))) == ["1", "2"]
  assert faultlib.checkpoint_steps(workdir) == []


def test_an_optimiser_change_is_refused_with_the_config_change_and_nothing_moved(tmp_path, idx_dir):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny(idx_dir, 2), workdir)
  saved_config = open(os.path.join(workdir, "config.json")).read()
  changed = tiny(idx_dir, 4)
  changed.optim.grad_clip = 1.0  # same shapes, another optimiser-state tree
  with pytest.raises(checkpointing.CheckpointMismatchError) as info:
    train.train_and_evaluate(changed, workdir)
  message = str(info.value)
  assert "the optimiser changed" in message and "optim.grad_clip: 0.0 -> 1.0" in message
  assert "\n" not in message
  assert faultlib.checkpoint_steps(workdir) == [1, 2]
  assert not os.path.exists(os.path.join(workdir, "corrupt_checkpoints"))
  assert open(os.path.join(workdir, "config.json")).read() == saved_config  # the run's config kept
  train.train_and_evaluate(tiny(idx_dir, 3), workdir)  # the original config still resumes


def test_a_checkpoint_of_another_adejax_version_is_refused(tmp_path, idx_dir):
  """A state with a field this version does not have (or lacks one it has) is another layout."""
  workdir = str(tmp_path)
  trainer = train.Trainer(tiny(idx_dir, 2), (16, 16, 1))
  state = trainer.init_state(0)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  older = {f: getattr(state, f) for f in ("step", "rng", "params", "batch_stats", "disc_params",
                                          "opt_state", "ema_params", "skipped")}  # no skip_streak
  ckpt.manager.save(1, args=checkpointing.ocp.args.StandardSave(older))
  ckpt.close()
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  with pytest.raises(checkpointing.CheckpointMismatchError, match="another adejax version"):
    ckpt.restore_latest(state)
  ckpt.close()
  assert faultlib.checkpoint_steps(workdir) == [1]


def test_truncated_gzip_and_wrong_magic_idx_files(tmp_path):
  faultlib.small_idx_dir(tmp_path, n_train=8, n_test=4)
  name = input_pipeline.IDX_FILES["train"][0]
  raw = open(tmp_path / name, "rb").read()
  os.remove(tmp_path / name)
  with gzip.open(tmp_path / (name + ".gz"), "wb") as f:
    f.write(raw)
  gz = (tmp_path / (name + ".gz")).read_bytes()
  (tmp_path / (name + ".gz")).write_bytes(gz[: len(gz) // 2])
  with pytest.raises(input_pipeline.DataError, match=f"{name}.gz cannot be read.*truncated or corrupt"):
    input_pipeline.load_idx(str(tmp_path), "train")
  (tmp_path / (name + ".gz")).write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]))  # float magic
  with pytest.raises(input_pipeline.DataError, match="bad magic number"):
    input_pipeline.load_idx(str(tmp_path), "train")


def test_tfds_folder_without_the_split(prepared_tfds_dir):
  data_dir, name = prepared_tfds_dir
  with pytest.raises(input_pipeline.DataError, match="has no split 'validation'.*'test', 'train'"):
    input_pipeline.load_tfds(name, "validation", data_dir)
  with pytest.raises(input_pipeline.DataError, match="has no split 'validation'"):
    next(input_pipeline.stream_batches(_stream_config(name, data_dir), "validation", 4, 0, 0))


def _stream_config(name, data_dir):
  c = config_lib.base_config()
  c.data.dataset, c.data.tfds_data_dir, c.data.stream, c.data.image_size = name, data_dir, True, 16
  return c.data


@pytest.fixture(scope="module")
def fid_state_dict():
  variables = jax.eval_shape(lambda: inception.FIDInceptionV3().init(
      jax.random.key(0), jax.numpy.zeros((1, 75, 75, 3))))
  params = jax.tree.map(lambda x: np.zeros(x.shape, np.float32), variables["params"])
  return inception.params_to_state_dict(params)


def test_truncated_and_wrong_weights_files(tmp_path, fid_state_dict):
  path = str(tmp_path / inception.WEIGHTS_FILENAME)
  write_pth(path, fid_state_dict)
  data = open(path, "rb").read()
  for cut in (len(data) // 2, 100):
    open(path, "wb").write(data[:cut])
    with pytest.raises(inception.UnsafeWeightsError, match=inception.WEIGHTS_FILENAME):
      inception.load_fid_inception(path)
  other = str(tmp_path / "resnet.pth")  # a real weights file, of another network
  write_pth(other, {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
  with pytest.raises(inception.UnsafeWeightsError, match="is not the FID Inception-v3 weights"):
    inception.load_fid_inception(other)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("claimed", [(5, (4,), (1,)), (0, (3, 3), (3, 1)), (0, (2,), (-1,)), (-2, (1,), (1,))])
def test_crafted_tensor_offsets_and_strides_are_refused(tmp_path, legacy, claimed):
  path = str(tmp_path / "crafted.pth")
  write_pth(path, {"fc.bias": np.arange(6, dtype=np.float32)}, legacy=legacy, layout={"fc.bias": claimed})
  with pytest.raises(inception.UnsafeWeightsError, match="Refusing to load"):
    inception.load_state_dict(path)


def test_config_json_of_another_version_or_truncated(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model": {"flux_capacitor": 1}}))
  with pytest.raises(config_lib.ConfigError, match="unknown key model.flux_capacitor.*another adejax version"):
    config_lib.load_run_config(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"model": 3}))
  with pytest.raises(config_lib.ConfigError, match="model = 3 does not fit this adejax version"):
    config_lib.load_run_config(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"seed": {"value": 3}}))
  with pytest.raises(config_lib.ConfigError, match="seed is a section there but a value here"):
    config_lib.load_run_config(str(tmp_path))
  (tmp_path / "config.json").write_text('{"seed": 0, "model": {"wid')
  with pytest.raises(config_lib.ConfigError, match="cannot be read"):
    config_lib.load_run_config(str(tmp_path))
  result = faultlib.launch(f"--workdir={tmp_path}", module="adejax.evaluate")  # the door: one line
  assert result.returncode == 2 and "Traceback" not in result.stderr
  (line,) = faultlib.error_lines(result, "adejax.evaluate")
  assert "config.json cannot be read" in line


def test_a_workdir_that_is_not_a_usable_folder(tmp_path, idx_dir):
  not_a_folder = tmp_path / "file"
  not_a_folder.write_text("")
  with pytest.raises(config_lib.ConfigError, match="is a file, not a folder"):
    train.train_and_evaluate(tiny(idx_dir, 1), str(not_a_folder))
  with pytest.raises(config_lib.ConfigError, match="cannot be created"):
    train.train_and_evaluate(tiny(idx_dir, 1), str(not_a_folder / "run"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: the permission case cannot be made")
def test_an_unreadable_workdir(tmp_path, idx_dir):
  locked = tmp_path / "locked"
  locked.mkdir(mode=0o000)
  with pytest.raises(config_lib.ConfigError, match="not a folder this user can read and write"):
    train.train_and_evaluate(tiny(idx_dir, 1), str(locked))
