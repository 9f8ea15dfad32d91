"""Compare adejax's Flax FID Inception with pytorch-fid's network, image for image.

  pip install torch torchvision pytorch-fid    # only for this check; adejax itself never needs torch
  python tools/check_inception.py [--weights=pt_inception-2015-12-05-6726825d.pth] [--num=8]

With --weights, both networks load that file (pytorch-fid's own loader vs adejax's torch-free one) and
the script prints the largest differences of pool3 features and logits on random uint8 images of
several sizes, plus the FID of the two feature sets' statistics. Without --weights, pytorch-fid's
architecture gets random weights (and random batch-norm statistics) written to a temporary .pth in the
standard key layout: that checks the architecture, resizing and input scaling, everything but the
numbers of the real file. Exits 1 when a difference exceeds the tolerance.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytorch_fid_network(weights: str):
  import torch
  from pytorch_fid import inception as pf

  def load(url, progress=True):  # pytorch-fid would download here; give it the file or random weights
    del url, progress
    if weights:
      return torch.load(weights, map_location="cpu")
    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in net.state_dict().items():
      if key.endswith("running_var"):
        value = 0.5 + torch.rand(value.shape, generator=gen)
      elif key.endswith("running_mean") or key.endswith(".bias"):
        value = 0.1 * torch.randn(value.shape, generator=gen)
      elif key.endswith("bn.weight"):
        value = 0.5 + torch.rand(value.shape, generator=gen)
      state[key] = value  # conv and fc weights keep torchvision's random initialisation
    return state

  pf.load_state_dict_from_url = load
  torch.manual_seed(0)  # the random architecture check is the same on every run
  net = pf.fid_inception_v3()
  if not weights:
    # Calibrate the batch-norm statistics on random images, so that the random network's outputs
    # depend on its input (with default statistics the signal dies out and every image gives the
    # same features, which would make the comparison vacuous).
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    images = np.random.default_rng(1).integers(0, 256, (16, 64, 64, 3)).astype(np.uint8)
    torch_features(net, images)
  return net.eval()


def torch_features(net, images: np.ndarray):
  """pytorch-fid's InceptionV3 forward (resize_input, normalize_input) up to pool3, then fc."""
  import torch
  import torch.nn.functional as F

  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  x = 2 * x - 1
  with torch.no_grad():
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                 "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
      x = getattr(net, name)(x)
    pool = torch.flatten(x, 1)
    logits = net.fc(pool)
  return pool.numpy(), logits.numpy()


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--weights", default="", help="the standard weights file; default: random weights")
  parser.add_argument("--num", type=int, default=8, help="images per size")
  parser.add_argument("--rtol", type=float, default=1e-3, help="allowed max |diff| / max |value|")
  args = parser.parse_args()

  import torch

  from adejax.evaluation import fid, inception

  net = pytorch_fid_network(args.weights)
  path = args.weights
  if not path:
    path = os.path.join(tempfile.mkdtemp(), inception.WEIGHTS_FILENAME)
    torch.save(net.state_dict(), path)
  ours = inception.load_fid_inception(path, batch_size=args.num)
  rng = np.random.default_rng(0)
  worst = 0.0
  for size, channels in ((32, 3), (28, 1), (64, 3), (299, 3)):
    images = rng.integers(0, 256, (args.num, size, size, channels)).astype(np.uint8)
    (tp, tl), (op, ol) = torch_features(net, images), ours(images)
    for name, t, o in (("pool3", tp, op), ("logits", tl, ol)):
      rel = float(np.max(np.abs(t - o)) / max(np.max(np.abs(t)), 1e-12))
      worst = max(worst, rel)
      spread = float(np.max(np.abs(t - t[:1])))  # how much the images' outputs differ (not a constant)
      print(f"{size}x{size}x{channels} {name:6s}: max |torch - adejax| = {np.max(np.abs(t - o)):.3e}, "
            f"relative to max |value| {rel:.2e}; between images {spread:.3e}")
    if args.num > 1:
      stats = lambda f: fid.feature_statistics(f)
      print(f"  FID(torch features, adejax features) = {fid.frechet_distance(*stats(tp), *stats(op)):.3e}")
  print("weights:", args.weights or "random (architecture check)", "| worst relative difference:",
        f"{worst:.2e}", "OK" if worst <= args.rtol else "MISMATCH")
  sys.exit(0 if worst <= args.rtol else 1)


if __name__ == "__main__":
  main()
