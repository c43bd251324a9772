"""The awaitable gathers on the caller's loop."""

import asyncio
import threading
import time

import msgflux.nn.functional as F
from msgflux import TaskError


async def add_one(x):
    await asyncio.sleep(0)
    return x + 1


def test_amap_gather_returns_results_in_input_order(run_async):
    async def reverse_finish(i):
        await asyncio.sleep(0.01 * (5 - i))
        return i

    results = run_async(F.amap_gather(reverse_finish, args_list=[(i,) for i in range(5)]))

    assert results == (0, 1, 2, 3, 4)


def test_ascatter_gather_pairs_callables_with_inputs(run_async):
    results = run_async(F.ascatter_gather([add_one, abs], [(1,), (-5,)]))

    assert results == (2, 5)


def test_abcast_gather_passes_the_same_arguments(run_async):
    async def tagged(x, *, tag):
        return f"{tag}{x}"

    results = run_async(F.abcast_gather([tagged, tagged], 1, tag="t"))

    assert results == ("t1", "t1")


def test_amap_gather_of_10000_coroutines(run_async):
    results = run_async(F.amap_gather(add_one, args_list=[(i,) for i in range(10_000)]))

    assert results == tuple(range(1, 10_001))


def test_coroutines_run_on_the_callers_loop(run_async):
    async def main():
        loop = asyncio.get_running_loop()

        async def which_loop():
            return asyncio.get_running_loop()

        results = await F.amap_gather(which_loop, args_list=[(), ()])
        return all(result is loop for result in results)

    assert run_async(main())


def test_sync_callables_run_on_worker_threads(run_async):
    async def main():
        return threading.get_ident(), await F.amap_gather(
            lambda _: threading.get_ident(), args_list=[(0,)]
        )

    caller, (worker,) = run_async(main())

    assert worker != caller


def test_blocking_sync_callables_overlap(run_async):
    barrier = threading.Barrier(4, timeout=10)

    results = run_async(F.amap_gather(lambda _: barrier.wait(), args_list=[(i,) for i in range(4)]))

    assert sorted(results) == [0, 1, 2, 3]


def test_loop_keeps_ticking_while_a_sync_callable_runs(run_async):
    """A 10 ms ticker is never late by more than 20 ms during a 1 s sync call."""

    async def main():
        lateness = []
        stop = asyncio.Event()

        async def ticker():
            while not stop.is_set():
                expected = time.monotonic() + 0.01
                await asyncio.sleep(0.01)
                lateness.append(time.monotonic() - expected)

        tick_task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.05)
        await F.amap_gather(time.sleep, args_list=[(1.0,)])
        stop.set()
        await tick_task
        return lateness

    lateness = run_async(main())

    assert len(lateness) >= 50
    assert max(lateness) < 0.02


def test_failed_task_holds_task_error(run_async):
    async def broken(i):
        raise ValueError(i)

    results = run_async(F.amap_gather(broken, args_list=[(0,)]))

    assert isinstance(results[0], TaskError)
    assert results[0].exception.args == (0,)


def test_system_exit_in_a_coroutine_becomes_its_task_error(run_async):
    async def leave(_):
        raise SystemExit(2)

    results = run_async(F.abcast_gather([leave, add_one], 1))

    assert isinstance(results[0].exception, SystemExit)
    assert results[1] == 2


def test_lambda_returning_a_coroutine_is_awaited_in_async_gathers(run_async):
    assert run_async(F.amap_gather(lambda x: add_one(x), args_list=[(1,)])) == (2,)


def test_async_gathers_reject_bad_arguments_before_running(run_async):
    import pytest

    with pytest.raises(TypeError, match=r"args_list\[0\] must be a tuple or list"):
        run_async(F.amap_gather(add_one, args_list=[1]))
    with pytest.raises(ValueError, match="timeout must be a positive"):
        run_async(F.abcast_gather([add_one], 1, timeout=-1))


def test_empty_async_gather_returns_empty_tuple(run_async):
    assert run_async(F.amap_gather(add_one, args_list=[])) == ()
