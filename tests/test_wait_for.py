"""wait_for runs one callable and returns its result."""

import asyncio

import msgflux.nn.functional as F
from msgflux import TaskError


def test_wait_for_returns_the_result_of_a_sync_callable():
    assert F.wait_for(pow, 2, 5) == 32


def test_wait_for_passes_keyword_arguments():
    assert F.wait_for(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]


def test_wait_for_runs_an_async_function():
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    assert F.wait_for(double, 21) == 42


def test_wait_for_returns_task_error_with_index_0_on_failure():
    def broken():
        raise RuntimeError("nope")

    result = F.wait_for(broken)

    assert isinstance(result, TaskError)
    assert result.index == 0
    assert str(result.exception) == "nope"
