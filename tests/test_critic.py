"""The independent Wasserstein critic (papers/004 appendix I): on a constructed example its held-out
estimate orders sample sets by how far they are from the real images."""
import numpy as np

from adejax.evaluation import critic


def blobs(rng, n):
  """16x16 images of one Gaussian blob at a random place."""
  yy, xx = np.mgrid[:16, :16]
  c = rng.uniform(4, 12, (n, 2))
  img = np.exp(-((yy[None] - c[:, :1, None]) ** 2 + (xx[None] - c[:, 1:, None]) ** 2) / 8.0)
  return (img[..., None] * 255).astype(np.uint8)


def test_the_estimate_is_larger_for_worse_samples():
  rng = np.random.default_rng(0)
  real, same = blobs(rng, 256), blobs(rng, 256)
  noisy = np.clip(same.astype(int) + rng.integers(-60, 61, same.shape), 0, 255).astype(np.uint8)
  noise = rng.integers(0, 256, same.shape).astype(np.uint8)
  est = {name: critic.wasserstein_estimate(real, s, steps=150)["wasserstein_critic"]
         for name, s in (("same", same), ("noisy", noisy), ("noise", noise))}
  assert abs(est["same"]) < 1.0 < est["noisy"] < est["noise"], est
