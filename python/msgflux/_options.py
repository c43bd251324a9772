"""Per-call controls shared by every gather: concurrency limit, retries and
progress reporting."""

from __future__ import annotations

import asyncio
import logging
import inspect
import random
import sys
import time
from typing import Any, Callable, NamedTuple, Optional, Tuple, Type, Union

from msgflux._validate import describe

__all__ = ["Options", "check_options"]

# Backoff before retry n (counted from 1) is uniform in [0, min(cap, base * 2**(n-1))]
# ("full jitter"), so many failing tasks do not retry in lockstep.
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 5.0

ProgressArg = Union[None, bool, Callable[[int, int], Any]]

logger = logging.getLogger(__name__)
_warned_no_tqdm = False


class Options(NamedTuple):
    max_concurrency: Optional[int] = None
    retries: int = 0
    retry_on: Tuple[Type[BaseException], ...] = (Exception,)
    progress: ProgressArg = None


DEFAULT = Options()


def check_options(
    max_concurrency: Any = None,
    retries: Any = 0,
    retry_on: Any = (Exception,),
    progress: Any = None,
) -> Options:
    """Check the per-call controls and return them; raise before any task starts."""
    if max_concurrency is not None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(
                f"max_concurrency must be an int or None, got {describe(max_concurrency)}"
            )
        if max_concurrency < 1:
            raise ValueError(
                f"max_concurrency must be at least 1, got {max_concurrency}; "
                "pass None for no limit"
            )
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be an int, got {describe(retries)}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}; pass 0 for no retries")
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    if not isinstance(retry_on, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
    ):
        raise TypeError(
            f"retry_on must be an exception type or a tuple of them, got {describe(retry_on)}"
        )
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(
            f"progress must be True, False, None or a callable taking (done, total), "
            f"got {describe(progress)}"
        )
    if (max_concurrency, retries, retry_on, progress) == DEFAULT:
        return DEFAULT
    return Options(max_concurrency, retries, retry_on, progress)


def progress_callback(progress: ProgressArg, total: int, label: str):
    """Return ``(callback, close)`` for a progress argument, or ``(None, None)``.

    ``True`` shows a tqdm bar on a terminal; nothing when stderr is not a
    terminal or tqdm is not installed.
    """
    if progress is None or progress is False:
        return None, None
    if progress is not True:
        return progress, None
    if not sys.stderr.isatty():
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        global _warned_no_tqdm
        if not _warned_no_tqdm:
            _warned_no_tqdm = True
            logger.warning("progress=True shows a bar only with tqdm installed: pip install tqdm")
        return None, None
    bar = tqdm(total=total, desc=label, unit="task", leave=False)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))


def _mark_attempts(exc: BaseException, attempts: int) -> None:
    try:
        exc.__msgflux_attempts__ = attempts  # read back by TaskError.attempts
    except (AttributeError, TypeError):
        pass  # An exception type with __slots__: attempts then reads as 1.


class _Retrying:
    """Calls a sync callable again after a failure listed in ``retry_on``.

    One wrapper serves one task, so ``attempts`` counts that task's calls,
    including one still running at the deadline.
    """

    __slots__ = ("f", "retries", "retry_on", "deadline", "attempts", "__wrapped__")

    def __init__(self, f: Callable, retries: int, retry_on: tuple, deadline: Optional[float]):
        self.f = f
        self.retries = retries
        self.retry_on = retry_on
        self.deadline = deadline
        self.attempts = 0
        self.__wrapped__ = f

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 1
        while True:
            self.attempts = attempt
            try:
                return self.f(*args, **kwargs)
            except self.retry_on as exc:
                pause = _backoff(attempt)
                if attempt > self.retries or _past(self.deadline, pause):
                    _mark_attempts(exc, attempt)
                    raise
            attempt += 1
            time.sleep(pause)


class _AsyncRetrying(_Retrying):
    """The coroutine form of ``_Retrying``."""

    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        attempt = 1
        while True:
            self.attempts = attempt
            try:
                return await self.f(*args, **kwargs)
            except self.retry_on as exc:
                pause = _backoff(attempt)
                if attempt > self.retries or _past(self.deadline, pause):
                    _mark_attempts(exc, attempt)
                    raise
            attempt += 1
            await asyncio.sleep(pause)


# NOTE: the deadline is this process's time.monotonic(); on Dask workers on
# other machines that clock differs, so retries there may stop early or late.
def _past(deadline: Optional[float], pause: float) -> bool:
    # A retry that could not start before the deadline is not made: the
    # deadline always wins.
    return deadline is not None and time.monotonic() + pause >= deadline


def with_retries(
    callables: Any, options: Options, timeout: Optional[float], count: int = 1
) -> Any:
    """Give each of ``count`` tasks its own retrying wrapper; see ``_Retrying``."""
    if options.retries == 0:
        return callables
    deadline = None if timeout is None else time.monotonic() + timeout

    def wrap(f: Callable) -> Callable:
        is_async = inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(
            getattr(f, "__call__", None)
        )
        kind = _AsyncRetrying if is_async else _Retrying
        return kind(f, options.retries, options.retry_on, deadline)

    if isinstance(callables, list):
        return [wrap(f) for f in callables]
    return [wrap(callables) for _ in range(count)]


def record_attempts(results: Tuple[Any, ...], callables: Any) -> None:
    """Copy each retrying wrapper's call count into its task's ``TaskError``.

    This covers tasks still running at the deadline, whose ``TimeoutError``
    never passed through the wrapper.
    """
    from msgflux._errors import TaskError

    if not isinstance(callables, list):
        return
    for result, wrapper in zip(results, callables):
        if type(result) is TaskError and isinstance(wrapper, _Retrying):
            result.attempts = max(result.attempts, wrapper.attempts)

