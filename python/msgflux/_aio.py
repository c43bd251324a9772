"""The awaitable gather functions, run on the caller's event loop.

Coroutine callables run as tasks on the caller's loop, each in a copy of the
caller's context. Sync callables run on the worker pool and never block the
loop: the core wakes the loop once, when the last of them finishes, through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from msgflux import _backends, _core, _tracing
from msgflux._errors import TaskError
from msgflux._gather import _is_async_callable, _log_failures
from msgflux._loop import HAS_TASK_CONTEXT, _close
from msgflux._options import DEFAULT, Options, check_options, progress_callback, record_attempts, with_retries
from msgflux._validate import (
    as_args_list,
    as_callables,
    as_kwargs_list,
    check_callable,
    check_timeout,
    scatter_inputs,
)

logger = logging.getLogger(__name__)

__all__ = ["abcast_gather", "amap_gather", "ascatter_gather"]


class _Children:
    """Child tasks of one async gather, all on the caller's loop.

    ``tasks`` only grows: a gather's children live no longer than the gather,
    and skipping a done callback per child keeps large batches cheap.
    """

    __slots__ = ("loop", "tasks", "refill")

    def __init__(self, loop: asyncio.AbstractEventLoop, refill: bool = False) -> None:
        self.loop = loop
        self.tasks: List[asyncio.Task] = []
        # With a concurrency limit, each finished child starts the next.
        self.refill = self.start_all if refill else None

    def start(self, batch: Any, index: int, awaitable: Any, context: Any) -> None:
        if batch.closed:
            _close(awaitable)
            batch.set_exception(index, asyncio.CancelledError())
            return
        runner = _run_child(batch, index, awaitable, self.refill)
        if HAS_TASK_CONTEXT:
            task = self.loop.create_task(runner, context=context)
        else:
            task = context.run(self.loop.create_task, runner)
        self.tasks.append(task)

    def start_all(self, batch: Any) -> None:
        claim = batch.claim
        call = batch.call
        create_task = self.loop.create_task
        append = self.tasks.append
        refill = self.refill
        while True:
            index = claim()
            if index is None:
                return
            try:
                awaitable, context = call(index)
            except BaseException as exc:
                batch.set_exception(index, exc)
                continue
            runner = _run_child(batch, index, awaitable, refill)
            if HAS_TASK_CONTEXT:
                append(create_task(runner, context=context))
            else:
                append(context.run(create_task, runner))

    def on_awaitable(self, batch: Any, index: int, awaitable: Any, context: Any) -> None:
        """Called by a worker whose sync callable returned an awaitable."""
        try:
            self.loop.call_soon_threadsafe(self.start, batch, index, awaitable, context)
        except BaseException:
            _close(awaitable)
            raise

    async def cancel_and_wait(self) -> None:
        """Cancel unfinished children and give them one loop iteration.

        A cancelled child handles its CancelledError in the next iteration,
        before this coroutine resumes, so cleanup without further awaits is
        done on return. Children that await during cleanup, or ignore the
        cancellation, finish on the loop later: waiting for them would break
        the deadline.
        """
        tasks = [task for task in self.tasks if not task.done()]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0)


async def _run_child(batch: Any, index: int, awaitable: Any, refill: Any = None) -> None:
    # asyncio re-raises KeyboardInterrupt and SystemExit out of the loop, which
    # would end the caller's program: every outcome goes to the slot instead.
    try:
        value = await awaitable
    except BaseException as exc:
        batch.set_exception(index, exc)
    else:
        batch.set_result(index, value)
    if refill is not None:
        refill(batch)


# How often an async gather with a progress callback reports.
_PROGRESS_INTERVAL = 0.05


async def _await_reporting(finished: asyncio.Future, batch: Any, report: Any, total: int) -> None:
    reported = -1
    while not finished.done():
        done = batch.done()
        if done != reported:
            reported = done
            report(done, total)
        await asyncio.wait({finished}, timeout=_PROGRESS_INTERVAL)
    await finished


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def arun_batch(
    count: int,
    callables: Any,
    args: Any,
    kwargs: Any,
    timeout: Optional[float],
    all_async: bool,
    backend: Optional[str] = None,
    options: Options = DEFAULT,
    label: str = "gather",
) -> Tuple[Any, ...]:
    """Run a checked batch on the running loop and the worker pool."""
    name = _backends.resolve(backend)
    if count == 0:
        return ()
    span = _tracing.start(label, count, timeout, name)
    if span is None:
        return await _arun_threads_or_backend(
            name, count, callables, args, kwargs, timeout, all_async, options, label
        )
    with span:
        span.results = await _arun_threads_or_backend(
            name, count, span.tasks(callables, count), args, kwargs, timeout, all_async,
            options, label,
        )
    return span.results


async def _arun_threads_or_backend(
    name: str,
    count: int,
    callables: Any,
    args: Any,
    kwargs: Any,
    timeout: Optional[float],
    all_async: bool,
    options: Options,
    label: str,
) -> Tuple[Any, ...]:
    callables = with_retries(callables, options, timeout, count)
    if name != "threads":
        # NOTE: other backends apply retries but not max_concurrency or progress.
        calls = _backends.split_calls(count, callables, args, kwargs)
        results = await _backends.load(name).arun(calls, timeout)
        record_attempts(results, callables)
        return results
    loop = asyncio.get_running_loop()
    children = _Children(loop, refill=options.max_concurrency is not None)
    batch = _core.new_batch(
        count,
        callables,
        args,
        kwargs,
        contextvars.copy_context(),
        timeout,
        children.on_awaitable,
        options.max_concurrency,
    )
    report, close_report = progress_callback(options.progress, count, label)
    finished = loop.create_future()
    batch.set_finish_callback(functools.partial(loop.call_soon_threadsafe, _wake, finished))
    if all_async:
        children.start_all(batch)
    else:
        _core.submit(batch)

    timer = None
    if timeout is not None:
        timer = loop.call_later(batch.remaining(), _wake, finished)
    try:
        if report is None:
            await finished
        else:
            await _await_reporting(finished, batch, report, count)
    except BaseException:
        # Cancelled (or interrupted): stop what has not started, cancel the
        # children, and let the cancellation reach the caller.
        batch.cancel()
        await children.cancel_and_wait()
        raise
    finally:
        # Tasks abandoned on workers may finish after this loop is closed.
        batch.set_finish_callback(None)
        if timer is not None:
            timer.cancel()
        if close_report is not None:
            close_report()

    results = batch.collect()
    if report is not None:
        report(batch.done(), count)
    await children.cancel_and_wait()
    record_attempts(results, callables)
    if logger.isEnabledFor(logging.DEBUG):
        _log_failures(results)
    return results


async def amap_gather(
    f: Callable[..., Any],
    *,
    args_list: Iterable[Any],
    kwargs_list: Optional[Iterable[Optional[Dict[str, Any]]]] = None,
    timeout: Optional[float] = None,
    backend: Optional[str] = None,
    max_concurrency: Optional[int] = None,
    retries: int = 0,
    retry_on: Any = (Exception,),
    progress: Any = None,
) -> Tuple[Any, ...]:
    """Await one callable on many inputs concurrently and gather the results.

    The awaitable form of ``map_gather``. An ``async def`` (or a callable that
    returns an awaitable) runs as a task on the running loop; a sync callable
    runs on the worker pool and never blocks the loop.

    Args:
        f: A function, an async function, an ``nn.Module`` or any callable.
        args_list: One tuple (or list) of positional arguments per task.
        kwargs_list: One dict of keyword arguments per task, or None. Must
            have as many items as ``args_list``.
        timeout: Seconds for the whole call, or None.
        backend: Where tasks run; see ``map_gather``.
        max_concurrency, retries, retry_on, progress: See ``map_gather``; a
            progress callable is called on the loop, every 0.05 s at most.

    Returns:
        A tuple with one result per task, in input order, with
        ``TaskError`` slots for failures. At the deadline the await finishes:
        unfinished tasks hold ``TaskError(TimeoutError)``, their coroutines
        are cancelled (and get one loop iteration to clean up before the
        await returns), and sync calls still running are abandoned.

    Raises:
        TypeError: If ``f`` is not callable or an argument has the wrong type.
        ValueError: If the lists differ in length or ``timeout`` is not positive.
        asyncio.CancelledError: If the awaiting task is cancelled; every child
            is cancelled too.
    """
    check_callable(f, "f")
    args = as_args_list(args_list)
    kwargs = as_kwargs_list(kwargs_list, len(args))
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    f = _async_entry(f)
    return await arun_batch(
        len(args), f, args, kwargs, timeout, _is_async_callable(f), backend,
        options, "amap_gather",
    )


async def ascatter_gather(
    fs: Iterable[Callable[..., Any]],
    args_list: Optional[Iterable[Any]] = None,
    kwargs_list: Optional[Iterable[Optional[Dict[str, Any]]]] = None,
    *,
    timeout: Optional[float] = None,
    backend: Optional[str] = None,
    max_concurrency: Optional[int] = None,
    retries: int = 0,
    retry_on: Any = (Exception,),
    progress: Any = None,
) -> Tuple[Any, ...]:
    """Await each callable on its own input concurrently.

    The awaitable form of ``scatter_gather``; see ``amap_gather`` for how
    sync and async callables run.

    Args:
        fs: The callables; any iterable.
        args_list: One tuple of positional arguments per callable, or None.
        kwargs_list: One dict of keyword arguments per callable, or None.
        timeout: Seconds for the whole call, or None.
        backend: Where tasks run; see ``map_gather``.
        max_concurrency, retries, retry_on, progress: See ``map_gather``; a
            progress callable is called on the loop, every 0.05 s at most.

    Returns:
        A tuple with one result per callable, in input order, with
        ``TaskError`` slots for failures and unfinished tasks.

    Raises:
        TypeError: If ``fs`` is not an iterable of callables or an argument
            has the wrong type.
        ValueError: If a list is longer than ``fs`` or ``timeout`` is not positive.
        asyncio.CancelledError: If the awaiting task is cancelled.
    """
    callables = [_async_entry(f) for f in as_callables(fs)]
    count = len(callables)
    args, kwargs = scatter_inputs(args_list, kwargs_list, count)
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    all_async = all(_is_async_callable(f) for f in callables)
    return await arun_batch(
        count, callables, args, kwargs, timeout, all_async, backend, options,
        "ascatter_gather",
    )


async def abcast_gather(
    fs: Iterable[Callable[..., Any]],
    *args: Any,
    timeout: Optional[float] = None,
    backend: Optional[str] = None,
    max_concurrency: Optional[int] = None,
    retries: int = 0,
    retry_on: Any = (Exception,),
    progress: Any = None,
    **kwargs: Any,
) -> Tuple[Any, ...]:
    """Await every callable on the same arguments concurrently.

    The awaitable form of ``bcast_gather``; see ``amap_gather`` for how sync
    and async callables run.

    Args:
        fs: The callables; any iterable.
        *args: Positional arguments passed to every callable.
        timeout: Seconds for the whole call, or None.
        backend: Where tasks run; see ``map_gather``.
        max_concurrency, retries, retry_on, progress: See ``amap_gather``.
        **kwargs: Keyword arguments passed to every callable.

    Returns:
        A tuple with one result per callable, in input order, with
        ``TaskError`` slots for failures and unfinished tasks.

    Raises:
        TypeError: If ``fs`` is not an iterable of callables or ``timeout``
            is not a number.
        ValueError: If ``timeout`` is not positive.
        asyncio.CancelledError: If the awaiting task is cancelled.
    """
    callables = [_async_entry(f) for f in as_callables(fs)]
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    all_async = all(_is_async_callable(f) for f in callables)
    shared_kwargs = kwargs if kwargs else None
    return await arun_batch(
        len(callables), callables, args, shared_kwargs, timeout, all_async, backend,
        options, "abcast_gather",
    )


async def run_sync(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a sync callable on the worker pool and return or raise its outcome.

    Unlike ``asyncio.to_thread``, this is not limited by the size of the
    loop's default executor, so many concurrent calls do not queue.
    """
    (result,) = await arun_batch(1, f, args, kwargs or None, None, False)
    if isinstance(result, TaskError):
        raise result.exception
    return result


def _async_entry(f: Any) -> Any:
    """Use a module's ``acall`` in async gathers, as its sync ``__call__``
    would block a worker on work the loop can do."""
    acall = getattr(f, "acall", None)
    if acall is not None and callable(acall) and _is_module(f):
        return acall
    return f


def _is_module(f: Any) -> bool:
    try:
        from msgflux.nn.modules import Module
    except ImportError:  # pragma: no cover - the module tree is part of the package
        return False
    return isinstance(f, Module)
