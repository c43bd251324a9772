"""Async callables given to the sync API run on the library's own loop."""

import asyncio
import functools
import threading

import msgflux.nn.functional as F


async def add_one(x):
    await asyncio.sleep(0.01)
    return x + 1


def test_map_gather_awaits_async_functions():
    assert F.map_gather(add_one, args_list=[(1,), (2,)]) == (2, 3)


def test_lambda_returning_a_coroutine_is_awaited():
    assert F.map_gather(lambda x: add_one(x), args_list=[(5,)]) == (6,)


def test_partial_around_async_function_is_awaited():
    assert F.bcast_gather([functools.partial(add_one, 1)]) == (2,)


def test_object_with_async_call_is_awaited():
    class Agentish:
        async def __call__(self, x):
            return await add_one(x)

    assert F.scatter_gather([Agentish()], [(9,)]) == (10,)


def test_mixed_sync_and_async_callables_in_one_gather():
    assert F.bcast_gather([add_one, abs], -3) == (-2, 3)


def test_async_callables_run_off_the_calling_thread():
    async def where():
        return threading.get_ident()

    assert F.wait_for(where) != threading.get_ident()


def test_sync_gather_inside_a_running_event_loop_completes():
    async def main():
        return F.wait_for(add_one, 41), F.map_gather(add_one, args_list=[(1,), (2,)])

    assert asyncio.run(main()) == (42, (2, 3))


def test_sync_gather_inside_a_coroutine_the_library_runs_completes():
    async def outer(x):
        return sum(F.map_gather(add_one, args_list=[(x,), (x,)])) + F.wait_for(add_one, x)

    assert F.map_gather(outer, args_list=[(1,), (2,)]) == (6, 9)


def test_async_task_raising_system_exit_leaves_the_loop_working():
    async def leave():
        raise SystemExit(4)

    (error,) = F.bcast_gather([leave])

    assert isinstance(error.exception, SystemExit)
    assert F.wait_for(asyncio.sleep, 0.01, "alive") == "alive"


def test_timeout_cancels_coroutines_left_running():
    cancelled = threading.Event()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    (result,) = F.bcast_gather([slow], timeout=0.1)

    assert isinstance(result.exception, TimeoutError)
    assert cancelled.wait(5)


def test_5000_coroutines_finish_in_input_order():
    async def negate(i):
        await asyncio.sleep(0)
        return -i

    assert F.map_gather(negate, args_list=[(i,) for i in range(5000)]) == tuple(
        -i for i in range(5000)
    )
