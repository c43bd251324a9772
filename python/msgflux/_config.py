"""Settings of the worker pool and of interpreter exit."""

from __future__ import annotations

import math
import os
from typing import Optional

from msgflux import _core

__all__ = ["configure", "pool_stats"]

_DEFAULT_EXIT_GRACE = 5.0


def _grace_from_env() -> float:
    text = os.environ.get("MSGFLUX_EXIT_GRACE", "").strip()
    if not text:
        return _DEFAULT_EXIT_GRACE
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"MSGFLUX_EXIT_GRACE must be a number of seconds, got {text!r}"
        ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"MSGFLUX_EXIT_GRACE must be 0 or more seconds, got {text!r}")
    return value


exit_grace = _grace_from_env()


def configure(
    *,
    max_workers: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    exit_grace: Optional[float] = None,
) -> dict:
    """Change the worker pool's limits for the whole process.

    The same limits can be set before start-up with the environment variables
    ``MSGFLUX_MAX_WORKERS``, ``MSGFLUX_IDLE_TIMEOUT`` and ``MSGFLUX_EXIT_GRACE``.

    Args:
        max_workers: Most worker threads running tasks at once (default 1024).
            Workers blocked in a nested gather do not count toward it.
        idle_timeout: Seconds an idle worker waits for work before it exits
            (default 10).
        exit_grace: Seconds that interpreter exit waits for spawned tasks
            before it abandons them (default 5).

    Returns:
        The settings now in force, as a dict.

    Raises:
        TypeError: If a value is not a number.
        ValueError: If ``max_workers`` is below 1, ``idle_timeout`` is not
            positive, or ``exit_grace`` is negative.
    """
    if max_workers is not None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(
                f"max_workers must be an int, got {type(max_workers).__name__}"
            )
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if idle_timeout is not None:
        idle_timeout = _seconds("idle_timeout", idle_timeout)
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
    if exit_grace is not None:
        exit_grace = _seconds("exit_grace", exit_grace)
        if exit_grace < 0:
            raise ValueError(f"exit_grace must be 0 or more, got {exit_grace}")

    settings = dict(_core.configure(max_workers, idle_timeout))
    if exit_grace is not None:
        globals()["exit_grace"] = exit_grace
    settings["exit_grace"] = globals()["exit_grace"]
    return settings


def pool_stats() -> dict:
    """Return a snapshot of the worker pool.

    Returns:
        A dict with ``workers`` (threads alive), ``idle`` (of those, waiting
        for work), ``queued_tasks`` (not started yet), ``nested_waiters``
        (workers blocked in a nested gather) and ``spawned_pending``.
    """
    return dict(_core.pool_stats())


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got nan")
    return value
