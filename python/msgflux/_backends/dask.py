"""The ``"dask"`` backend: tasks on a Dask distributed cluster.

The client is the one given to ``msgflux.configure_dask(client)``, or else
``distributed.get_client()``: the default client of this process (the last
``Client`` created) or, inside a Dask task, the worker's own client.

A batch goes to the scheduler in one ``client.map`` call. Each task's
callable and arguments travel inside an opaque ``_Call`` object. Dask
therefore does not run a tuple that starts with a callable as a task of its
own, nor replace futures found in the arguments with their values. Tasks get
exactly what the caller passed, as with threads. Waiting happens in one coroutine on
the client's event loop. Without a timeout it fetches every result with one
``gather`` at the end, as ``client.gather(client.map(...))`` does; with one
it fetches finished results every 50 ms, so they are in hand at the
deadline. Then the unfinished futures are cancelled and their slots hold a
``TimeoutError``.

NOTE: a result that finished less than about 50 ms (plus one fetch) before
the deadline may still be reported as timed out: the call returns at the
deadline rather than wait for data on the cluster.

When a worker dies, the scheduler runs its tasks again elsewhere; a task
that has killed ``distributed.scheduler.allowed-failures`` + 1 workers fails
with ``KilledWorker``, which lands in its slot as a ``TaskError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import time
import traceback
from typing import Any, List, Optional, Tuple

import cloudpickle
import distributed
import tblib

from msgflux import TaskError
from msgflux._backends.processes import RemoteTraceback, _seconds_text

__all__ = ["arun", "configure", "run"]

logger = logging.getLogger(__name__)

Call = Tuple[Any, tuple, dict]

_client: Optional[distributed.Client] = None


def configure(client: Optional[distributed.Client]) -> None:
    """Use ``client`` for every gather on the ``"dask"`` backend; see
    ``msgflux._backends.configure_dask``."""
    global _client
    if client is not None and not isinstance(client, distributed.Client):
        raise TypeError(
            f"invalid client for configure_dask(): expected a "
            f"distributed.Client or None, got "
            f"{type(client).__name__}"
        )
    _client = client


def _get_client() -> distributed.Client:
    client = _client
    if client is not None:
        if client.status in ("closing", "closed"):
            raise RuntimeError(
                f"the Dask client given to configure_dask() is {client.status}; "
                "pass an open client, or None to use the default client"
            )
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise RuntimeError(
            "the 'dask' backend found no Dask client: create a "
            "distributed.Client(...) in this process (it becomes the default) "
            "or pass one to msgflux.configure_dask(client)"
        ) from None


# ---------------------------------------------------------------------------
# What runs on the workers.


class _Call:
    """One task's callable and arguments, opaque to Dask's graph handling."""

    __slots__ = ("f", "args", "kwargs")

    def __init__(self, f: Any, args: tuple, kwargs: dict) -> None:
        self.f = f
        self.args = args
        self.kwargs = kwargs

    def __getstate__(self):
        return (self.f, self.args, self.kwargs)

    def __setstate__(self, state) -> None:
        self.f, self.args, self.kwargs = state


class _Failure:
    """An exception raised by a task, carried back as the task's result.

    Returning failures as values keeps Dask from logging each one at ERROR
    on the worker (failures are the caller's to handle) and lets a
    ``BaseException`` such as ``SystemExit`` come back without ending the
    worker's thread. The traceback travels through tblib, which distributed
    itself depends on, so the caller gets real frames in ``__traceback__``.
    """

    __slots__ = ("exception", "kind", "message", "frames", "text")

    def __init__(self, exc: BaseException) -> None:
        try:
            cloudpickle.dumps(exc)
            self.exception: Optional[BaseException] = exc
        except Exception:
            self.exception = None
        self.kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        try:
            self.message = str(exc)
        except Exception:
            self.message = "<str() of the exception failed>"
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.text = "".join(lines)
        try:
            self.frames = tblib.Traceback(exc.__traceback__).to_dict()
        except Exception:
            self.frames = None

    def __getstate__(self):
        return (self.exception, self.kind, self.message, self.frames, self.text)

    def __setstate__(self, state) -> None:
        self.exception, self.kind, self.message, self.frames, self.text = state

    def rebuild(self) -> BaseException:
        """Return the exception as the caller sees it, with the worker's traceback."""
        exc = self.exception
        if exc is None:
            exc = RuntimeError(
                f"the task raised {self.kind}: {self.message}; that exception "
                "could not be pickled on the Dask worker to send it back"
            )
        try:
            frames = tblib.Traceback.from_dict(self.frames).as_traceback()
        except Exception:
            frames = None
        if frames is not None:
            exc = exc.with_traceback(frames)
        else:
            exc.__cause__ = RemoteTraceback(f"\non a Dask worker:\n{self.text}")
        return exc


class _Invoker:
    """The callable that runs one task on a worker.

    When every call of a batch has the same callable, the invoker carries it
    and the calls do not: Dask then sends the callable once per worker
    rather than once per task.
    """

    __slots__ = ("f",)

    def __init__(self, f: Any = None) -> None:
        self.f = f

    def __getstate__(self):
        # A tuple: pickle skips __setstate__ for a false state such as None.
        return (self.f,)

    def __setstate__(self, state) -> None:
        (self.f,) = state

    def __call__(self, call: _Call) -> Any:
        from msgflux import _backends

        f = self.f if call.f is None else call.f
        # A gather inside a task runs on the worker's threads unless it names
        # a backend: a nested "dask" gather would wait on the cluster it
        # occupies.
        with _backends.backend("threads"):
            try:
                result = f(*call.args, **call.kwargs)
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
            except BaseException as exc:  # noqa: BLE001 - carried back, not lost
                return _Failure(exc)
        return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


# ---------------------------------------------------------------------------
# The caller's side.


def _key_prefix(f: Any) -> str:
    name = getattr(f, "__name__", None) or type(f).__name__
    return f"msgflux-{name}"


def _submit(client: distributed.Client, calls: List[Call]) -> List[Any]:
    """Submit the calls and return one future per call.

    A call that cannot be pickled gets a TaskError in place of its future.
    """
    first = calls[0][0]
    if all(f is first for f, _args, _kwargs in calls):
        invoker = _Invoker(first)
        wrapped = [_Call(None, args, kwargs) for _f, args, kwargs in calls]
    else:
        invoker = _Invoker()
        wrapped = [_Call(f, args, kwargs) for f, args, kwargs in calls]
    prefix = _key_prefix(first)
    try:
        return client.map(invoker, wrapped, key=prefix, pure=False)
    except Exception as batch_error:
        # NOTE: distributed logs the failed serialization at ERROR before
        # raising; checking every call up front would pickle each one twice.
        logger.debug("client.map failed (%r); checking each task", batch_error)
    slots: List[Any] = []
    sendable: List[_Call] = []
    for index, call in enumerate(wrapped):
        try:
            cloudpickle.dumps((invoker, call))
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(
                    "the task's callable or arguments could not be pickled to "
                    "send them to the Dask cluster"
                )
            slots.append(TaskError(index, exc))
        else:
            slots.append(None)
            sendable.append(call)
    if not sendable:
        return slots
    futures = iter(client.map(invoker, sendable, key=prefix, pure=False))
    return [slot if slot is not None else next(futures) for slot in slots]


_MISSING = object()


# With a deadline, finished results are fetched this often, so they are in
# hand when it comes. Without one, a single gather at the end is cheapest,
# because each gather is a round trip through the scheduler.
_FETCH_EVERY = 0.05


class _Collector:
    """The waiter for one batch's futures, run on the client's event loop.

    ``slots`` ends with each task's value, a ``TaskError`` or ``_MISSING``
    for a task unfinished at the deadline.
    """

    def __init__(
        self, client: distributed.Client, futures: List[Any], deadline: Optional[float]
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.slots: List[Any] = [
            future if isinstance(future, TaskError) else _MISSING for future in futures
        ]
        self.live = [future for future in futures if not isinstance(future, TaskError)]
        self.position = {
            future.key: index
            for index, future in enumerate(futures)
            if not isinstance(future, TaskError)
        }
        self.unfetched: List[Any] = []
        self.fetching: Optional["asyncio.Task[None]"] = None
        self.timer: Optional[asyncio.TimerHandle] = None
        self.last_fetch = float("-inf")
        self.closing = False

    async def run(self) -> List[Any]:
        remaining = None
        if self.deadline is not None:
            remaining = max(0.0, self.deadline - time.monotonic())
        try:
            await asyncio.wait_for(self._collect(), remaining)
        except asyncio.TimeoutError:
            self._stop_fetching()
        except BaseException:
            self._stop_fetching()
            await _cancel(self.client, self.live)
            raise
        unfinished = [
            future for future in self.live
            if self.slots[self.position[future.key]] is _MISSING
        ]
        await _cancel(self.client, unfinished)
        return self.slots

    async def _collect(self) -> None:
        if not self.live:
            return
        if self.deadline is None:
            # Fast path: one gather, as client.gather(client.map(...)) does.
            # It raises at the first failed future (KilledWorker, a cancel);
            # the loop below then sorts out every slot.
            try:
                values = await self.client.gather(self.live, asynchronous=True)
            except Exception as exc:
                logger.debug("gathering the whole batch failed (%r); collecting "
                             "task by task", exc)
            else:
                for future, value in zip(self.live, values):
                    self.slots[self.position[future.key]] = value
                return
        ready = distributed.as_completed(self.live, loop=self.client.loop)
        async for first in ready:
            for future in [first, *ready.next_batch(block=False)]:
                if future.status == "finished":
                    self.unfetched.append(future)
                else:
                    await self._record_failure(future)
            if self.deadline is not None:
                self._schedule_fetch()
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        if self.fetching is not None:
            await self.fetching
        if self.unfetched:
            await self._fetch(self._take())

    def _take(self) -> List[Any]:
        taken, self.unfetched = self.unfetched, []
        return taken

    def _schedule_fetch(self) -> None:
        if self.closing or self.fetching is not None or self.timer is not None:
            return
        if not self.unfetched:
            return
        loop = asyncio.get_running_loop()
        delay = self.last_fetch + _FETCH_EVERY - loop.time()
        if delay <= 0:
            self._start_fetch()
        else:
            self.timer = loop.call_later(delay, self._start_fetch)

    def _start_fetch(self) -> None:
        self.timer = None
        if self.closing or self.fetching is not None or not self.unfetched:
            return
        self.last_fetch = asyncio.get_running_loop().time()
        self.fetching = asyncio.ensure_future(self._fetch(self._take()))
        self.fetching.add_done_callback(self._fetched)

    def _fetched(self, _task: "asyncio.Task[None]") -> None:
        self.fetching = None
        self._schedule_fetch()

    def _stop_fetching(self) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        if self.fetching is not None:
            self.fetching.cancel()

    async def _fetch(self, done: List[Any]) -> None:
        try:
            values = await self.client.gather(done, asynchronous=True)
        except Exception as exc:
            # Data lost after the task finished; each slot gets the error.
            for future in done:
                index = self.position[future.key]
                self.slots[index] = TaskError(index, exc)
            return
        for future, value in zip(done, values):
            self.slots[self.position[future.key]] = value

    async def _record_failure(self, future: Any) -> None:
        index = self.position[future.key]
        if future.status == "error":
            exc = await future.exception(asynchronous=True)
            tb = await future.traceback(asynchronous=True)
            if tb is not None and exc.__traceback__ is None:
                exc = exc.with_traceback(tb)
        else:
            exc = concurrent.futures.CancelledError(
                f"Dask cancelled task {index} (future status {future.status!r})"
            )
        self.slots[index] = TaskError(index, exc)


async def _cancel(client: distributed.Client, futures: List[Any]) -> None:
    if not futures:
        return
    try:
        await client.cancel(futures, asynchronous=True)
    except Exception as exc:
        # Cancelling only saves the cluster work, and the caller already has
        # its results.
        logger.debug("cancelling %d Dask future(s) failed: %r", len(futures), exc)


def _finish(slots: List[Any], timeout: Optional[float]) -> Tuple[Any, ...]:
    unfinished = sum(1 for slot in slots if slot is _MISSING)
    error = None
    if unfinished:
        error = TimeoutError(
            f"task did not finish within the {_seconds_text(timeout)} s timeout "
            f"({unfinished} of {len(slots)} tasks unfinished); Dask was asked "
            "to cancel them"
        )
    results: List[Any] = []
    interrupt = None
    for index, slot in enumerate(slots):
        if slot is _MISSING:
            slot = TaskError(index, error)
        elif isinstance(slot, _Failure):
            exc = slot.rebuild()
            if isinstance(exc, KeyboardInterrupt) and interrupt is None:
                interrupt = exc
            slot = TaskError(index, exc)
        if isinstance(slot, TaskError):
            logger.debug("task %d failed: %r", index, slot.exception,
                         exc_info=slot.exception)
        results.append(slot)
    if interrupt is not None:
        # As with threads, a KeyboardInterrupt raised in a task stops the
        # whole call.
        raise interrupt
    return tuple(results)


def _client_loop(client: distributed.Client) -> asyncio.AbstractEventLoop:
    return client.loop.asyncio_loop


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def run(calls: List[Call], timeout: Optional[float]) -> Tuple[Any, ...]:
    """Run ``calls`` on the Dask cluster and return results in input order.

    Args:
        calls: One ``(callable, args, kwargs)`` triple per task.
        timeout: Seconds for the whole call, or None.

    Returns:
        A tuple with each task's result, or a ``TaskError`` in the slot of a
        task that raised, that Dask gave up on (``KilledWorker``), or that had
        not finished at the deadline (then the exception is a
        ``TimeoutError``).

    Raises:
        RuntimeError: If no Dask client is found, or the call is made on the
            event loop thread of an asynchronous client.
        KeyboardInterrupt: On Ctrl-C while waiting, or when a task raised it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    client = _get_client()
    loop = _client_loop(client)
    if _running_loop() is loop:
        raise RuntimeError(
            "a sync gather on the 'dask' backend cannot wait on the event loop "
            "its asynchronous Dask client runs on; await amap_gather, "
            "ascatter_gather or abcast_gather there instead"
        )
    futures = _submit(client, calls)
    collector = _Collector(client, futures, deadline)
    waiter = asyncio.run_coroutine_threadsafe(collector.run(), loop)
    try:
        slots = waiter.result()
    except BaseException:
        waiter.cancel()
        raise
    return _finish(slots, timeout)


async def arun(calls: List[Call], timeout: Optional[float]) -> Tuple[Any, ...]:
    """Run ``calls`` like ``run``, without blocking the running event loop.

    Args:
        calls: One ``(callable, args, kwargs)`` triple per task.
        timeout: Seconds for the whole call, or None.

    Returns:
        The same tuple as ``run``.

    Raises:
        RuntimeError: If no Dask client is found.
        asyncio.CancelledError: If the awaiting task is cancelled; the
            batch's futures are cancelled too.
        KeyboardInterrupt: When a task raised it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    client = _get_client()
    loop = _client_loop(client)
    # NOTE: client.map pickles the batch on this thread, so a batch with
    # large arguments blocks the event loop while it is serialized.
    futures = _submit(client, calls)
    settle = _Collector(client, futures, deadline).run()
    if _running_loop() is loop:
        slots = await settle
    else:
        waiter = asyncio.run_coroutine_threadsafe(settle, loop)
        try:
            slots = await asyncio.wrap_future(waiter)
        except BaseException:
            waiter.cancel()
            raise
    return _finish(slots, timeout)

