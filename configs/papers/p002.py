"""papers/002 (AV-ADE): a config by its Table 1 row and section 5.2 refinements, the config files'
variants, Table 9's f_psi capacities, and the generator width that matches a parameter count."""
from __future__ import annotations

import ml_collections

from adejax import config_lib, experiment
from adejax.families.ade import MODES


def match_width(config, target: int, lo: float = 0.2, hi: float = 1.0) -> float:
  """The generator width at which `config`'s total parameter count is closest to `target` (bisection)."""
  c = ml_collections.ConfigDict(config.to_dict())
  for _ in range(16):
    c.model.width = (lo + hi) / 2
    if experiment.generator_param_count(c) > target:
      hi = c.model.width
    else:
      lo = c.model.width
  return round((lo + hi) / 2, 4)


FLOW_CAPACITY = {  # Table 9's f_psi architectures: variant name -> (scales, residual blocks)
    f"flow{s}x{b}": (s, b) for s, b in ((1, 2), (2, 2), (2, 4), (3, 3), (3, 2), (4, 1))}


def paper_config(mode: str, dataset: str = "cifar10", image_size: int = 32, *, rd: bool = False,
                 wg: bool = False, iaf: bool = False, s2: bool = False, num_classes: int = 0,
                 capacity: tuple[int, int] | None = None) -> ml_collections.ConfigDict:
  """A config of papers/002 by its row name: mode plus refinements rd, wg, iaf, s2 (section 5.2).

  rd: residual discriminator (Table 6a); wg: generator of twice the width; iaf: the residual IAF-VAE
  generator of Table 6b with an IAF step per posterior; s2: f_psi with two scales. The GAN draws from
  one latent vector (model.generator "vector" by default for mode gan; footnote 2). num_classes > 0:
  the class-conditional version of appendix E.1 (conditional weight norm, projection discriminator).
  capacity = (scales, blocks): Table 9's f_psi, with the residual architectures of Table 6 (residual
  generator and discriminator); its AV-ADE models train by likelihood first and switch on the
  adversarial loss at 40% of training (appendix F: "first trained with maximum-likelihood estimation").
  """
  c = config_lib.base_config()
  c.mode = mode
  c.data.dataset, c.data.image_size = dataset, image_size
  c.data.resize = "resize" if dataset != "cifar10" else "pad"
  c.model.disc_arch = "resnet" if rd or capacity else "conv"
  c.model.width = 2.0 if wg else 1.0
  c.model.arch, c.model.iaf = ("resnet", True) if iaf else ("sngan", False)
  c.model.flow_scales = 2 if s2 else 1
  c.model.num_classes = num_classes
  c.train.batch_size = 64 if image_size <= 32 else 32
  c.train.num_steps, c.eval.every, c.ckpt.every = 500_000, 10_000, 5_000
  if capacity:
    c.model.arch = "resnet"
    c.model.flow_scales, c.model.flow_blocks = capacity
    if MODES[mode][1] and MODES[mode][2]:
      c.loss.adv_start_step = int(0.4 * c.train.num_steps)
  return c


def variant_config(mode: str, variant: str, config_file: str, names, *, dataset: str = "cifar10",
                   image_size: int = 32, default: str = "") -> ml_collections.ConfigDict:
  """The config of a papers/002 config file (configs/cifar_avade.py etc.) for a variant such as
  "wg,rd": refinement names (rd, wg, iaf, s2 as in `paper_config`; cond: class-conditional, appendix
  E.1), a Table 9 f_psi (FLOW_CAPACITY) and "tiny" (test size:
  width 1/16, 16x16 images, 2 steps; the dataset stays, so TFDS datasets need mock data). `default`
  is the file's row when the variant names no refinement (e.g. "wg,rd" for LSUN)."""
  given = config_lib.parse_variant(variant, config_file, names,
                                   exclusive=(tuple(n for n in FLOW_CAPACITY if n in names),))
  if not given - {"tiny"}:
    given |= config_lib.parse_variant(default, config_file, names)
  capacity = next((FLOW_CAPACITY[n] for n in given if n in FLOW_CAPACITY), None)
  c = paper_config(mode, dataset, image_size, capacity=capacity, num_classes=10 * ("cond" in given),
                   **{n: n in given for n in ("rd", "wg", "iaf", "s2")})
  if dataset == "stl10":  # section 5.3: STL-10 trains on its unlabelled images too
    c.data.train_split = "train+unlabelled"
  elif image_size > 32:   # ImageNet-64, LSUN, CelebA: streamed from TFDS, evaluated on a held-out split
    c.data.stream = True
    c.data.eval_split = "test" if dataset == "celeb_a" else "validation"
  if "tiny" in given:
    config_lib.make_tiny(c, num_steps=2)
    c.model.flow_blocks = 1
    c.data.image_size, c.data.resize = 16, "resize"
    c.loss.adv_start_step = min(c.loss.adv_start_step, 1)
    c.loss.flow_start_step = 0
  return c
