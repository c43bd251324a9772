"""The synchronous gather functions and ``wait_for``."""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from msgflux import _backends, _core, _tracing
from msgflux._errors import TaskError
from msgflux._loop import AsyncBatch, loop_depth
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

__all__ = ["bcast_gather", "map_gather", "scatter_gather", "wait_for"]


def _is_async_callable(f: Any) -> bool:
    # Only a definite coroutine function skips the worker pool. Anything else
    # runs on a worker, and an awaitable it returns is sent to the loop there.
    return inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(
        getattr(f, "__call__", None)
    )


def run_batch(
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
    """Run a checked batch to completion or to its deadline, in the caller's
    context, and return the results in input order."""
    name = _backends.resolve(backend)
    if count == 0:
        return ()
    span = _tracing.start(label, count, timeout, name)
    if span is None:
        return _run_threads_or_backend(
            name, count, callables, args, kwargs, timeout, all_async, options, label
        )
    with span:
        span.results = _run_threads_or_backend(
            name, count, span.tasks(callables, count), args, kwargs, timeout, all_async,
            options, label,
        )
    return span.results


def _run_threads_or_backend(
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
        results = _backends.load(name).run(calls, timeout)
        record_attempts(results, callables)
        return results
    aio = AsyncBatch(loop_depth(), refill=options.max_concurrency is not None)
    batch = _core.new_batch(
        count,
        callables,
        args,
        kwargs,
        contextvars.copy_context(),
        timeout,
        aio.on_awaitable,
        options.max_concurrency,
    )
    report, close_report = progress_callback(options.progress, count, label)
    if all_async:
        aio.start_all(batch)
    else:
        _core.submit(batch)
    try:
        results = batch.wait(report)
    finally:
        if aio.loop is not None and not batch.closed:
            batch.cancel()
        aio.cancel()
        if close_report is not None:
            close_report()
    record_attempts(results, callables)
    if logger.isEnabledFor(logging.DEBUG):
        _log_failures(results)
    return results


def _log_failures(results: Tuple[Any, ...]) -> None:
    for result in results:
        if type(result) is TaskError:
            # TaskError's repr survives exceptions whose own repr raises.
            logger.debug("%r", result, exc_info=result.exception)


def map_gather(
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
    """Call one callable on many inputs concurrently and gather the results.

    Task ``i`` runs ``f(*args_list[i], **kwargs_list[i])`` on the worker pool,
    or on the library's background event loop when ``f`` is an ``async def``.
    Each task runs in a copy of the caller's ``contextvars`` context.

    Args:
        f: A function, an async function, an ``nn.Module`` or any callable.
        args_list: One tuple (or list) of positional arguments per task, for
            example ``[(1,), (2,)]``. Any iterable is accepted.
        kwargs_list: One dict of keyword arguments per task, or None. Must
            have as many items as ``args_list``.
        timeout: Seconds for the whole call, or None to wait for every task.
        backend: ``"threads"`` (the default), ``"processes"`` or ``"dask"``;
            None uses the innermost ``F.backend()`` block, then the
            ``MSGFLUX_BACKEND`` environment variable.
        max_concurrency: Most tasks of this call running at once, or None for
            no limit beyond the pool's.
        retries: How many times to call a failed task again (default 0).
            Retries wait with exponential backoff and jitter, and none starts
            after the deadline.
        retry_on: Exception type, or tuple of types, that trigger a retry
            (default ``Exception``).
        progress: True for a progress bar on a terminal (needs tqdm), or a
            callable that receives ``(done, total)`` on the calling thread.

    Returns:
        A tuple with one result per task, in input order whatever order the
        tasks finish in. A task that raised holds ``TaskError(index, exc)``.
        At the deadline the call returns at once: every unfinished task holds
        a ``TaskError`` whose exception is a ``TimeoutError``, tasks not yet
        started never start, and results arriving later are dropped.

    Raises:
        TypeError: If ``f`` is not callable, an ``args_list`` item is not a
            tuple or list, a ``kwargs_list`` item is not a dict, or
            ``timeout`` is not a number.
        ValueError: If ``kwargs_list`` and ``args_list`` differ in length,
            ``timeout`` is not positive, or ``backend`` is unknown.
        ImportError: If the backend's optional packages are missing; the
            message names the extra to install.
        KeyboardInterrupt: On Ctrl-C while waiting, or when a task raises it;
            tasks not yet started are cancelled.
    """
    check_callable(f, "f")
    args = as_args_list(args_list)
    kwargs = as_kwargs_list(kwargs_list, len(args))
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    return run_batch(
        len(args), f, args, kwargs, timeout, _is_async_callable(f), backend,
        options, "map_gather",
    )


def scatter_gather(
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
    """Call each callable on its own input concurrently and gather the results.

    Task ``i`` runs ``fs[i](*args_list[i], **kwargs_list[i])``. When a list is
    shorter than ``fs``, the remaining callables get no arguments from it.

    Args:
        fs: The callables; any iterable.
        args_list: One tuple (or list) of positional arguments per callable,
            or None to pass none.
        kwargs_list: One dict of keyword arguments per callable, or None.
        timeout: Seconds for the whole call, or None to wait for every task.
        backend: Where tasks run; see ``map_gather``.
        max_concurrency, retries, retry_on, progress: See ``map_gather``.

    Returns:
        A tuple with one result per callable, in input order, with
        ``TaskError`` slots for failures and, at the deadline, for unfinished
        tasks (see ``map_gather``).

    Raises:
        TypeError: If ``fs`` is not an iterable of callables, or an argument
            item or ``timeout`` has the wrong type.
        ValueError: If ``args_list`` or ``kwargs_list`` is longer than ``fs``,
            or ``timeout`` is not positive.
        KeyboardInterrupt: On Ctrl-C while waiting, or when a task raises it.
    """
    callables = as_callables(fs)
    count = len(callables)
    args, kwargs = scatter_inputs(args_list, kwargs_list, count)
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    all_async = all(_is_async_callable(f) for f in callables)
    return run_batch(
        count, callables, args, kwargs, timeout, all_async, backend, options,
        "scatter_gather",
    )


def bcast_gather(
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
    """Call every callable on the same arguments concurrently.

    Every callable receives the same objects, not copies: callables that
    modify a shared argument must write to different keys.

    Args:
        fs: The callables; any iterable.
        *args: Positional arguments passed to every callable.
        timeout: Seconds for the whole call, or None to wait for every task.
        backend: Where tasks run; see ``map_gather``.
        max_concurrency, retries, retry_on, progress: See ``map_gather``.
            These names, with ``timeout`` and ``backend``, are not passed on
            to the callables.
        **kwargs: Keyword arguments passed to every callable.

    Returns:
        A tuple with one result per callable, in input order, with
        ``TaskError`` slots for failures and, at the deadline, for unfinished
        tasks (see ``map_gather``).

    Raises:
        TypeError: If ``fs`` is not an iterable of callables, or ``timeout``
            is not a number.
        ValueError: If ``timeout`` is not positive, or a control argument is
            out of range.
        KeyboardInterrupt: On Ctrl-C while waiting, or when a task raises it.
    """
    callables = as_callables(fs)
    timeout = check_timeout(timeout)
    options = check_options(max_concurrency, retries, retry_on, progress)
    all_async = all(_is_async_callable(f) for f in callables)
    shared_kwargs = kwargs if kwargs else None
    return run_batch(
        len(callables), callables, args, shared_kwargs, timeout, all_async, backend,
        options, "bcast_gather",
    )


def wait_for(
    f: Callable[..., Any],
    *args: Any,
    timeout: Optional[float] = None,
    **kwargs: Any,
) -> Any:
    """Run one sync or async callable and return its result.

    An ``async def`` (or any callable returning an awaitable) runs on the
    library's background event loop, so this works from plain code and from
    inside a running event loop alike.

    Args:
        f: The callable.
        *args: Positional arguments for ``f``.
        timeout: Seconds to wait, or None to wait until ``f`` finishes.
        **kwargs: Keyword arguments for ``f``.

    Returns:
        What ``f`` returned, or ``TaskError(index=0, exception=...)`` if it
        raised or did not finish in time (then the exception is a
        ``TimeoutError`` and the call returns at the deadline).

    Raises:
        TypeError: If ``f`` is not callable or ``timeout`` is not a number.
        ValueError: If ``timeout`` is not positive.
        KeyboardInterrupt: On Ctrl-C while waiting.
    """
    check_callable(f, "f")
    timeout = check_timeout(timeout)
    shared_kwargs = kwargs if kwargs else None
    return run_batch(1, f, args, shared_kwargs, timeout, _is_async_callable(f))[0]
