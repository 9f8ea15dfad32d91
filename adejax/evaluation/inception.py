"""Inception-v3 as used by the published FID code (pytorch-fid's FIDInceptionV3), in Flax, and a
torch-free loader for its standard weights file `pt_inception-2015-12-05-6726825d.pth`.

`load_fid_inception(path)` returns a function from uint8 images (N, H, W, 3) -- or (N, H, W, 1), repeated
to RGB -- to (pool3 features (N, 2048), logits (N, 1008)). Images are resized to 299x299 bilinearly
(half-pixel centres, as torch's interpolate with align_corners=False) and scaled to [-1, 1].

The loader never imports torch and never runs code from the file: its unpickler resolves only the
globals that rebuild tensors (torch._utils._rebuild_tensor_v2, the storage types, OrderedDict); a pickle
that names anything else is refused with UnsafeWeightsError. Both torch file formats are read (the zip
archive of torch >= 1.6 and the older single-stream format), and `.npz` files of the same keys.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Callable

import flax.linen as nn
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_ENV = "ADEJAX_FID_INCEPTION"


# ----------------------------------------------------------------------------- the network
class BasicConv(nn.Module):
  """conv (no bias) -> batch norm (inference, eps 1e-3) -> ReLU; names follow torchvision."""
  features: int
  kernel: tuple[int, int] = (1, 1)
  strides: tuple[int, int] = (1, 1)
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    k = self.param("kernel", nn.initializers.he_normal(), (*self.kernel, x.shape[-1], self.features))
    y = jax.lax.conv_general_dilated(x, k, self.strides, [(p, p) for p in self.padding],
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    f = (self.features,)
    scale, bias = self.param("bn_scale", nn.initializers.ones, f), self.param("bn_bias", nn.initializers.zeros, f)
    mean, var = self.param("bn_mean", nn.initializers.zeros, f), self.param("bn_var", nn.initializers.ones, f)
    return nn.relu((y - mean) * scale * jax.lax.rsqrt(var + 1e-3) + bias)


def max_pool(x, stride=2, pad=0):
  return nn.max_pool(x, (3, 3), (stride, stride), [(pad, pad), (pad, pad)])


def avg_pool_exclude_pad(x):
  """3x3 average pooling, stride 1, padding 1, not counting the padding (count_include_pad=False)."""
  window = lambda t: jax.lax.reduce_window(t, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1),
                                           [(0, 0), (1, 1), (1, 1), (0, 0)])
  return window(x) / window(jnp.ones(x.shape[:3] + (1,), x.dtype))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(BasicConv(48, name="branch5x5_1")(x))
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), (2, 2), name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), (2, 2), name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, max_pool(x)], -1)


class InceptionC(nn.Module):
  c7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.c7
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c7, name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c7, name="branch7x7dbl_1")(x)
    for i, (k, p, f) in enumerate([((7, 1), (3, 0), c7), ((1, 7), (0, 3), c7), ((7, 1), (3, 0), c7),
                                   ((1, 7), (0, 3), 192)]):
      bd = BasicConv(f, k, padding=p, name=f"branch7x7dbl_{i + 2}")(bd)
    bp = BasicConv(192, name="branch_pool")(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(320, (3, 3), (2, 2), name="branch3x3_2")(BasicConv(192, name="branch3x3_1")(x))
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, max_pool(x)], -1)


class InceptionE(nn.Module):
  max_pool_branch: bool  # the FID network's last block pools with max, the one before with average

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
    pooled = max_pool(x, 1, 1) if self.max_pool_branch else avg_pool_exclude_pad(x)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], -1)


class FIDInceptionV3(nn.Module):
  """Input: images in [-1, 1] at 299x299. Output: (pool3 (N, 2048), logits (N, 1008))."""

  @nn.compact
  def __call__(self, x):
    x = BasicConv(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = max_pool(x)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = max_pool(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(False, name="Mixed_7b")(x)
    x = InceptionE(True, name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    return pool3, nn.Dense(1008, name="fc")(pool3)


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 (N, H, W, 1|3) -> float (N, 299, 299, 3) in [-1, 1], as pytorch-fid prepares its input."""
  x = images.astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[-1] != 3:
    raise ValueError(f"Inception needs 1 or 3 channels, got images of shape {images.shape}")
  x = jax.image.resize(x, (x.shape[0], 299, 299, 3), "bilinear", antialias=False)
  return 2.0 * x - 1.0


# ----------------------------------------------------------------------------- torch key layout
# (torch module, torch leaf) -> Flax leaf; the one table for both directions
_LEAVES = {("conv", "weight"): "kernel", ("bn", "weight"): "bn_scale", ("bn", "bias"): "bn_bias",
           ("bn", "running_mean"): "bn_mean", ("bn", "running_var"): "bn_var",
           ("fc", "weight"): "kernel", ("fc", "bias"): "bias"}


def torch_key_to_path(key: str) -> tuple[str, ...] | None:
  """'Mixed_5b.branch1x1.conv.weight' -> ('Mixed_5b', 'branch1x1', 'kernel'); None for ignored keys."""
  parts = key.split(".")
  leaf = _LEAVES.get(tuple(parts[-2:]))
  if leaf is None:
    return None  # num_batches_tracked and the like
  prefix = parts[:-2] if parts[-2] != "fc" else ["fc"]
  return (*prefix, leaf)


def _path_to_torch_key(path: tuple[str, ...]) -> str:
  if path[0] == "fc":
    return "fc." + {v: k[1] for k, v in _LEAVES.items() if k[0] == "fc"}[path[-1]]
  module, leaf = next(k for k, v in _LEAVES.items() if v == path[-1] and k[0] != "fc")
  return ".".join([*path[:-1], module, leaf])


_OIHW_TO_HWIO = (2, 3, 1, 0)


def _relayout(key: str, array: np.ndarray, to_torch: bool = False) -> np.ndarray:
  """torch -> Flax array layout of the tensor named `key` (or back, with to_torch)."""
  if key.endswith("conv.weight"):
    return np.transpose(array, np.argsort(_OIHW_TO_HWIO) if to_torch else _OIHW_TO_HWIO)
  return array.T if key == "fc.weight" else array


def state_dict_to_params(state_dict: dict[str, np.ndarray]) -> dict:
  params: dict = {}
  for key, array in state_dict.items():
    path = torch_key_to_path(key)
    if path is None:
      continue
    node = params
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = np.asarray(_relayout(key, np.asarray(array)), np.float32)
  return params


def params_to_state_dict(params: dict) -> dict[str, np.ndarray]:
  """The inverse layout (used to write test files in the standard key layout)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    key = _path_to_torch_key(tuple(p.key for p in path))
    out[key] = _relayout(key, np.asarray(leaf), to_torch=True)
  return out


# ----------------------------------------------------------------------------- safe .pth reading
class UnsafeWeightsError(RuntimeError):
  """The weights file asks the unpickler for something other than tensor data."""


STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageType:
  def __init__(self, name):
    self.dtype = np.dtype(STORAGE_DTYPES[name])


class _PendingStorage:
  """A legacy-format storage: its bytes follow the pickle, so tensors on it are rebuilt afterwards."""

  def __init__(self, dtype):
    self.dtype, self.data = dtype, None


class _PendingTensor:
  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

  def materialise(self) -> np.ndarray:
    return _strided(self.storage.data, self.offset, self.size, self.stride)


def _strided(data: np.ndarray, offset, size, stride) -> np.ndarray:
  """The tensor (offset, size, stride) on `data`, refused unless every element lies inside it."""
  offset, size, stride = int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride)
  if offset < 0 or len(size) != len(stride) or min(size + stride, default=0) < 0:
    raise UnsafeWeightsError(f"Refusing to load: a tensor with offset {offset}, size {size} and "
                             f"stride {stride} is malformed.")
  if 0 not in size and offset + sum((n - 1) * st for n, st in zip(size, stride)) >= data.size:
    raise UnsafeWeightsError(f"Refusing to load: a tensor (offset {offset}, size {size}, stride "
                             f"{stride}) reaches past the end of its storage of {data.size} elements.")
  item = data.dtype.itemsize
  return np.lib.stride_tricks.as_strided(data[offset:], shape=tuple(size),
                                         strides=tuple(s * item for s in stride)).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
  del unused
  if isinstance(storage, _PendingStorage):
    return _PendingTensor(storage, offset, tuple(size), tuple(stride))
  return _strided(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
  del unused
  return data


class _SafeUnpickler(pickle.Unpickler):
  """Resolves only tensor-rebuilding globals; storages come from `load_storage(key, dtype, numel)`."""

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage

  def find_class(self, module, name):
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return _rebuild_parameter
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    if module == "collections" and name == "OrderedDict":
      return collections.OrderedDict
    raise UnsafeWeightsError(
        f"Refusing to load: the weights file asks for the global {module}.{name}, which is not tensor "
        "data. Only trusted weights files in the standard layout can be loaded.")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise UnsafeWeightsError(f"Refusing to load: unexpected persistent id {pid!r:.100}")
    storage_type, key, _location, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
      raise UnsafeWeightsError("Refusing to load: storage of an unknown type.")
    return self._load_storage(str(key), storage_type.dtype, int(numel))


def _load_zip(path: str) -> dict:
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = next(n for n in names if n.endswith("data.pkl"))
    root = pkl[: -len("data.pkl")]
    cache = {}

    def load_storage(key, dtype, numel):
      if key not in cache:
        cache[key] = np.frombuffer(z.read(f"{root}data/{key}"), dtype=dtype)[:numel]
      return cache[key]

    return _SafeUnpickler(io.BytesIO(z.read(pkl)), load_storage).load()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(path: str) -> dict:
  """torch's pre-1.6 format: pickles (magic, protocol, sys info, the object, storage keys), then each
  storage as an int64 element count followed by its raw little-endian data."""
  with open(path, "rb") as f:
    stream = io.BytesIO(f.read())
  try:
    magic = _SafeUnpickler(stream, None).load()
  except (pickle.UnpicklingError, EOFError, ValueError) as e:
    raise UnsafeWeightsError(f"{path} is neither a torch zip archive nor a torch file: {e}") from None
  if magic != LEGACY_MAGIC:
    raise UnsafeWeightsError(f"{path} is neither a torch zip archive nor a legacy torch file.")
  _SafeUnpickler(stream, None).load()  # protocol version
  _SafeUnpickler(stream, None).load()  # sys info
  storages: dict[str, _PendingStorage] = {}
  load_storage = lambda key, dtype, numel: storages.setdefault(key, _PendingStorage(dtype))
  obj = _SafeUnpickler(stream, load_storage).load()
  for key in _SafeUnpickler(stream, None).load():
    (numel,) = struct.unpack("<q", stream.read(8))
    st = storages[str(key)]
    st.data = np.frombuffer(stream.read(numel * st.dtype.itemsize), dtype=st.dtype)
  return {k: v.materialise() if isinstance(v, _PendingTensor) else v for k, v in obj.items()}


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Arrays by torch key from a .pth (zip or legacy) or .npz file, without torch and without code.
  A truncated or malformed file raises UnsafeWeightsError naming it."""
  try:
    if path.endswith(".npz"):
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    if zipfile.is_zipfile(path):
      return dict(_load_zip(path))
    return _load_legacy(path)
  except UnsafeWeightsError:
    raise
  except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, StopIteration,
          struct.error, pickle.UnpicklingError, zipfile.BadZipFile) as e:
    raise UnsafeWeightsError(f"{path} cannot be read as a weights file ({type(e).__name__}: "
                             f"{str(e)[:150]}); it may be truncated: download it again.") from None


def check_fid_params(params: dict, path: str = "the weights file") -> None:
  """Refuse weights that are not FID Inception-v3's: every parameter present with its shape."""
  wanted = jax.eval_shape(lambda: FIDInceptionV3().init(jax.random.key(0), jnp.zeros((1, 75, 75, 3))))
  have = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  for k, v in jax.tree_util.tree_flatten_with_path(wanted["params"])[0]:
    name = jax.tree_util.keystr(k)
    if have.get(name) != tuple(v.shape):
      raise UnsafeWeightsError(
          f"{path} is not the FID Inception-v3 weights ({name}: expected shape {tuple(v.shape)}, "
          f"found {have.get(name, 'nothing')}); use {WEIGHTS_FILENAME}.")


def load_fid_inception(path: str, batch_size: int = 50) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """Callable: uint8 images (N, H, W, 1|3) -> (pool3 features (N, 2048), logits (N, 1008)), numpy."""
  params = state_dict_to_params(load_state_dict(path))
  check_fid_params(params, path)
  return make_feature_fn(FIDInceptionV3(), params, preprocess, batch_size)


def make_feature_fn(module, params, prepare, batch_size: int):
  apply = jax.jit(lambda p, x: module.apply({"params": p}, prepare(x)))

  def features(images: np.ndarray):
    pools, logits = [], []
    for start in range(0, len(images), batch_size):
      if start and start % (20 * batch_size) == 0:
        logging.info("features: %d of %d images", start, len(images))
      chunk = np.asarray(images[start:start + batch_size])
      pad = batch_size - len(chunk)  # fixed shape: one compilation
      if pad:
        chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, 0)])
      p, l = jax.device_get(apply(params, jnp.asarray(chunk)))
      pools.append(p[:batch_size - pad])
      logits.append(l[:batch_size - pad])
    return np.concatenate(pools), np.concatenate(logits)

  return features
