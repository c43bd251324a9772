"""Waiting for ``asyncio.Event`` and ``threading.Event`` across threads and loops."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Optional

from msgflux import _loop
from msgflux._aio import arun_batch
from msgflux._validate import check_timeout, describe

__all__ = ["await_for_event", "set_event", "wait_for_event"]

# asyncio.Event is not thread-safe: a plain thread that calls event.set()
# directly flags the event but does not wake the loop. Watchers re-check the
# flag this often so such a set is still noticed.
_FOREIGN_SET_CHECK = 0.05

# A pool worker waiting on a threading.Event for await_for_event wakes this
# often to see whether the await was cancelled, so no thread stays parked.
_PARK_SLICE = 0.05


def _check_event(event: Any) -> None:
    if not isinstance(event, (asyncio.Event, threading.Event)):
        raise TypeError(
            f"event must be an asyncio.Event or a threading.Event, got {describe(event)}"
        )


def _bound_loop(event: asyncio.Event) -> Optional[asyncio.AbstractEventLoop]:
    # asyncio binds an Event to a loop on its first wait (Python 3.10+).
    return getattr(event, "_loop", None)


async def _watch(event: asyncio.Event) -> bool:
    waiter = asyncio.ensure_future(event.wait())
    try:
        while not event.is_set():
            await asyncio.wait({waiter}, timeout=_FOREIGN_SET_CHECK)
        return True
    finally:
        waiter.cancel()


def set_event(event: Any) -> None:
    """Set an ``asyncio.Event`` or ``threading.Event`` safely from any thread.

    An ``asyncio.Event`` that a loop is waiting on is set through that loop
    with ``call_soon_threadsafe``, which wakes its waiters at once.

    Args:
        event: The event to set.

    Raises:
        TypeError: If ``event`` is neither kind of event.
    """
    _check_event(event)
    if isinstance(event, threading.Event):
        event.set()
        return
    loop = _bound_loop(event)
    if loop is None or loop.is_closed():
        event.set()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    else:
        loop.call_soon_threadsafe(event.set)


def wait_for_event(event: Any, timeout: Optional[float] = None) -> bool:
    """Block the calling thread until ``event`` is set, without busy-waiting.

    Ctrl-C interrupts the wait. For an ``asyncio.Event``, the wait runs on the
    loop the event is bound to, or on the library's background loop for an
    event no loop has waited on yet. Set it from another thread with
    ``set_event(event)`` (or ``loop.call_soon_threadsafe(event.set)`` with
    the event's loop). A direct ``event.set()`` from a plain thread is
    noticed too, within 0.05 s.

    Args:
        event: An ``asyncio.Event`` or a ``threading.Event``.
        timeout: Seconds to wait, or None to wait until it is set.

    Returns:
        True once the event is set, False if the timeout passed first.

    Raises:
        TypeError: If ``event`` is neither kind of event, or ``timeout`` is
            not a number.
        ValueError: If ``timeout`` is not positive.
        RuntimeError: If called on the thread of the loop the event belongs
            to, where blocking would stop the loop that must set it; use
            ``await await_for_event(event)`` there.
        KeyboardInterrupt: On Ctrl-C while waiting.
    """
    _check_event(event)
    timeout = check_timeout(timeout)
    if isinstance(event, threading.Event):
        return event.wait(timeout)
    if event.is_set():
        return True

    loop = _bound_loop(event)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and loop in (None, running):
        raise RuntimeError(
            "wait_for_event() would block the event loop that must set this event; "
            "use 'await await_for_event(event)' inside a coroutine"
        )
    if loop is None or loop.is_closed():
        loop = _loop.get_loop(_loop.loop_depth())
    future = asyncio.run_coroutine_threadsafe(_watch(event), loop)
    try:
        future.result(timeout)
        return True
    except TimeoutError:
        return False
    except concurrent.futures.CancelledError:
        # The owning loop shut down, which may cancel the watcher right after
        # the event was set.
        if event.is_set():
            return True
        raise
    finally:
        future.cancel()


def _park(event: threading.Event, stop: threading.Event) -> bool:
    while not event.wait(_PARK_SLICE):
        if stop.is_set():
            return False
    return True


async def await_for_event(event: Any, timeout: Optional[float] = None) -> bool:
    """Wait until ``event`` is set without blocking the running loop.

    An ``asyncio.Event`` of this loop is awaited directly; one bound to
    another loop is watched on that loop. A ``threading.Event`` is waited on
    by a pool worker, which gives up within 0.05 s once this await is
    cancelled, so no thread stays parked.

    Args:
        event: An ``asyncio.Event`` or a ``threading.Event``.
        timeout: Seconds to wait, or None to wait until it is set.

    Returns:
        True once the event is set, False if the timeout passed first.

    Raises:
        TypeError: If ``event`` is neither kind of event, or ``timeout`` is
            not a number.
        ValueError: If ``timeout`` is not positive.
        asyncio.CancelledError: If the awaiting task is cancelled.
    """
    _check_event(event)
    timeout = check_timeout(timeout)
    if event.is_set():
        return True

    if isinstance(event, threading.Event):
        stop = threading.Event()
        try:
            (result,) = await arun_batch(1, _park, (event, stop), None, timeout, False)
        finally:
            stop.set()
        return result is True

    running = asyncio.get_running_loop()
    loop = _bound_loop(event)
    if loop is None or loop is running:
        waiter = _watch(event)
    else:
        waiter = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_watch(event), loop))
    try:
        await asyncio.wait_for(waiter, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    except asyncio.CancelledError:
        # A watcher on another loop is cancelled when that loop shuts down,
        # possibly just after the event was set. Only this task's own
        # cancellation must propagate.
        if event.is_set() and not _cancelling():
            return True
        raise


def _cancelling() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False
