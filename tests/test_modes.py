"""Stacked datasets and mode counting: deterministic, resumable and shardable stacking that never
materialises the stacked set; the 1000-mode metric against cases with known answers; a stacked run
evaluated end to end."""
import os

import numpy as np
import pytest

from adejax import config_lib, evaluate, input_pipeline as ip, train
from adejax.evaluation import fid as fid_lib, modes
from configs import default
from test_input_pipeline import make_idx_dir


def stacked_config(idx_dir, n=0, dataset="stacked_fashion_mnist_idx"):
  c = config_lib.base_config()
  c.data.dataset, c.data.idx_dir, c.data.stacked_examples = dataset, str(idx_dir), n
  return c


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("idx")
  make_idx_dir(path, n_train=50, n_test=30)
  return path


def test_stacking_is_a_pure_function_of_seed_and_index_and_never_materialised(idx_dir):
  base = ip.load_idx(str(idx_dir), "train")
  data = ip.load_split(stacked_config(idx_dir, 500).data, "train")
  assert isinstance(data.images, ip.StackedImages) and data.images.shape == (500, 28, 28, 3)
  assert data.images.base.nbytes == base.images.nbytes  # only the base images are held
  i = 123
  triple = data.images.triples[i]
  for c in range(3):
    np.testing.assert_array_equal(data.images[i][..., c], base.images[triple[c], ..., 0])
  assert data.labels[i] == 100 * base.labels[triple[0]] + 10 * base.labels[triple[1]] + base.labels[triple[2]]
  again = ip.load_split(stacked_config(idx_dir, 200).data, "train")  # a prefix of the same stream
  np.testing.assert_array_equal(again.images[:], data.images[:200])
  np.testing.assert_array_equal(np.asarray(again.images), again.images[np.arange(200)])
  test = ip.load_split(stacked_config(idx_dir, 200).data, "test")  # held out: stacks test images
  assert not np.array_equal(test.images.triples, again.images.triples)
  other_seed = stacked_config(idx_dir, 200)
  other_seed.data.stacked_seed = 1
  assert not np.array_equal(ip.load_split(other_seed.data, "train").images.triples, again.images.triples)
  # the default sizes are the protocol's
  assert len(ip.load_split(stacked_config(idx_dir).data, "train")) == 128_000
  assert len(ip.load_split(stacked_config(idx_dir).data, "test")) == 26_000
  # the stacked version of MNIST where a user provides its IDX files (the same reader)
  mnist = ip.load_split(stacked_config(idx_dir, 10, "stacked_mnist_idx").data, "train")
  assert mnist.images.shape == (10, 28, 28, 3)


def test_stacked_batches_resume_and_shard_like_any_dataset(idx_dir):
  data = ip.load_split(stacked_config(idx_dir, 300).data, "train")
  order = ip.BatchOrder(len(data), 16, seed=3)
  straight = [b for _, b in zip(range(6), ip.train_batches(data, order, 0))]
  resumed = [b for _, b in zip(range(3), ip.train_batches(data, order, 3))]
  for (a, la), (b, lb) in zip(straight[3:], resumed):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
  halves = [next(ip.train_batches(data, ip.BatchOrder(len(data), 16, 3, p, 2), 0)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), straight[0][0])


def test_mode_metric_known_answers(idx_dir):
  rng = np.random.default_rng(0)
  uniform = rng.integers(0, 10, (26_000, 3))
  out = modes.coverage(modes.modes_of(uniform))
  assert out["modes"] == 1000 and out["kl"] < 0.03  # 26 samples per mode: sampling noise only
  one = modes.coverage(modes.modes_of(np.tile([[3, 1, 4]], (26_000, 1))))
  assert one["modes"] == 1 and one["kl"] == pytest.approx(np.log(1000), rel=1e-6)
  ten = modes.coverage(modes.modes_of(rng.integers(0, 10, (10, 3))[rng.integers(0, 10, 26_000)]))
  assert ten["modes"] <= 10 and ten["kl"] >= np.log(100) - 1e-6  # >= log(1000 / 10)


def test_channel_classification_and_stacked_features(idx_dir):
  data = ip.load_split(stacked_config(idx_dir, 40).data, "test")
  base = ip.load_idx(str(idx_dir), "test")
  # an oracle "classifier" that knows each base image: returns one-hot logits of its true class
  lookup = {bytes(img.tobytes()): lab for img, lab in zip(base.images, base.labels)}
  oracle_logits = lambda x: np.eye(10)[[lookup[bytes(img.tobytes())] for img in x]] * 20.0
  classes = modes.classify_channels(oracle_logits, data.images, chunk=7)
  np.testing.assert_array_equal(modes.modes_of(classes), data.labels)  # the triple is the label
  features = modes.stacked_features(lambda x: (x.reshape(len(x), -1)[:, :5].astype(np.float32),
                                               oracle_logits(x)))
  f, logits = features(data.images[:6])
  assert f.shape == (6, 15) and logits.shape == (6, 1000)
  np.testing.assert_allclose(np.logaddexp.reduce(logits, -1), 0.0, atol=1e-5)  # normalised
  np.testing.assert_array_equal(np.argmax(logits, -1), data.labels[:6])


def test_the_real_ceiling_is_cached_per_classifier_and_real_images(tmp_path, idx_dir):
  data = ip.load_split(stacked_config(idx_dir, 40).data, "test")
  calls = []
  def per_channel(x):  # a made-up classifier: the class is the channel's mean intensity bucket
    calls.append(len(x))
    return None, np.eye(10)[(x.reshape(len(x), -1).mean(-1) / 25.6).astype(int)]
  domain = (None, {"per_channel": per_channel, "dataset": "stacked", "steps": 1, "test_accuracy": 1.0})
  fake = data.images[::-1]
  plain = evaluate.mode_metrics(fake, data, domain)
  cache = tmp_path / "cache"
  first = evaluate.mode_metrics(fake, data, domain, str(cache))
  assert first == plain
  files = list(cache.glob("modes_real_*.json"))
  assert len(files) == 1
  files[0].write_text('{"modes": 7, "kl": 0.5}')  # a later run reads the ceiling, not recomputes it
  calls.clear()
  again = evaluate.mode_metrics(fake, data, domain, str(cache))
  assert (again["modes_real"], again["modes_kl_real"]) == (7, 0.5) and again["modes"] == plain["modes"]
  assert sum(calls) == 3 * len(fake)  # only the samples' three channels were classified
  fewer = evaluate.mode_metrics(fake[:20], data, domain, str(cache))  # other real images: own entry
  assert len(list(cache.glob("modes_real_*.json"))) == 2 and fewer["modes_real_images"] == 20
  files[0].write_text("{not json")  # a corrupt cache is computed again
  assert evaluate.mode_metrics(fake, data, domain, str(cache)) == plain


def test_a_tiny_stacked_run_reports_modes_beside_the_real_data_ceiling(tmp_path, idx_dir, monkeypatch):
  c = default.get_config("tiny")
  c.data.dataset, c.data.idx_dir, c.data.stacked_examples = "stacked_fashion_mnist_idx", str(idx_dir), 64
  c.data.image_size, c.data.resize = 16, "resize"
  c.train.num_steps, c.eval.feature_cache_dir = 2, str(tmp_path / "cache")
  trained = train.train(c, str(tmp_path / "run"))
  assert trained.metrics["bpd_elbo"] > 0 and int(trained.eval_state.step) == 2
  with monkeypatch.context() as m:  # scored from memory (as the sweep does): no restore
    m.setattr(evaluate, "restore_trainer", lambda *a: pytest.fail("restored a run it held in memory"))
    in_memory = evaluate.evaluate_run(c, str(tmp_path / "run"), trained)
  out = evaluate.evaluate_run(c, str(tmp_path / "run"))  # from the checkpoint: the same numbers
  assert in_memory == out
  assert train.train(c, str(tmp_path / "run")).eval_state is None  # complete: nothing ran to hand over
  assert 1 <= out["modes"] <= 64 and 0 <= out["modes_kl"] <= np.log(1000) + 1e-6
  assert out["modes_samples"] == 64 and out["modes_real_images"] == 64
  assert 1 <= out["modes_real"] <= 64 and 0.0 <= out["mode_classifier_accuracy"] <= 1.0
  assert np.isfinite(out["fid_domain"]) and np.isfinite(out["bpd_elbo"])
  assert os.path.exists(tmp_path / "run" / "eval" / "samples_t1.0.png")


@pytest.mark.slow
def test_real_data_scored_as_samples_match_the_real_ceiling(tmp_path, fashion_mnist_dir):
  """With a real classifier on real Fashion-MNIST: stacked training images scored as if they were
  samples cover as many modes as the held-out stacked images (within sampling noise, about 13 for two
  independent sets of 2000), while one repeated image covers one; and fid_domain of real training
  images against the test images is far below that of noise or of one repeated image."""
  c = stacked_config(fashion_mnist_dir, 2000)
  c.eval.classifier_steps, c.eval.feature_cache_dir = 150, str(tmp_path)
  test = ip.load_split(c.data, "test")
  samples = ip.load_split(c.data, "train").images[:2000]
  domain = evaluate.domain_features(c, test)
  assert domain[1]["test_accuracy"] > 0.75
  out = evaluate.mode_metrics(samples, test, domain)
  assert out["modes_real"] > 700 and abs(out["modes"] - out["modes_real"]) <= 40, out
  assert evaluate.mode_metrics(np.repeat(samples[:1], 2000, 0), test, domain)["modes"] == 1
  plain = config_lib.base_config()
  plain.data.idx_dir, plain.eval.classifier_steps, plain.eval.feature_cache_dir = fashion_mnist_dir, 150, str(tmp_path)
  real_test = ip.load_split(plain.data, "test", limit=1000)
  features, _ = evaluate.domain_features(plain, real_test)  # the same classifier (cached above)
  real_train = ip.load_split(plain.data, "train", limit=1000).images
  noise = np.random.default_rng(0).integers(0, 256, real_train.shape).astype(np.uint8)
  reference = features(real_test.images)[0]
  fid = {name: fid_lib.fid_from_features(reference, features(x)[0])
         for name, x in (("real", real_train), ("noise", noise), ("one", np.repeat(real_train[:1], 1000, 0)))}
  assert fid["real"] < 0.1 * min(fid["noise"], fid["one"]), fid
