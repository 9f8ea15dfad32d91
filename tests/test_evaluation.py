"""Evaluation metrics against closed forms and independent references."""
import numpy as np
import pytest
import scipy.linalg

from adejax.evaluation import fid


def random_cov(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_closed_form_for_commuting_gaussians():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  np.testing.assert_allclose(fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10)


def test_fid_matches_float64_sqrtm_reference_symmetric_and_zero_on_self():
  rng = np.random.default_rng(1)
  d = 40
  mu1, mu2, s1, s2 = rng.normal(size=d), rng.normal(size=d), random_cov(rng, d), random_cov(rng, d)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
  value = fid.frechet_distance(mu1, s1, mu2, s2)
  np.testing.assert_allclose(value, reference, rtol=1e-6)
  np.testing.assert_allclose(fid.frechet_distance(mu2, s2, mu1, s1), value, rtol=1e-9)
  assert fid.frechet_distance(mu1, s1, mu1, s1) < 1e-8


def test_fid_of_a_sample_with_itself_and_with_a_shifted_copy():
  feats = np.random.default_rng(2).normal(size=(500, 8))
  assert fid.fid_from_features(feats, feats) < 1e-8
  np.testing.assert_allclose(fid.fid_from_features(feats, feats + 2.0), 8 * 4.0, rtol=1e-6)
  with pytest.raises(ValueError, match="Mismatched"):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_fid_on_rank_deficient_covariances_is_finite():
  rng = np.random.default_rng(3)
  few = rng.normal(size=(10, 50))  # fewer samples than dimensions: singular covariance
  value = fid.fid_from_features(few, rng.normal(size=(10, 50)))
  assert np.isfinite(value) and value > 0


def test_statistics_cache(tmp_path):
  calls = []
  compute = lambda: (calls.append(1), (np.ones(2), np.eye(2)))[1]
  path = str(tmp_path / "ref" / "stats.npz")
  for _ in range(2):
    mu, sigma = fid.cached_statistics(path, compute)
  assert len(calls) == 1 and np.allclose(sigma, np.eye(2))


def test_inception_score_extremes():
  confident = np.full((100, 10), -1e3)
  confident[np.arange(100), np.arange(100) % 10] = 0.0  # one sure class each, uniform marginal
  np.testing.assert_allclose(fid.inception_score(confident, splits=10)[0], 10.0, rtol=1e-6)
  np.testing.assert_allclose(fid.inception_score(np.zeros((100, 10)))[0], 1.0, rtol=1e-6)


from adejax.evaluation import prd  # noqa: E402


def test_prd_identical_sets_balanced_point_is_one():
  feats = np.random.default_rng(0).normal(size=(600, 4))
  p, r = prd.compute_prd(feats, feats, num_clusters=20, num_runs=3)
  mid = len(p) // 2  # slope exactly 1
  np.testing.assert_allclose([p[mid], r[mid]], [1.0, 1.0], atol=1e-9)
  f8, f1_8 = prd.f_beta_scores(p, r)
  assert f8 > 0.99 and f1_8 > 0.99 and prd.area_under_curve(p, r) > 0.75


def test_prd_disjoint_sets_are_near_zero():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(400, 4)), rng.normal(size=(400, 4)) + 100.0
  p, r = prd.compute_prd(real, fake, num_clusters=20, num_runs=3)
  assert p.max() < 1e-6 and r.max() < 1e-6
  summary = prd.summarise(p, r)
  assert summary["prd_f8"] < 1e-6 and summary["prd_auc"] < 1e-6


def test_prd_half_covered_model_has_high_precision_low_recall():
  rng = np.random.default_rng(2)
  centres = rng.normal(size=(10, 4)) * 50
  real = np.concatenate([c + rng.normal(size=(60, 4)) for c in centres])
  fake = np.concatenate([c + rng.normal(size=(120, 4)) for c in centres[:5]])  # drops half the modes
  p, r = prd.compute_prd(real, fake, num_clusters=20, num_runs=3)
  f8, f1_8 = prd.f_beta_scores(p, r)
  assert f1_8 > 0.9 and f8 < 0.6  # precise but not covering (mode dropping)


def test_kmeans_recovers_separated_clusters():
  rng = np.random.default_rng(3)
  x = np.concatenate([rng.normal(size=(50, 2)) + c for c in ([0, 0], [30, 0], [0, 30])])
  labels = prd.kmeans(x, 3, rng)
  assert all(len(set(labels[i * 50:(i + 1) * 50])) == 1 for i in range(3))
  assert len(set(labels)) == 3


def _class_squares(n, seed):
  """Images whose class is the position of a bright 4x4 square (4 classes), with noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 4, n).astype(np.int32)
  images = rng.integers(0, 60, (n, 8, 8, 1)).astype(np.uint8)
  for i, c in enumerate(labels):
    r, col = divmod(int(c), 2)
    images[i, 4 * r:4 * r + 4, 4 * col:4 * col + 4] = 250
  return images, labels


def test_gan_test_and_gan_train_separate_faithful_from_mislabelled_samples():
  from adejax import input_pipeline
  from adejax.evaluation import domain_classifier as dc, inception

  train_images, train_labels = _class_squares(512, 0)
  test = input_pipeline.ImageData(*_class_squares(256, 1))
  module, params, accuracy = dc.train_classifier(train_images, train_labels, test.images, test.labels,
                                                 steps=150, batch_size=64)
  assert accuracy > 0.95
  features = inception.make_feature_fn(module, params, dc._prepare, 128)
  samples, labels = _class_squares(256, 2)  # a "model" whose samples are faithful to their labels
  wrong = (labels + 1) % 4                  # the same images, generated "for" another class
  assert dc.gan_test(features, samples, labels) > 0.95
  assert dc.gan_test(features, samples, wrong) < 0.1
  assert dc.gan_train(samples, labels, test, num_classes=4, steps=150) > 0.95
  assert dc.gan_train(samples, wrong, test, num_classes=4, steps=150) < 0.1


def test_interpolation_pairs_stay_within_a_class_for_conditional_models():
  from adejax import evaluate

  labels = np.array([0, 1, 0, 2, 1, 0])
  a, b = evaluate.interpolation_pairs(labels, 2, same_class=False)
  np.testing.assert_array_equal(a, [0, 1])
  np.testing.assert_array_equal(b, [2, 3])
  a, b = evaluate.interpolation_pairs(labels, 2, same_class=True)
  np.testing.assert_array_equal(b, [2, 4])  # the first later image of each one's class
  np.testing.assert_array_equal(labels[a], labels[b])
  _, b = evaluate.interpolation_pairs(np.array([0, 1, 2]), 1, same_class=True)
  np.testing.assert_array_equal(b, [0])  # no later image of the class: the image itself


def test_non_finite_samples_are_counted_and_drawn_not_cast():
  from adejax import evaluate, reporting

  class Sampler:  # the part of a Trainer that generate_uint8 uses
    num_classes = 0

    def sample(self, state, n, seed=0, labels=None):
      x = np.full((n, 4, 4, 1), 0.5, np.float32)
      x[0, 0, 0, 0] = np.nan
      x[1, 1, 1, 0] = np.inf
      return x

  images, labels, bad = evaluate.generate_uint8(Sampler(), None, 8, chunk=4)
  assert images.dtype == np.uint8 and labels is None
  assert bad == 0.5  # two of four images in each chunk
  assert images[0, 0, 0, 0] == 0 and images[0, 1, 1, 0] == 128
  grid = reporting.image_grid(Sampler().sample(None, 2), ncols=2, pad=0)
  assert tuple(grid[0, 0]) == (255, 0, 255) and tuple(grid[1, 5]) == (255, 0, 255)
  assert tuple(grid[0, 1]) == (128, 128, 128)


def test_concurrent_processes_train_the_domain_classifier_once(tmp_path, monkeypatch):
  """Two members of a --jobs sweep that evaluate at once on a fresh machine: the second waits for the
  first to train and cache the classifier, then loads it (it used to train its own copy beside it)."""
  import threading
  import time
  import types

  import jax

  from adejax.evaluation import domain_classifier

  images = np.zeros((4, 8, 8, 1), np.uint8)
  data = types.SimpleNamespace(images=images, labels=np.arange(4) % 2)
  trained = []

  def slow_train(*args, steps):
    trained.append(threading.get_ident())
    time.sleep(1.0)  # the other thread checks the cache meanwhile
    module = domain_classifier.DomainClassifier(2)
    return module, module.init(jax.random.key(0), images[:2].astype(np.float32))["params"], 0.5

  monkeypatch.setattr(domain_classifier, "train_classifier", slow_train)
  infos = []
  run = lambda: infos.append(domain_classifier.load_or_train(str(tmp_path), "toy", lambda: data, data, 3)[1])
  threads = [threading.Thread(target=run) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(trained) == 1 and len(infos) == 2 and infos[0] == infos[1]
