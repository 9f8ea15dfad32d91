"""The system as users run it: exact resume, checkpoint fallback, preemption, CLI errors, evaluation."""
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax import checkpointing, config_lib, evaluate, experiment, train
from adejax.families import ade as families_ade
from configs import default
from test_input_pipeline import make_idx_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("idx")
  make_idx_dir(path, n_train=40, n_test=16)
  return str(path)


def tiny_config(idx_dir, num_steps):
  c = default.get_config("tiny")
  c.data.idx_dir = idx_dir
  c.train.num_steps = num_steps
  return c


def restore(workdir, config, shape=(16, 16, 1)):
  trainer = train.Trainer(config, shape)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  state = ckpt.restore_latest(trainer.init_state(config.seed))
  ckpt.close()
  return state


def test_resume_equals_straight_run(tmp_path, idx_dir):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  train.train_and_evaluate(tiny_config(idx_dir, 4), straight)
  train.train_and_evaluate(tiny_config(idx_dir, 2), resumed)  # "killed" after 2 steps
  assert sorted(os.listdir(os.path.join(resumed, "checkpoints"))) == ["2"]
  metrics = train.train_and_evaluate(tiny_config(idx_dir, 4), resumed)
  a, b = restore(straight, tiny_config(idx_dir, 4)), restore(resumed, tiny_config(idx_dir, 4))
  assert int(a.step) == int(b.step) == 4
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert np.isfinite(metrics["bpd_elbo"])
  assert os.path.exists(os.path.join(resumed, "samples", "samples_0000004.png"))
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(resumed))

  # the evaluation command on the finished tiny run
  config = config_lib.load_run_config(resumed)
  evaluate.apply_overrides(config, ["eval.iwae_samples=3", "eval.num_fid_samples=16",
                                    "eval.classifier_steps=5", f"eval.feature_cache_dir={tmp_path}/cache"])
  out = evaluate.evaluate_run(config, resumed)
  assert out["step"] == 4 and out["bpd_iwae"] <= out["bpd_elbo"] + 0.05
  assert np.isfinite(out["fid_domain"]) and out["fid_domain"] > 0 and out["is_domain"] >= 1.0
  assert 0.0 <= out["prd_auc_domain"] <= 1.0
  assert os.path.exists(os.path.join(resumed, "eval", "prd_domain.png"))
  assert os.path.exists(os.path.join(resumed, "eval", "interpolations.png"))
  assert os.path.exists(os.path.join(resumed, "eval", "metrics.json"))
  assert os.path.exists(os.path.join(resumed, "eval", "samples_t0.8.png"))


def _saved_states(tmp_path):
  trainer = train.Trainer(default.get_config("tiny"), (16, 16, 1))
  base = trainer.init_state(0)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=5)
  for step in (2, 4):
    ckpt.save(base.replace(step=jnp.array(step, jnp.int32)))
  ckpt.wait()
  return trainer, base, ckpt


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
  trainer, base, ckpt = _saved_states(tmp_path)
  ckpt.close()
  for root, _, files in os.walk(tmp_path / "checkpoints" / "4"):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"))
  state = ckpt.restore_latest(base)
  assert int(state.step) == 2
  assert os.path.isdir(tmp_path / "corrupt_checkpoints" / "4")  # kept aside, not deleted
  assert ckpt.latest_step() == 2
  ckpt.close()


def test_non_finite_state_is_never_saved(tmp_path):
  trainer, base, ckpt = _saved_states(tmp_path)
  bad = base.replace(step=jnp.array(6, jnp.int32),
                     params=jax.tree.map(lambda p: p * jnp.nan, base.params))
  with pytest.raises(checkpointing.NonFiniteStateError, match="NaN or Inf"):
    ckpt.save(bad)
  assert ckpt.latest_step() == 4
  ckpt.close()


def test_sigterm_sets_the_preemption_flag():
  with train.PreemptionGuard() as guard:
    assert not guard.requested
    os.kill(os.getpid(), signal.SIGTERM)
    assert guard.requested


def _main(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "adejax.main", *args], cwd=cwd, capture_output=True,
                        text=True, timeout=120)


@pytest.mark.parametrize("override,expected", [
    ("--config.model.widht=2", 'Did you mean "width"'),
    ("--config.mode=bogus", "config.mode: 'bogus' is not one of"),
    ("--config.model.flow_scales=4", "config.model.flow_scales: 4 scales need an image size divisible by 8"),
])
def test_config_errors_are_one_clear_line(tmp_path, override, expected):
  extra = ["--config.data.image_size=28"] if "flow_scales" in override else []
  result = _main("--config=configs/default.py:tiny", f"--workdir={tmp_path}", override, *extra)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith("adejax: error:")]
  assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr


def test_missing_dataset_is_one_clear_line(tmp_path):
  result = _main("--config=configs/default.py:tiny", f"--workdir={tmp_path}",
                 f"--config.data.idx_dir={tmp_path}/nothing")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "apt-get install dataset-fashion-mnist" in result.stderr


@pytest.mark.slow
def test_default_config_losses_decrease_on_fashion_mnist(fashion_mnist_dir):
  from adejax import input_pipeline

  config = default.get_config()
  data = input_pipeline.load_split(config.data, "train")
  trainer = train.Trainer(config, data.images.shape[1:])
  order = input_pipeline.BatchOrder(len(data), config.train.batch_size, config.seed)
  state, losses = trainer.init_state(config.seed), []
  for step, (batch, _) in zip(range(30), input_pipeline.train_batches(data, order, 0)):
    state, metrics = trainer.step(state, trainer.global_batch(batch))
    losses.append(float(metrics["coverage_loss"]))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 500  # nats per image, a large drop
  assert int(state.skipped) == 0


def test_checkpoint_of_another_model_is_refused_not_quarantined(tmp_path):
  trainer, base, ckpt = _saved_states(tmp_path)
  ckpt.close()
  other = default.get_config("tiny")
  other.model.width = 0.125  # a different architecture in the same workdir
  template = train.Trainer(other, (16, 16, 1)).init_state(0)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"))
  with pytest.raises(checkpointing.CheckpointMismatchError, match="does not fit this config"):
    ckpt.restore_latest(template)
  assert not os.path.exists(tmp_path / "corrupt_checkpoints") and ckpt.latest_step() == 4
  ckpt.close()


def test_bpd_for_a_gan_trains_only_the_inference_network(tmp_path, idx_dir):
  gan = tiny_config(idx_dir, 2)
  gan.mode = "gan"
  train.train_and_evaluate(gan, str(tmp_path / "gan"))
  bpd = tiny_config(idx_dir, 2)
  bpd.mode, bpd.train.freeze, bpd.train.init_checkpoint = "vae", "decoder", "../gan"
  bpd.model.generator = "vector"  # the GAN's generator, with an inference network around it
  metrics = train.train_and_evaluate(bpd, str(tmp_path / "gan_bpd"))
  assert np.isfinite(metrics["bpd_elbo"])
  before, after = restore(str(tmp_path / "gan"), gan), restore(str(tmp_path / "gan_bpd"), bpd)
  labels = families_ade.trainable_labels(before.params, "decoder")
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), before.params, after.params)
  pairs = list(zip(jax.tree.leaves(labels), jax.tree.leaves(moved)))
  assert all(not m for lab, m in pairs if lab == "frozen")  # the GAN generator is untouched
  assert any(m for lab, m in pairs if lab == "train")       # the inference network learns
  assert after.params["vae"]["log_sigma"] != before.params["vae"]["log_sigma"]
  assert sum(lab == "frozen" for lab, _ in pairs) > 5 and sum(lab == "train" for lab, _ in pairs) > 5


def test_cifar_config_tiny_trains_through_tfds_mock_data(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  from configs import cifar_avade

  monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
  config = cifar_avade.get_config("tiny")
  with tfds.testing.mock_data(num_examples=16):
    metrics = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(metrics["bpd_elbo"])
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]


def test_class_conditional_run_reports_gan_test_and_gan_train(tmp_path, idx_dir):
  from adejax import results, sweep

  members = experiment.load_experiment(os.path.join(ROOT, "experiments", "conditional.py"), "tiny")
  (member,) = [m for m in members if m.name == "av-ade_cond"]
  member.config.data.idx_dir = idx_dir
  member.config.eval.feature_cache_dir = str(tmp_path / "cache")
  workdir = str(tmp_path / member.name)
  metrics = sweep.run_member(member, workdir)
  assert np.isfinite(metrics["bpd_elbo"])
  assert 0.0 <= metrics["gan_test_domain"] <= 1.0 and 0.0 <= metrics["gan_train_domain"] <= 1.0
  for name in ("samples_t1.0.png", "reconstructions.png", "interpolations.png"):
    assert os.path.exists(os.path.join(workdir, "eval", name))
  rows = results.collect([member], str(tmp_path))
  assert member.paper and "gan_train_domain" in rows[0]
  for key, value in member.paper.items():  # the paper's numbers beside the measured ones
    assert rows[0][f"paper_{key}"] == value, key


def test_training_streams_a_prepared_tfds_dataset(tmp_path, prepared_tfds_dir):
  data_dir, name = prepared_tfds_dir
  config = default.get_config("tiny")
  config.data.dataset, config.data.tfds_data_dir, config.data.stream = name, data_dir, True
  config.data.shuffle_buffer, config.train.num_steps = 16, 2
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(metrics["bpd_elbo"])
  state = restore(str(tmp_path), config, shape=(16, 16, 3))
  assert int(state.step) == 2
