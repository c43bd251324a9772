"""Argument checks shared by the sync and async gather functions.

Every check runs before any task starts, and each message names the argument,
shows the bad value and suggests what to pass instead.
"""

from __future__ import annotations

import inspect
import math
import threading
from typing import Any, Callable, List, Optional, Tuple

__all__ = [
    "as_args_list",
    "as_callables",
    "as_kwargs_list",
    "check_callable",
    "check_timeout",
    "describe",
]


def describe(value: Any) -> str:
    """Name a value for an error message: its type and a short repr."""
    try:
        text = " ".join(repr(value).split())
    except Exception:
        text = "<repr failed>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_callable(f: Any, name: str) -> None:
    if not callable(f) and inspect.isawaitable(f):
        raise TypeError(
            f"{name} must be callable, got the awaitable {describe(f)}; pass the "
            "async function itself, without calling it, and its arguments separately"
        )
    if not callable(f):
        raise TypeError(
            f"{name} must be callable, got {describe(f)}; pass a function, an "
            "async function, an nn.Module or an object with __call__"
        )


def as_callables(fs: Any, name: str = "fs") -> List[Callable]:
    """Copy an iterable of callables into a new list, checking each item.

    A ``ModuleDict`` contributes its modules, not its keys.
    """
    values = getattr(fs, "values", None)
    if callable(values) and _is_module_dict(fs):
        fs = list(values())
    iterable = hasattr(fs, "__iter__") and not isinstance(fs, (str, bytes))
    if not iterable:
        hint = "; wrap a single callable in a list, as in [f]" if callable(fs) else ""
        raise TypeError(f"{name} must be an iterable of callables, got {describe(fs)}{hint}")
    try:
        callables = list(fs)
    except TypeError:
        raise TypeError(
            f"{name} must be an iterable of callables, got {describe(fs)}"
        ) from None
    for index, f in enumerate(callables):
        if not callable(f):
            raise TypeError(
                f"{name}[{index}] must be callable, got {describe(f)}"
            )
    return callables


def as_args_list(args_list: Any, name: str = "args_list") -> list:
    """Copy an iterable of argument tuples into a new list.

    The items themselves are checked by the core, which also turns lists into
    tuples, so this stays one C-level copy for large batches.
    """
    if isinstance(args_list, list):
        return args_list.copy()
    if isinstance(args_list, (str, bytes, dict)) or args_list is None:
        raise TypeError(
            f"{name} must be a list of argument tuples, got {describe(args_list)}; "
            "for example [(1,), (2,)] calls f(1) and f(2)"
        )
    try:
        return list(args_list)
    except TypeError:
        raise TypeError(
            f"{name} must be an iterable of argument tuples, got {describe(args_list)}; "
            "for example [(1,), (2,)] calls f(1) and f(2)"
        ) from None


def as_kwargs_list(
    kwargs_list: Any, expected: Optional[int], name: str = "kwargs_list"
) -> Optional[list]:
    """Copy an iterable of keyword dicts into a new list and check its length.

    With ``expected`` set, the list must have exactly that many items.
    """
    if kwargs_list is None:
        return None
    if isinstance(kwargs_list, (str, bytes, dict)):
        raise TypeError(
            f"{name} must be a list of dicts, got {describe(kwargs_list)}; "
            "pass one dict of keyword arguments per task"
        )
    try:
        kwargs = list(kwargs_list)
    except TypeError:
        raise TypeError(
            f"{name} must be an iterable of dicts, got {describe(kwargs_list)}"
        ) from None
    for index, item in enumerate(kwargs):
        if item is not None and not isinstance(item, dict):
            raise TypeError(
                f"{name}[{index}] must be a dict of keyword arguments, "
                f"got {describe(item)}"
            )
    if expected is not None and len(kwargs) != expected:
        raise ValueError(
            f"{name} has {len(kwargs)} items but args_list has {expected}; "
            "pass one dict per task, {} for none"
        )
    return kwargs


def check_timeout(timeout: Any) -> Optional[float]:
    """Return the timeout as a float, or None for no deadline."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        try:
            import numbers

            if not isinstance(timeout, numbers.Real) or isinstance(timeout, bool):
                raise TypeError
            timeout = float(timeout)
        except TypeError:
            raise TypeError(
                f"timeout must be a number of seconds or None, got {describe(timeout)}"
            ) from None
    try:
        timeout = float(timeout)
    except OverflowError:
        # An int too large for a float: as far off as infinity, or as negative.
        timeout = math.inf if timeout > 0 else -math.inf
    if math.isnan(timeout) or timeout <= 0:
        raise ValueError(
            f"timeout must be a positive number of seconds, got {timeout!r}; "
            "pass None for no deadline"
        )
    if timeout >= threading.TIMEOUT_MAX:
        # Beyond what the platform's timed waits accept (about 292 years on
        # Linux): no deadline that could ever pass.
        return None
    return timeout


def scatter_inputs(args_list: Any, kwargs_list: Any, count: int) -> Tuple[Any, Any]:
    """Check a scatter's per-callable argument lists and pad them to ``count``.

    Returns the positional arguments (a shared empty tuple when there are
    none) and the keyword arguments (None when there are none).
    """
    args: Any = ()
    if args_list is not None:
        args = pad(as_args_list(args_list), count, tuple, "args_list")
    kwargs = pad(as_kwargs_list(kwargs_list, None), count, dict, "kwargs_list")
    return args, kwargs


def pad(items: Optional[list], length: int, filler: Any, name: str) -> Optional[list]:
    """Extend a per-callable list to ``length`` items, rejecting longer ones."""
    if items is None:
        return None
    if len(items) > length:
        raise ValueError(
            f"{name} has {len(items)} items but there are only {length} callables; "
            "pass at most one entry per callable"
        )
    if len(items) < length:
        items.extend(filler() for _ in range(length - len(items)))
    return items


def _is_module_dict(value: Any) -> bool:
    from msgflux.nn.modules import ModuleDict

    return isinstance(value, ModuleDict)
