"""The independent Wasserstein critic (papers/004 appendix I): on a constructed example its held-out
estimate orders sample sets by how far they are from the real images."""
import json
import os
import subprocess
import sys

import numpy as np

from adejax.evaluation import critic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blobs(rng, n):
  """16x16 images of one Gaussian blob at a random place."""
  yy, xx = np.mgrid[:16, :16]
  c = rng.uniform(4, 12, (n, 2))
  img = np.exp(-((yy[None] - c[:, :1, None]) ** 2 + (xx[None] - c[:, 1:, None]) ** 2) / 8.0)
  return (img[..., None] * 255).astype(np.uint8)


def estimates(steps: int) -> dict:
  """The held-out estimate for samples from the real distribution, a noisy copy of it and noise."""
  rng = np.random.default_rng(0)
  real, same = blobs(rng, 256), blobs(rng, 256)
  noisy = np.clip(same.astype(int) + rng.integers(-60, 61, same.shape), 0, 255).astype(np.uint8)
  noise = rng.integers(0, 256, same.shape).astype(np.uint8)
  return {name: critic.wasserstein_estimate(real, s, steps=steps)["wasserstein_critic"]
          for name, s in (("same", same), ("noisy", noisy), ("noise", noise))}


def test_the_estimate_is_larger_for_worse_samples():
  # 450 training steps: run time, not compile time, dominates, so this runs in a process with XLA:CPU's
  # default settings (conftest's compile-fast flags make these steps 7x slower: 257 s against 45 s).
  env = dict(os.environ, XLA_FLAGS="", PYTHONPATH=ROOT)
  code = "import json, test_critic; print(json.dumps(test_critic.estimates(150)))"
  result = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "tests"), env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  est = json.loads(result.stdout.strip().splitlines()[-1])
  assert abs(est["same"]) < 1.0 < est["noisy"] < est["noise"], est
