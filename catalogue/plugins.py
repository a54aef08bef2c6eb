"""Plugins by short name (entry points in setup.cfg) or by dotted path ``package.module:Class``."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from catalogue.errors import ConfigError

GROUPS = {
    "search": "catalogue.search_backends",
    "harvester": "catalogue.harvesters",
    "dcat_profile": "catalogue.dcat_profiles",
}


def available(kind: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUPS[kind]))


def load_plugin(kind: str, name: str) -> Any:
    """Return the class registered as ``name`` in the ``kind`` group, or import a dotted path."""
    if ":" in name or "." in name:
        module_name, _, attr = name.replace(":", ".").rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load {kind} plugin {name!r}: {exc}") from None
    for ep in entry_points(group=GROUPS[kind]):
        if ep.name == name:
            return ep.load()
    raise ConfigError(
        f"unknown {kind} plugin {name!r}; available: {', '.join(available(kind)) or 'none'}"
    )
