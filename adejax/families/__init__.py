"""Model families: one file per family, each a `base.Family` (its config section and validation, its
modules, losses, parameter groups, update schedule). `config.model.family` picks one;
`make(config, image_shape)` builds it. Adding a family is a file here and a line in REGISTRY."""
from __future__ import annotations

import importlib

from adejax.families.base import (ConfigError, Family, Group, all_finite, apply_if_finite,  # noqa: F401
                                  update_group)

DEFAULT = "ade"  # base_config's model.family

# name -> (module, class), in the order config_lib adds their config sections
REGISTRY = {
    "ade": ("adejax.families.ade", "ADEFamily"),
    "glow_vae": ("adejax.families.glow_vae", "GlowVAEFamily"),
    "glow": ("adejax.families.glow", "GlowFamily"),
    "hybrid": ("adejax.families.hybrids", "HybridFamily"),
    "flow_gan": ("adejax.families.flow_gan", "FlowGANFamily"),
}


def family_named(name: str) -> type[Family]:
  if name not in REGISTRY:
    raise ConfigError(f"config.model.family: {name!r} is not one of {list(REGISTRY)}")
  module, cls = REGISTRY[name]
  return getattr(importlib.import_module(module), cls)


def family_class(config) -> type[Family]:
  """The Family subclass of `config.model.family` (its static methods answer questions about a config
  without building the family)."""
  return family_named(config.model.family)


def family_classes() -> list[type[Family]]:
  return [family_named(name) for name in REGISTRY]


def make(config, image_shape) -> Family:
  return family_class(config)(config, tuple(int(s) for s in image_shape))
