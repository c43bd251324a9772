"""The contenders: one class per way of running a batch of calls.

Every peer offers the same operations, so each workload is written once:

- ``prepare(items)``: the inputs in the form the peer takes, built before
  the clock starts (msgflux takes argument tuples, executors take items).
- ``map(fn, prepared)``: call ``fn(item)`` for every item, results in order.
- ``nested(outer_count, inner_count, seconds)``: ``outer_count`` tasks, each
  of which runs ``inner_count`` sleeps of ``seconds`` through the same peer.
- ``deadline(tasks, timeout)``: run the tasks with a deadline for the batch;
  return one ``(api, seconds, slots)`` row per API the peer offers.
- ``amap(coro_fn, prepared)``: await ``coro_fn(item)`` for every item.

An operation that a peer does not offer raises ``NotApplicable`` with the
reason. This module imports only the standard library at import time, because
the worker also runs it in the virtual environment of the original msgflux.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

CPU_COUNT = os.cpu_count() or 1

# One deadline row: the API used, seconds until the call returned, and the
# slot contents (results, or exceptions standing for failed tasks).
DeadlineRow = Tuple[str, float, Sequence[Any]]


class NotApplicable(Exception):
    """Raised when a peer cannot run a workload; the message gives the reason."""


class DeadlineTasks:
    """The tasks of the deadline workload, as sync and as async callables.

    Every task but the last returns its index after ``quick_seconds``; the
    last one sleeps ``slow_seconds``. All are picklable, for process pools.
    """

    def __init__(self, count: int, quick_seconds: float, slow_seconds: float):
        from functools import partial

        delays = [quick_seconds] * (count - 1) + [slow_seconds]
        self.sync = [partial(sleep_then, i, s) for i, s in enumerate(delays)]
        self.coroutines = [partial(async_sleep_then, i, s) for i, s in enumerate(delays)]
        self.slow_seconds = slow_seconds


def sleep_then(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


async def async_sleep_then(value: Any, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return value


def call_it(fn: Callable[[], Any]) -> Any:
    return fn()


def timed(call: Callable[[], Any]) -> Tuple[float, Any]:
    """Run ``call`` and return its duration and its value, or what it raised."""
    started = time.perf_counter()
    try:
        value = call()
    except Exception as exc:
        return time.perf_counter() - started, exc
    return time.perf_counter() - started, value


def futures_deadline(executor: Any, fns: Sequence[Callable[[], Any]], timeout: float):
    """Submit every function, wait until the deadline, and read each slot."""
    futures = [executor.submit(fn) for fn in fns]
    concurrent.futures.wait(futures, timeout)
    slots: List[Any] = []
    for future in futures:
        if not future.done():
            slots.append(TimeoutError())
        elif future.exception() is not None:
            slots.append(future.exception())
        else:
            slots.append(future.result())
    return slots


class Peer:
    """Base class: every operation is not applicable until a peer defines it."""

    name = "peer"

    def prepare(self, items: Sequence[Any]) -> Sequence[Any]:
        return list(items)

    def map(self, fn: Callable[[Any], Any], prepared: Sequence[Any]) -> Sequence[Any]:
        raise NotApplicable("runs no sync calls")

    def nested(self, outer_count: int, inner_count: int, seconds: float) -> Any:
        def outer(_: Any) -> Any:
            return self.map(time.sleep, self.prepare([seconds] * inner_count))

        return self.map(outer, self.prepare(range(outer_count)))

    def deadline(self, tasks: DeadlineTasks, timeout: float) -> List[DeadlineRow]:
        raise NotApplicable("cannot stop waiting at a deadline")

    def amap(self, coro_fn: Callable[[Any], Any], prepared: Sequence[Any]) -> Any:
        raise NotApplicable("runs no coroutines")

    def close(self) -> None:
        pass


class Loop(Peer):
    """A plain sequential loop in the calling thread."""

    name = "plain loop"

    def __init__(self) -> None:
        self.loop = asyncio.SelectorEventLoop()

    def map(self, fn, prepared):
        return [fn(item) for item in prepared]

    def amap(self, coro_fn, prepared):
        async def run_all():
            return [await coro_fn(item) for item in prepared]

        return self.loop.run_until_complete(run_all())

    def deadline(self, tasks, timeout):
        raise NotApplicable("a plain loop cannot stop waiting for a running call")

    def close(self):
        self.loop.close()


class Threads(Peer):
    """concurrent.futures.ThreadPoolExecutor, kept across runs."""

    def __init__(self, workers: Any) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(workers)
        self.name = f"ThreadPoolExecutor({self.executor._max_workers})"
        if workers is None:
            self.name += " default"

    def map(self, fn, prepared):
        return list(self.executor.map(fn, prepared))

    def deadline(self, tasks, timeout):
        seconds, slots = timed(lambda: futures_deadline(self.executor, tasks.sync, timeout))
        return [("wait(futures, timeout)", seconds, slots)]

    def close(self):
        self.executor.shutdown(wait=False, cancel_futures=True)


class Processes(Threads):
    """concurrent.futures.ProcessPoolExecutor with one process per CPU."""

    def __init__(self) -> None:
        self.executor = concurrent.futures.ProcessPoolExecutor(CPU_COUNT)
        self.name = f"ProcessPoolExecutor({CPU_COUNT})"

    def map(self, fn, prepared):
        # Without chunks, each trivial call would pay for its own pickling trip.
        chunksize = max(1, len(prepared) // (4 * CPU_COUNT))
        return list(self.executor.map(fn, prepared, chunksize=chunksize))

    def nested(self, outer_count, inner_count, seconds):
        raise NotApplicable("a worker process cannot submit to its own pool")

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)


class AsyncioPeer(Peer):
    """asyncio.gather on one event loop. Sync calls go to the loop's default
    executor through ``run_in_executor``, the asyncio way to run blocking work;
    the nested and deadline workloads use coroutines that sleep instead."""

    def __init__(self, use_uvloop: bool) -> None:
        if use_uvloop:
            import uvloop

            self.loop = uvloop.new_event_loop()
            self.name = "asyncio.gather, uvloop"
        else:
            self.loop = asyncio.SelectorEventLoop()
            self.name = "asyncio.gather"

    def map(self, fn, prepared):
        async def run_all():
            loop = asyncio.get_running_loop()
            return await asyncio.gather(
                *[loop.run_in_executor(None, fn, item) for item in prepared]
            )

        return self.loop.run_until_complete(run_all())

    def amap(self, coro_fn, prepared):
        async def run_all():
            return await asyncio.gather(*[coro_fn(item) for item in prepared])

        return self.loop.run_until_complete(run_all())

    def nested(self, outer_count, inner_count, seconds):
        async def outer():
            return await asyncio.gather(
                *[asyncio.sleep(seconds) for _ in range(inner_count)]
            )

        async def run_all():
            return await asyncio.gather(*[outer() for _ in range(outer_count)])

        return self.loop.run_until_complete(run_all())

    def deadline(self, tasks, timeout):
        async def run_all():
            futures = [asyncio.ensure_future(fn()) for fn in tasks.coroutines]
            await asyncio.wait(futures, timeout=timeout)
            slots = [f.result() if f.done() else TimeoutError() for f in futures]
            for future in futures:
                future.cancel()
            return slots

        seconds, slots = timed(lambda: self.loop.run_until_complete(run_all()))
        return [("asyncio.wait(tasks, timeout)", seconds, slots)]

    def close(self):
        self.loop.close()


class Joblib(Peer):
    """joblib.Parallel with the threading or the loky (process) backend."""

    def __init__(self, sized: int, backend: str) -> None:
        import joblib

        self.joblib = joblib
        self.backend = backend
        self.jobs = sized if backend == "threading" else CPU_COUNT
        self.name = f"joblib {backend} (n_jobs={self.jobs})"
        # Entering the Parallel object keeps its workers across calls.
        self.parallel = joblib.Parallel(n_jobs=self.jobs, backend=backend)
        self.parallel.__enter__()

    def map(self, fn, prepared):
        delayed = self.joblib.delayed(fn)
        return self.parallel(delayed(item) for item in prepared)

    def nested(self, outer_count, inner_count, seconds):
        if self.backend != "threading":
            raise NotApplicable("loky workers are processes; nesting is not offered")
        joblib = self.joblib

        def outer(_):
            with joblib.Parallel(n_jobs=inner_count, backend="threading") as inner:
                return inner(joblib.delayed(time.sleep)(seconds) for _ in range(inner_count))

        return self.map(outer, range(outer_count))

    def deadline(self, tasks, timeout):
        def call():
            parallel = self.joblib.Parallel(
                n_jobs=len(tasks.sync), backend=self.backend, timeout=timeout
            )
            return parallel(self.joblib.delayed(call_it)(fn) for fn in tasks.sync)

        seconds, slots = timed(call)
        return [("Parallel(timeout=...)", seconds, slots)]

    def close(self):
        self.parallel.__exit__(None, None, None)
        if self.backend == "loky":
            # loky keeps idle workers for minutes; they would outlive the
            # worker process and hold its output pipes open.
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True)


class Msgflux(Peer):
    """msgflux's gather functions: this repository's build, or the original
    pure-Python 0.5.1 when the worker runs in that version's environment."""

    def __init__(self, use_uvloop: bool = False) -> None:
        import msgflux
        import msgflux.nn.functional as F

        self.F = F
        self.original = not hasattr(msgflux, "pool_stats")
        if self.original:
            from msgflux.version import __version__

            self.name = f"msgflux {__version__} (original)"
        else:
            self.name = "msgflux"
        # The sync API runs no event loop of the caller's, so the uvloop
        # variant measures only the async API.
        self.sync_api = not use_uvloop
        if use_uvloop:
            import uvloop

            self.loop = uvloop.new_event_loop()
            self.name += ", uvloop"
        else:
            self.loop = asyncio.SelectorEventLoop()

    def prepare(self, items):
        return [(item,) for item in items]

    def check_sync_api(self) -> None:
        if not self.sync_api:
            raise NotApplicable("the sync API uses no caller's event loop; see msgflux")

    def map(self, fn, prepared):
        self.check_sync_api()
        return self.F.map_gather(fn, args_list=prepared)

    def nested(self, outer_count, inner_count, seconds):
        self.check_sync_api()
        F = self.F
        inner_args = [(seconds,)] * inner_count

        def outer(_):
            return F.map_gather(time.sleep, args_list=inner_args)

        return F.map_gather(outer, args_list=[(i,) for i in range(outer_count)])

    def anested(self, outer_count: int, inner_count: int, seconds: float) -> Any:
        """Run the nested workload through the async API, sleeping in coroutines."""
        F = self.F
        inner_args = [(seconds,)] * inner_count

        async def outer(_):
            return await F.amap_gather(asyncio.sleep, args_list=inner_args)

        batch = F.amap_gather(outer, args_list=[(i,) for i in range(outer_count)])
        return self.loop.run_until_complete(batch)

    def amap(self, coro_fn, prepared):
        return self.loop.run_until_complete(self.F.amap_gather(coro_fn, args_list=prepared))

    def deadline(self, tasks, timeout):
        F = self.F
        run = self.loop.run_until_complete
        sync, coroutines = tasks.sync, tasks.coroutines
        calls: Dict[str, Callable[[], Any]] = {}
        if self.sync_api:
            calls["map_gather"] = lambda: F.map_gather(
                call_it, args_list=[(fn,) for fn in sync], timeout=timeout
            )
            calls["scatter_gather"] = lambda: F.scatter_gather(list(sync), timeout=timeout)
            calls["bcast_gather"] = lambda: F.bcast_gather(
                [lambda fn=fn: fn() for fn in sync], timeout=timeout
            )
            calls["wait_for"] = lambda: (F.wait_for(sync[-1], timeout=timeout),)
        if not self.original:
            # The original 0.5.1 async gathers take no timeout.
            calls["amap_gather"] = lambda: run(F.amap_gather(
                call_it, args_list=[(fn,) for fn in coroutines], timeout=timeout
            ))
            calls["ascatter_gather"] = lambda: run(
                F.ascatter_gather(list(coroutines), timeout=timeout)
            )
            calls["abcast_gather"] = lambda: run(F.abcast_gather(
                [lambda fn=fn: fn() for fn in coroutines], timeout=timeout
            ))
        rows = []
        for api, call in calls.items():
            seconds, slots = timed(call)
            rows.append((api, seconds, slots))
            # Let the slow task end, so that every API starts on an idle pool.
            time.sleep(max(0.0, tasks.slow_seconds + 0.1 - seconds))
        return rows

    def close(self):
        self.loop.close()


PEER_NAMES = (
    "loop",
    "msgflux",
    "msgflux-uvloop",
    "msgflux-original",
    "threads-sized",
    "threads-default",
    "asyncio",
    "uvloop",
    "joblib-threading",
    "joblib-loky",
    "processes",
)


def make_peer(name: str, sized: int) -> Peer:
    """Build the peer named on the worker's command line.

    ``sized`` is the worker count that suits the workload, used by the peers
    whose size the caller chooses.
    """
    if name == "loop":
        return Loop()
    if name in ("msgflux", "msgflux-original"):
        return Msgflux()
    if name == "msgflux-uvloop":
        return Msgflux(use_uvloop=True)
    if name == "threads-sized":
        return Threads(sized)
    if name == "threads-default":
        return Threads(None)
    if name == "asyncio":
        return AsyncioPeer(use_uvloop=False)
    if name == "uvloop":
        return AsyncioPeer(use_uvloop=True)
    if name == "joblib-threading":
        return Joblib(sized, "threading")
    if name == "joblib-loky":
        return Joblib(sized, "loky")
    if name == "processes":
        return Processes()
    raise ValueError(f"unknown peer {name!r}; expected one of {', '.join(PEER_NAMES)}")
