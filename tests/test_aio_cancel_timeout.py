"""Cancellation and deadlines of the awaitable gathers."""

import asyncio
import threading
import time

import pytest

import msgflux.nn.functional as F
from msgflux import TaskError


def test_cancelling_the_caller_cancels_every_child(run_async):
    async def main():
        cancelled = []

        async def slow(i):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise

        task = asyncio.ensure_future(F.amap_gather(slow, args_list=[(0,), (1,), (2,)]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sorted(cancelled)

    assert run_async(main()) == [0, 1, 2]


def test_failing_child_does_not_cancel_its_siblings(run_async):
    async def fail_fast():
        raise ValueError("boom")

    async def finish():
        await asyncio.sleep(0.05)
        return "done"

    results = run_async(F.ascatter_gather([fail_fast, finish]))

    assert isinstance(results[0], TaskError)
    assert results[1] == "done"


def test_child_cancelled_by_someone_else_fills_its_own_slot(run_async):
    async def main():
        victim = asyncio.get_running_loop().create_future()

        async def waits():
            return await victim

        async def cancels():
            await asyncio.sleep(0.01)
            victim.cancel()
            return "canceller"

        return await F.abcast_gather([waits, cancels])

    results = run_async(main())

    assert isinstance(results[0].exception, asyncio.CancelledError)
    assert results[1] == "canceller"


def test_timeout_finishes_the_await_on_time_with_timeout_slots(run_async):
    async def main():
        started = time.monotonic()
        results = await F.amap_gather(
            asyncio.sleep, args_list=[(0, "fast"), (30,)], timeout=0.2
        )
        return time.monotonic() - started, results

    elapsed, results = run_async(main())

    assert elapsed < 0.3
    assert results[0] == "fast"
    assert isinstance(results[1].exception, TimeoutError)


def test_timeout_cancels_and_awaits_unfinished_coroutines(run_async):
    async def main():
        cleaned = []

        async def slow():
            try:
                await asyncio.sleep(30)
            finally:
                cleaned.append(True)

        await F.abcast_gather([slow, slow], timeout=0.1)
        return cleaned

    assert run_async(main()) == [True, True]


def test_timeout_abandons_sync_callables_still_running(run_async, gate):
    async def main():
        started = time.monotonic()
        results = await F.abcast_gather([gate.wait, abs], 10, timeout=0.2)
        return time.monotonic() - started, results

    elapsed, results = run_async(main())

    assert elapsed < 0.3
    assert isinstance(results[0].exception, TimeoutError)
    assert results[1] == 10


def test_timeout_holds_when_coroutines_ignore_cancellation(run_async):
    async def main():
        stop = asyncio.Event()

        async def stubborn():
            while not stop.is_set():
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    pass

        started = time.monotonic()
        results = await F.abcast_gather([stubborn, stubborn], timeout=0.2)
        elapsed = time.monotonic() - started
        stop.set()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        return elapsed, results

    elapsed, results = run_async(main())

    assert elapsed < 0.3
    assert all(isinstance(r.exception, TimeoutError) for r in results)
