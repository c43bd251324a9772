"""Choosing where a gather's tasks run.

``"threads"`` (the Rust worker pool) is the default. ``"processes"`` runs
tasks in reusable worker processes, for pure-Python CPU work that threads
cannot speed up under the GIL. ``"dask"`` runs them on a Dask distributed
cluster. A backend other than threads implements two functions over a list
of ``(callable, args, kwargs)`` triples and returns results in input order,
with ``TaskError`` slots exactly as the thread pool does::

    def run(calls, timeout) -> tuple
    async def arun(calls, timeout) -> tuple
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import importlib
import logging
import os
import sys
from typing import Any, Iterator, List, Optional, Tuple

__all__ = [
    "BACKENDS",
    "backend",
    "configure_dask",
    "configure_processes",
    "resolve",
    "split_calls",
]

logger = logging.getLogger(__name__)

BACKENDS = ("threads", "processes", "dask")

# Module and the pip extra that provides its dependencies, per backend.
_MODULES = {
    "processes": ("msgflux._backends.processes", "processes"),
    "dask": ("msgflux._backends.dask", "dask"),
}

_CURRENT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "msgflux_backend", default=None
)


def _check_name(name: Any, source: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(
            f"unknown backend {name!r} in {source}; choose one of {', '.join(BACKENDS)}"
        )
    return name


def resolve(name: Optional[str]) -> str:
    """Return the backend a call uses: its own argument, else the innermost
    ``backend()`` block, else ``MSGFLUX_BACKEND``, else ``"threads"``."""
    if name is not None:
        return _check_name(name, "backend=")
    current = _CURRENT.get()
    if current is not None:
        return current
    from_env = os.environ.get("MSGFLUX_BACKEND", "").strip()
    if from_env:
        return _check_name(from_env, "MSGFLUX_BACKEND")
    return "threads"


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Make ``name`` the default backend of gathers inside the block.

    Args:
        name: ``"threads"``, ``"processes"`` or ``"dask"``.

    Yields:
        The backend name.

    Raises:
        ValueError: If ``name`` is not a known backend.
    """
    token = _CURRENT.set(_check_name(name, "backend()"))
    try:
        yield name
    finally:
        _CURRENT.reset(token)


def load(name: str) -> Any:
    """Import a backend's module, naming the extra to install if it is missing."""
    module_name, extra = _MODULES[name]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"the {name!r} backend needs packages that are not installed ({exc.name}); "
            f"install them with: pip install 'msgflux[{extra}]'"
        ) from exc


def split_calls(count: int, callables: Any, args: Any, kwargs: Any) -> List[Tuple[Any, tuple, dict]]:
    """Expand a checked batch into one ``(callable, args, kwargs)`` per task."""
    calls = []
    for index in range(count):
        f = callables[index] if isinstance(callables, list) else callables
        a = args[index] if isinstance(args, list) else args
        k = kwargs[index] if isinstance(kwargs, list) else kwargs
        calls.append((f, tuple(a), dict(k or {})))
    return calls


def configure_processes(*, max_workers: Optional[int] = None) -> dict:
    """Size the worker processes of the ``"processes"`` backend.

    The pool starts on first use with one process per CPU this process may
    run on, or ``MSGFLUX_PROCESS_WORKERS`` if that is set. A smaller size
    stops idle workers at once and busy ones when their task ends.

    Args:
        max_workers: Most worker processes alive at once, or None to leave
            the size unchanged.

    Returns:
        The settings and state now in force: ``max_workers``, ``workers``
        (processes alive) and ``idle``.

    Raises:
        TypeError: If ``max_workers`` is not an int.
        ValueError: If ``max_workers`` is below 1.
        ImportError: If cloudpickle is missing; the message names the extra.
    """
    return load("processes").configure(max_workers=max_workers)


def configure_dask(client: Any) -> None:
    """Choose the Dask ``distributed.Client`` that the ``"dask"`` backend uses.

    Without this call the backend uses ``distributed.get_client()``: the
    client created last in this process (a new ``Client`` makes itself the
    default), or the worker's client inside a Dask task.

    Args:
        client: A ``distributed.Client``, or None to go back to the default.

    Raises:
        TypeError: If ``client`` is neither a ``distributed.Client`` nor None.
        ImportError: If distributed is missing; the message names the extra.
    """
    load("dask").configure(client)


def _shut_down_backends() -> None:
    # Registered when this module is first imported, which happens before
    # the spawn module registers its exit hook. atexit runs hooks in reverse
    # order, so spawned tasks get their grace period while workers still run.
    for name, (module_name, _extra) in _MODULES.items():
        module = sys.modules.get(module_name)
        shutdown = getattr(module, "shutdown", None)
        if shutdown is None:
            continue
        try:
            shutdown()
        except Exception:
            logger.exception("shutting down the %r backend failed", name)


atexit.register(_shut_down_backends)
