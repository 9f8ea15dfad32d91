"""Inception for FID/IS: shapes, the standard weights layout round-trips through the torch-free loader
(zip and legacy torch formats, and .npz), and hostile pickles are refused."""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adejax.evaluation import inception


class _Storage:
  def __init__(self, key, array):
    self.key, self.array = key, array


def write_pth(path, state_dict, legacy=False, extra_global=None, layout=None):
  """Write `state_dict` as torch.save would (standard key layout), without torch. `layout`: a claimed
  (offset, size, stride) per key instead of the true one (for crafted files)."""
  torch_mod, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  storage_type = type("FloatStorage", (), {"__module__": "torch"})
  torch_mod.FloatStorage, torch_mod._utils = storage_type, utils

  class Tensor:
    def __init__(self, key, array, claimed=None):
      self.storage = _Storage(key, np.ascontiguousarray(array, np.float32))
      self.claimed = claimed

    def __reduce__(self):
      a = self.storage.array
      stride = tuple(s // a.itemsize for s in a.strides)
      offset, size, stride = self.claimed or (0, a.shape, stride)
      return _rebuild_tensor_v2, (self.storage, offset, size, stride, False, collections.OrderedDict())

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, _Storage):
        return ("storage", storage_type, obj.key, "cpu", obj.array.size)
      return None

  saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
  sys.modules.update({"torch": torch_mod, "torch._utils": utils})
  try:
    tensors = collections.OrderedDict((k, Tensor(str(i), v, (layout or {}).get(k)))
                                      for i, (k, v) in enumerate(state_dict.items()))
    if extra_global is not None:
      tensors["evil"] = extra_global
    body = io.BytesIO()
    Pickler(body, protocol=2).dump(tensors)
  finally:
    for k, v in saved.items():
      if v is None:
        sys.modules.pop(k, None)
      else:
        sys.modules[k] = v
  storages = [t.storage for t in tensors.values() if isinstance(t, Tensor)]
  if legacy:
    with open(path, "wb") as f:
      for header in (inception.LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
      f.write(body.getvalue())
      pickle.dump([s.key for s in storages], f, protocol=2)
      for s in storages:
        f.write(struct.pack("<q", s.array.size) + s.array.tobytes())
  else:
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", body.getvalue())
      z.writestr("archive/version", "3\n")
      for s in storages:
        z.writestr(f"archive/data/{s.key}", s.array.tobytes())


@pytest.fixture(scope="module")
def random_params():
  variables = inception.FIDInceptionV3().init(jax.random.key(0), jnp.zeros((1, 75, 75, 3)))
  return jax.tree.map(lambda x: np.asarray(x) + 0.01, variables["params"])  # non-trivial BN stats


def test_shapes_and_parameter_count():
  variables = jax.eval_shape(lambda: inception.FIDInceptionV3().init(jax.random.key(0), jnp.zeros((1, 299, 299, 3))))
  pool, logits = jax.eval_shape(lambda v: inception.FIDInceptionV3().apply(v, jnp.zeros((3, 299, 299, 3))), variables)
  assert pool.shape == (3, 2048) and logits.shape == (3, 1008)
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables))
  assert 23_000_000 < n < 24_500_000  # Inception-v3 with the 1008-way FID head


@pytest.mark.parametrize("fmt", ["zip", "legacy", "npz"])
def test_standard_layout_round_trips(tmp_path, random_params, fmt):
  state_dict = inception.params_to_state_dict(random_params)
  assert "Mixed_5b.branch1x1.conv.weight" in state_dict and state_dict["fc.weight"].shape == (1008, 2048)
  assert state_dict["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)  # torch OIHW
  path = str(tmp_path / ("w.npz" if fmt == "npz" else inception.WEIGHTS_FILENAME))
  if fmt == "npz":
    np.savez(path, **state_dict)
  else:
    write_pth(path, state_dict, legacy=(fmt == "legacy"))
  loaded = inception.state_dict_to_params(inception.load_state_dict(path))
  flat_a = jax.tree_util.tree_flatten_with_path(random_params)[0]
  flat_b = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
  assert len(flat_a) == len(flat_b)
  for path_, leaf in flat_a:
    np.testing.assert_array_equal(flat_b[path_], leaf)


def test_loaded_network_gives_features_for_gray_and_rgb(tmp_path, random_params):
  path = str(tmp_path / inception.WEIGHTS_FILENAME)
  write_pth(path, inception.params_to_state_dict(random_params))
  features = inception.load_fid_inception(path, batch_size=2)
  gray = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), np.uint8)
  pool, logits = features(gray)
  assert pool.shape == (3, 2048) and logits.shape == (3, 1008)
  assert np.all(np.isfinite(pool)) and np.all(pool >= 0)  # post-ReLU average
  colour = np.concatenate([gray, 255 - gray, gray // 2], axis=-1)  # three different channels
  pool_rgb, _ = features(colour)
  pool_bgr, _ = features(colour[..., ::-1])
  assert np.all(np.isfinite(pool_rgb)) and pool_rgb.shape == pool.shape
  assert np.max(np.abs(pool_rgb - pool_bgr)) > 1e-3  # the network reads all three channels, in order


@pytest.mark.parametrize("legacy", [False, True])
def test_hostile_pickle_is_refused(tmp_path, legacy):
  path = str(tmp_path / "evil.pth")
  write_pth(path, {"fc.bias": np.zeros(3, np.float32)}, legacy=legacy, extra_global=os.system)
  with pytest.raises(inception.UnsafeWeightsError, match="posix.system|nt.system|os.system"):
    inception.load_state_dict(path)


def test_garbage_file_is_refused(tmp_path):
  path = tmp_path / "junk.pth"
  path.write_bytes(b"not a weights file at all")
  with pytest.raises(inception.UnsafeWeightsError):
    inception.load_state_dict(str(path))


def torch_bilinear_resize(x: np.ndarray, size: int) -> np.ndarray:
  """torch.nn.functional.interpolate(mode="bilinear", align_corners=False) written out in numpy (what
  pytorch-fid does before its Inception): source coordinate (i + 0.5) * in / out - 0.5, clamped at 0,
  neighbours clamped at the border. x: (H, W, C)."""
  def axis(n_in):
    src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo
  (r0, r1, fr), (c0, c1, fc) = axis(x.shape[0]), axis(x.shape[1])
  rows = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
  return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


@pytest.mark.parametrize("size", [16, 28, 32])
def test_resize_matches_pytorch_fids_bilinear_interpolation(size):
  """The FID network's input equals pytorch-fid's: the same bilinear upsampling to 299 (align_corners
  False, no antialiasing), then [0, 1] -> [-1, 1]."""
  images = np.random.default_rng(size).integers(0, 256, (2, size, size, 3), np.uint8)
  got = np.asarray(inception.preprocess(jnp.asarray(images)))
  for i in range(2):
    expected = 2.0 * torch_bilinear_resize(images[i].astype(np.float64) / 255.0, 299) - 1.0
    np.testing.assert_allclose(got[i], expected, atol=2e-5)
