"""Streaming gathers: results as tasks finish, over unbounded inputs."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import queue
import time
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, Optional, Tuple

from msgflux import _core
from msgflux._aio import _Children
from msgflux._errors import TaskError
from msgflux._gather import _is_async_callable
from msgflux._loop import AsyncBatch, loop_depth
from msgflux._options import check_options, with_retries
from msgflux._validate import check_callable, check_timeout, describe

__all__ = ["aimap_gather", "imap_gather"]

# Default bound on tasks started but not yet yielded.
_DEFAULT_IN_FLIGHT = max(32, 8 * (os.cpu_count() or 2))

# The consumer wakes at least this often while it waits, so Ctrl-C gets through.
_WAIT_SLICE = 0.1


def _check_stream_args(
    f: Any, args_list: Any, max_in_flight: Any, timeout: Any, retries: Any, retry_on: Any,
    ordered: Any,
):
    check_callable(f, "f")
    if not isinstance(ordered, bool):
        raise TypeError(f"ordered must be True or False, got {describe(ordered)}")
    try:
        items = iter(args_list)
    except TypeError:
        raise TypeError(
            f"args_list must be an iterable of argument tuples, got {describe(args_list)}"
        ) from None
    if max_in_flight is None:
        max_in_flight = _DEFAULT_IN_FLIGHT
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
        raise TypeError(f"max_in_flight must be an int, got {describe(max_in_flight)}")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    timeout = check_timeout(timeout)
    options = check_options(None, retries, retry_on, None)
    return items, max_in_flight, timeout, with_retries(f, options, timeout, 1)[0] if options.retries else f


def _as_args(item: Any) -> Any:
    if isinstance(item, (tuple, list)):
        return item
    return TypeError(
        f"args_list item must be a tuple or list of positional arguments, got "
        f"{describe(item)}; wrap a single argument in a tuple, as in (x,)"
    )


def _take(batch: Any, index: int) -> Any:
    """Collect a one-task batch and number its result by stream position."""
    (result,) = batch.collect()
    if isinstance(result, TaskError):
        result.index = index
    return result


def _timed_out(batch: Any, index: int, timeout: Optional[float]) -> Any:
    """Collect a one-task batch at the stream's deadline."""
    result = _take(batch, index)
    if isinstance(result, TaskError) and isinstance(result.exception, TimeoutError):
        result.exception = TimeoutError(
            f"task did not finish within the stream's {timeout} s timeout"
        )
    return result


class _Window:
    """Orders finished results for yielding: as they finish, or by index."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self.held: Dict[int, Any] = {}
        self.next_index = 0

    def add(self, index: int, result: Any) -> Iterator[Tuple[int, Any]]:
        if not self.ordered:
            yield index, result
            return
        self.held[index] = result
        while self.next_index in self.held:
            yield self.next_index, self.held.pop(self.next_index)
            self.next_index += 1


def imap_gather(
    f: Callable[..., Any],
    args_list: Iterable[Any],
    *,
    ordered: bool = False,
    max_in_flight: Optional[int] = None,
    timeout: Optional[float] = None,
    retries: int = 0,
    retry_on: Any = (Exception,),
) -> Iterator[Tuple[int, Any]]:
    """Run ``f`` over a stream of inputs and yield results as tasks finish.

    Tasks run on the thread pool. NOTE: streams do not follow ``backend``,
    ``F.backend()`` or ``MSGFLUX_BACKEND`` yet.

    Inputs are read lazily, so ``args_list`` may be a generator without end:
    at most ``max_in_flight`` tasks are started and not yet yielded at once,
    which bounds memory.

    Args:
        f: The callable, sync or async.
        args_list: An iterable of argument tuples (or lists).
        ordered: Yield in input order instead of completion order.
        max_in_flight: Most tasks started but not yet yielded (default
            ``max(32, 8 * cpu_count)``).
        timeout: Seconds for the whole stream, or None. At the deadline the
            tasks still running are yielded as ``TaskError(TimeoutError)``
            and the stream ends; later inputs are not read.
        retries: How many times to call a failed task again.
        retry_on: Exception types that trigger a retry.

    Returns:
        An iterator of ``(index, result)`` pairs, where ``result`` is the
        value or a ``TaskError``. An item that is not a tuple or list yields a
        ``TaskError(TypeError)`` in its place. Stopping the iteration early
        cancels the tasks that have not started.

    Raises:
        TypeError: If ``f`` is not callable, ``args_list`` is not iterable, or
            an argument has the wrong type.
        ValueError: If ``max_in_flight``, ``timeout`` or ``retries`` is out of range.
        KeyboardInterrupt: On Ctrl-C while waiting for the next result.
    """
    items, window, timeout, f = _check_stream_args(
        f, args_list, max_in_flight, timeout, retries, retry_on, ordered
    )
    return _imap(f, items, ordered, window, timeout)


def _imap(
    f: Any, items: Iterator[Any], ordered: bool, window: int, timeout: Optional[float]
) -> Iterator[Tuple[int, Any]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    finished: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    running: Dict[int, Any] = {}
    order = _Window(ordered)
    is_async = _is_async_callable(f)
    aio = AsyncBatch(loop_depth())
    context = contextvars.copy_context()
    next_index = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) + len(order.held) < window:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    exhausted = True
                    break
                try:
                    item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                index, next_index = next_index, next_index + 1
                args = _as_args(item)
                if isinstance(args, TypeError):
                    yield from order.add(index, TaskError(index, args))
                    continue
                batch = _core.new_batch(1, f, [args], None, context, left, aio.on_awaitable)
                batch.set_finish_callback(functools.partial(finished.put, index))
                running[index] = batch
                if is_async:
                    aio.start_all(batch)
                else:
                    _core.submit(batch)
            if not running:
                return

            slice_ = _WAIT_SLICE
            if deadline is not None:
                slice_ = max(0.0, min(slice_, deadline - time.monotonic()))
            try:
                index = finished.get(timeout=slice_)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    # Deadline: what still runs is yielded as timed out.
                    exhausted = True
                    for index in sorted(running):
                        result = _timed_out(running.pop(index), index, timeout)
                        yield from order.add(index, result)
                continue
            yield from order.add(index, _take(running.pop(index), index))
    finally:
        for batch in running.values():
            batch.cancel()
        aio.cancel()


async def aimap_gather(
    f: Callable[..., Any],
    args_list: Iterable[Any],
    *,
    ordered: bool = False,
    max_in_flight: Optional[int] = None,
    timeout: Optional[float] = None,
    retries: int = 0,
    retry_on: Any = (Exception,),
) -> AsyncIterator[Tuple[int, Any]]:
    """Run ``f`` over a stream of inputs and yield results as tasks finish.

    The async-iterator form of ``imap_gather``: coroutines run on the running
    loop, sync callables on the worker pool. Use it as
    ``async for index, result in F.aimap_gather(f, items): ...``.

    Args:
        f: The callable, sync or async.
        args_list: An iterable of argument tuples (or lists).
        ordered: Yield in input order instead of completion order.
        max_in_flight: Most tasks started but not yet yielded.
        timeout: Seconds for the whole stream, or None.
        retries: How many times to call a failed task again.
        retry_on: Exception types that trigger a retry.

    Returns:
        An async iterator of ``(index, result)`` pairs, as ``imap_gather``.
        Closing it early cancels the tasks that have not finished.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``max_in_flight``, ``timeout`` or ``retries`` is out of range.
    """
    items, window, timeout, f = _check_stream_args(
        f, args_list, max_in_flight, timeout, retries, retry_on, ordered
    )
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    finished: "asyncio.Queue[int]" = asyncio.Queue()
    running: Dict[int, Any] = {}
    order = _Window(ordered)
    is_async = _is_async_callable(f)
    children = _Children(loop)
    context = contextvars.copy_context()
    next_index = 0
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) + len(order.held) < window:
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    exhausted = True
                    break
                try:
                    item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                index, next_index = next_index, next_index + 1
                args = _as_args(item)
                if isinstance(args, TypeError):
                    for pair in order.add(index, TaskError(index, args)):
                        yield pair
                    continue
                batch = _core.new_batch(1, f, [args], None, context, left, children.on_awaitable)
                batch.set_finish_callback(
                    functools.partial(loop.call_soon_threadsafe, finished.put_nowait, index)
                )
                running[index] = batch
                if is_async:
                    children.start_all(batch)
                else:
                    _core.submit(batch)
            if not running:
                return

            try:
                left = None if deadline is None else max(0.0, deadline - loop.time())
                index = await asyncio.wait_for(finished.get(), left)
            except asyncio.TimeoutError:
                exhausted = True
                for index in sorted(running):
                    result = _timed_out(running.pop(index), index, timeout)
                    for pair in order.add(index, result):
                        yield pair
                continue
            for pair in order.add(index, _take(running.pop(index), index)):
                yield pair
    finally:
        for batch in running.values():
            batch.cancel()
            batch.set_finish_callback(None)
        await children.cancel_and_wait()
