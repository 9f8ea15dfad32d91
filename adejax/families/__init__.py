"""Model families: one file per family, each a `base.Family` (modules, losses, parameter groups,
update schedule). `config.model.family` picks one; `make(config, image_shape)` builds it."""
from __future__ import annotations

import importlib

from adejax.families.base import Family, Group, all_finite, apply_if_finite, update_group  # noqa: F401

# name -> (module, class); config_lib.FAMILIES lists the same names for validation
REGISTRY = {
    "ade": ("adejax.families.ade", "ADEFamily"),
    "glow_vae": ("adejax.families.glow_vae", "GlowVAEFamily"),
    "glow": ("adejax.families.glow", "GlowFamily"),
    "hybrid": ("adejax.families.hybrids", "HybridFamily"),
}


def family_class(config) -> type[Family]:
  """The Family subclass of `config.model.family` (its static methods answer questions about a config
  without building the family)."""
  name = config.model.family
  if name not in REGISTRY:
    raise ValueError(f"Unknown model family {name!r}; choose one of {sorted(REGISTRY)}.")
  module, cls = REGISTRY[name]
  return getattr(importlib.import_module(module), cls)


def make(config, image_shape) -> Family:
  return family_class(config)(config, tuple(int(s) for s in image_shape))
