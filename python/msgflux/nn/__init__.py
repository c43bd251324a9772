"""Modules, agents and the functional concurrency API."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from msgflux.nn import functional

__all__ = ["Agent", "Module", "ModuleDict", "ModuleList", "functional"]

_LAZY = {
    "Module": ("msgflux.nn.modules", "Module"),
    "ModuleList": ("msgflux.nn.modules", "ModuleList"),
    "ModuleDict": ("msgflux.nn.modules", "ModuleDict"),
    "Agent": ("msgflux.nn.agent", "Agent"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'msgflux.nn' has no attribute {name!r}") from None
    value = getattr(import_module(module_name), attribute)
    globals()[name] = value
    return value
