"""Fire-and-forget tasks, and what happens to them at interpreter exit."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, List, Set

from msgflux import _config, _core, _loop
from msgflux._validate import check_callable

logger = logging.getLogger(__name__)

__all__ = ["aspawn", "spawn"]

# Spawned coroutines still running on library loops. The loop only keeps weak
# references to tasks, so this set is what keeps them alive until done.
_spawned_tasks: Set[asyncio.Task] = set()


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or type(f).__name__


def _report_failure(exc: BaseException, f: Any) -> None:
    logger.error(
        "spawned task %s failed: %r", _name(f), exc,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


_core.set_spawn_failure_hook(_report_failure)


async def _run_spawned(awaitable: Any, f: Any) -> None:
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        _report_failure(exc, f)


def _start_on_loop(loop: asyncio.AbstractEventLoop, awaitable: Any, f: Any, context: Any) -> None:
    if _loop.HAS_TASK_CONTEXT:
        task = loop.create_task(_run_spawned(awaitable, f), context=context)
    else:
        task = context.run(loop.create_task, _run_spawned(awaitable, f))
    _spawned_tasks.add(task)
    task.add_done_callback(_spawned_tasks.discard)


def spawn_awaitable(awaitable: Any, f: Any, context: Any, depth: int) -> None:
    loop = _loop.get_loop(depth)
    loop.call_soon_threadsafe(_start_on_loop, loop, awaitable, f, context)


def spawn(f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Start ``f(*args, **kwargs)`` in the background and return at once.

    A sync callable runs on the worker pool; an ``async def`` runs on the
    library's background event loop. The library holds a reference to the
    task until it finishes, so it is never garbage-collected mid-flight.

    Args:
        f: The callable.
        *args: Positional arguments for ``f``.
        **kwargs: Keyword arguments for ``f``.

    Returns:
        None. A failure is logged at ERROR with its traceback on the
        ``msgflux`` logger and never raised. At interpreter exit, unfinished
        spawned tasks get ``exit_grace`` seconds (default 5) to finish before
        they are abandoned with one WARNING.

    Raises:
        TypeError: If ``f`` is not callable.
    """
    check_callable(f, "f")
    depth = _loop.loop_depth()
    context = contextvars.copy_context()
    if asyncio.iscoroutinefunction(f):
        try:
            awaitable = context.run(f, *args, **kwargs)
        except Exception as exc:
            _report_failure(exc, f)
            return
        spawn_awaitable(awaitable, f, context, depth)
        return

    def on_awaitable(_batch: Any, _index: int, awaitable: Any, task_context: Any) -> None:
        spawn_awaitable(awaitable, f, task_context, depth)

    _core.spawn(f, args, kwargs or None, context, on_awaitable)


def _pending_async() -> int:
    return sum(1 for task in list(_spawned_tasks) if not task.done())


def _wait_async(deadline: float) -> None:
    by_loop: Dict[asyncio.AbstractEventLoop, List[asyncio.Task]] = {}
    for task in list(_spawned_tasks):
        if not task.done():
            by_loop.setdefault(task.get_loop(), []).append(task)
    for loop, tasks in by_loop.items():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            waiter = asyncio.run_coroutine_threadsafe(asyncio.wait(tasks), loop)
            waiter.result(remaining)
        except (concurrent.futures.TimeoutError, RuntimeError):
            # Out of time, or the loop is already closed: count what is left.
            continue


def _at_exit() -> None:
    grace = _config.exit_grace
    reason = f"still running {grace:.1f} s after exit began"
    if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        # The program is ending because of Ctrl-C: the user asked to stop now.
        grace = 0.0
        reason = "the program was stopped with Ctrl-C"
    deadline = time.monotonic() + grace
    try:
        pending_sync = _core.wait_spawned(grace)
        _wait_async(deadline)
        pending = pending_sync + _pending_async()
    except KeyboardInterrupt:
        # A second Ctrl-C during the grace period means: exit now.
        pending = _core.pool_stats()["spawned_pending"] + _pending_async()
        reason = "exit was interrupted with Ctrl-C"
    if pending:
        logger.warning(
            "abandoning %d spawned task(s): %s; "
            "raise exit_grace with msgflux.configure() to wait longer",
            pending, reason,
        )
    _core.shutdown()
    _loop.stop_all(timeout=0.5)


atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    _core.after_fork_in_child()
    _loop.forget_after_fork()
    _spawned_tasks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_loop_spawned: Set[asyncio.Task] = set()


async def aspawn(f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Start ``f(*args, **kwargs)`` in the background from async code.

    An ``async def`` runs as a task on the running loop; a sync callable runs
    on the worker pool, so it never blocks the loop. The library keeps a
    strong reference to the task until it finishes.

    Args:
        f: The callable.
        *args: Positional arguments for ``f``.
        **kwargs: Keyword arguments for ``f``.

    Returns:
        None, at once. A failure is logged at ERROR with its traceback on the
        ``msgflux`` logger and never raised.

    Raises:
        TypeError: If ``f`` is not callable.
    """
    check_callable(f, "f")
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    if not asyncio.iscoroutinefunction(f):

        def on_awaitable(_batch: Any, _index: int, awaitable: Any, task_context: Any) -> None:
            loop.call_soon_threadsafe(_start_here, loop, awaitable, f, task_context)

        _core.spawn(f, args, kwargs or None, context, on_awaitable)
        return
    try:
        awaitable = context.run(f, *args, **kwargs)
    except Exception as exc:
        _report_failure(exc, f)
        return
    _start_here(loop, awaitable, f, context)


def _start_here(loop: asyncio.AbstractEventLoop, awaitable: Any, f: Any, context: Any) -> None:
    if _loop.HAS_TASK_CONTEXT:
        task = loop.create_task(_run_spawned(awaitable, f), context=context)
    else:
        task = context.run(loop.create_task, _run_spawned(awaitable, f))
    _loop_spawned.add(task)
    task.add_done_callback(_loop_spawned.discard)
