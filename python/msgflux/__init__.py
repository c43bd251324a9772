"""msgflux: scatter-gather concurrency primitives with a Rust scheduling core.

The gather functions live in ``msgflux.nn.functional``; this package exports
the values they return and the message and model types built on them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from msgflux._config import configure, pool_stats
from msgflux._errors import TaskError

__version__ = "0.1.0"

__all__ = [
    "Model",
    "TaskError",
    "configure",
    "dotdict",
    "nn",
    "pool_stats",
]

_LAZY = {
    "dotdict": ("msgflux._dotdict", "dotdict"),
    "Model": ("msgflux.models", "Model"),
    "nn": ("msgflux.nn", None),
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import msgflux` does not pay for httpx and the module tree.
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'msgflux' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
