"""Streaming gathers: imap_gather and aimap_gather."""

import asyncio
import itertools
import threading
import time

import pytest

import msgflux.nn.functional as F
from msgflux import TaskError


def reverse_sleeper(count):
    def task(i):
        time.sleep(0.002 * (count - i))
        return i

    return task


def test_imap_gather_yields_in_completion_order_by_default():
    pairs = list(F.imap_gather(reverse_sleeper(8), [(i,) for i in range(8)]))

    assert sorted(pairs) == [(i, i) for i in range(8)]
    assert [index for index, _ in pairs] != list(range(8))


def test_imap_gather_yields_in_input_order_on_request():
    pairs = list(F.imap_gather(reverse_sleeper(8), [(i,) for i in range(8)], ordered=True))

    assert pairs == [(i, i) for i in range(8)]


def test_imap_gather_reads_an_endless_iterable_lazily():
    read = []

    def inputs():
        for i in itertools.count():
            read.append(i)
            yield (i,)

    stream = F.imap_gather(abs, inputs(), max_in_flight=4)
    first = [next(stream) for _ in range(10)]
    stream.close()

    assert sorted(index for index, _ in first) == list(range(10))
    assert len(read) <= 10 + 4


def test_imap_gather_keeps_at_most_max_in_flight_tasks_started():
    lock = threading.Lock()
    running = [0, 0]

    def task(i):
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.002)
        with lock:
            running[0] -= 1
        return i

    list(F.imap_gather(task, [(i,) for i in range(50)], max_in_flight=3))

    assert running[1] <= 3


def test_imap_gather_failures_are_task_errors_with_stream_indices():
    def fail_odd(i):
        if i % 2:
            raise ValueError(i)
        return i

    results = dict(F.imap_gather(fail_odd, [(i,) for i in range(6)]))

    assert [results[i] for i in (0, 2, 4)] == [0, 2, 4]
    assert all(isinstance(results[i], TaskError) and results[i].index == i for i in (1, 3, 5))


def test_imap_gather_deadline_yields_running_tasks_as_timeouts(gate):
    started = time.monotonic()

    pairs = dict(F.imap_gather(lambda i: gate.wait(10) if i else i, [(0,), (1,)], timeout=0.2))

    assert time.monotonic() - started < 0.4
    assert pairs[0] == 0
    assert isinstance(pairs[1].exception, TimeoutError)
    assert pairs[1].index == 1


def test_stopping_iteration_cancels_unstarted_tasks(pool_limit, gate):
    pool_limit(1)
    started = []

    def task(i):
        started.append(i)
        gate.wait(0.05)
        return i

    stream = F.imap_gather(task, [(i,) for i in range(100)], max_in_flight=10)
    next(stream)
    stream.close()
    gate.set()
    assert F.map_gather(abs, args_list=[(-1,)]) == (1,)

    assert len(started) <= 3


def test_bad_stream_item_becomes_its_task_error():
    pairs = dict(F.imap_gather(abs, [(-1,), 5, (-3,)]))

    assert pairs[0] == 1
    assert pairs[2] == 3
    assert isinstance(pairs[1].exception, TypeError)


def test_imap_gather_rejects_bad_arguments_at_once():
    with pytest.raises(TypeError, match="f must be callable"):
        F.imap_gather(3, [(1,)])
    with pytest.raises(TypeError, match="args_list must be an iterable"):
        F.imap_gather(abs, 3)
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        F.imap_gather(abs, [(1,)], max_in_flight=0)


def test_aimap_gather_streams_coroutines(run_async):
    async def delayed(i):
        await asyncio.sleep(0.002 * (5 - i))
        return i

    async def main():
        return [pair async for pair in F.aimap_gather(delayed, [(i,) for i in range(5)])]

    pairs = run_async(main())

    assert sorted(pairs) == [(i, i) for i in range(5)]


def test_aimap_gather_orders_sync_results_on_request(run_async):
    async def main():
        stream = F.aimap_gather(reverse_sleeper(6), [(i,) for i in range(6)], ordered=True)
        return [pair async for pair in stream]

    assert run_async(main()) == [(i, i) for i in range(6)]


def test_aimap_gather_honours_the_deadline(run_async):
    async def main():
        started = time.monotonic()
        pairs = [p async for p in F.aimap_gather(asyncio.sleep, [(0,), (30,)], timeout=0.2)]
        return time.monotonic() - started, dict(pairs)

    elapsed, pairs = run_async(main())

    assert elapsed < 0.4
    assert pairs[0] is None
    assert isinstance(pairs[1].exception, TimeoutError)


def test_closing_aimap_gather_early_cancels_running_coroutines(run_async):
    async def main():
        cancelled = []

        async def task(i):
            try:
                await asyncio.sleep(0 if i == 0 else 30)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return i

        stream = F.aimap_gather(task, [(i,) for i in range(3)])
        first = await stream.__anext__()
        await stream.aclose()
        await asyncio.sleep(0)
        return first, sorted(cancelled)

    first, cancelled = run_async(main())

    assert first == (0, 0)
    assert cancelled == [1, 2]


def test_ordered_must_be_a_bool():
    with pytest.raises(TypeError, match="ordered must be True or False"):
        F.imap_gather(abs, [(1,)], ordered="yes")
