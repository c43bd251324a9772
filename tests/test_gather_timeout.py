"""Deadlines: the call returns on time, and nothing starts after it."""

import threading
import time

import msgflux.nn.functional as F
from msgflux import TaskError


def test_timeout_returns_within_the_deadline_with_timeout_slots(gate):
    started = time.monotonic()

    results = F.map_gather(
        lambda i: gate.wait(10) if i else "quick", args_list=[(0,), (1,)], timeout=0.2
    )

    assert time.monotonic() - started < 0.3
    assert results[0] == "quick"
    assert isinstance(results[1], TaskError)
    assert isinstance(results[1].exception, TimeoutError)


def test_timeout_message_says_how_many_tasks_were_unfinished(gate):
    results = F.map_gather(lambda i: gate.wait(10), args_list=[(0,), (1,)], timeout=0.1)

    message = str(results[0].exception)
    assert "0.1 s timeout" in message
    assert "2 of 2 tasks unfinished" in message


def test_tasks_not_started_by_the_deadline_never_start(pool_limit, gate):
    pool_limit(1)
    started = []

    def task(i):
        started.append(i)
        gate.wait(10)

    F.map_gather(task, args_list=[(i,) for i in range(50)], timeout=0.2)
    gate.set()
    # Let the one running task finish, then run a batch through the same
    # single worker: by then it would have started any leftover task.
    assert F.map_gather(abs, args_list=[(-1,)], timeout=5) == (1,)

    assert len(started) <= 1


def test_result_arriving_after_the_deadline_is_dropped(gate):
    finished = threading.Event()

    def slow():
        gate.wait(10)
        finished.set()
        return "late"

    (result,) = F.bcast_gather([slow], timeout=0.1)
    gate.set()
    assert finished.wait(5)

    assert isinstance(result, TaskError)
    assert isinstance(result.exception, TimeoutError)


def test_bcast_and_scatter_honour_the_timeout(gate):
    started = time.monotonic()

    first = F.bcast_gather([lambda: gate.wait(10), lambda: "ok"], timeout=0.2)
    second = F.scatter_gather([gate.wait, abs], [(10,), (-3,)], timeout=0.2)

    assert time.monotonic() - started < 0.6
    assert isinstance(first[0].exception, TimeoutError)
    assert first[1] == "ok"
    assert isinstance(second[0].exception, TimeoutError)
    assert second[1] == 3


def test_wait_for_returns_task_error_at_the_deadline(gate):
    started = time.monotonic()

    result = F.wait_for(gate.wait, 10, timeout=0.2)

    assert time.monotonic() - started < 0.3
    assert isinstance(result, TaskError)
    assert result.index == 0
    assert isinstance(result.exception, TimeoutError)


def test_infinite_timeout_means_no_deadline():
    assert F.map_gather(abs, args_list=[(-1,)], timeout=float("inf")) == (1,)


def test_huge_timeouts_mean_no_deadline():
    assert F.map_gather(abs, args_list=[(-1,)], timeout=1e19) == (1,)
    assert F.wait_for(abs, -2, timeout=1e300) == 2
    assert F.bcast_gather([abs], -3, timeout=10**400) == (3,)


def test_huge_timeout_for_an_event_wait_does_not_overflow():
    import asyncio

    event = asyncio.Event()
    timer = threading.Timer(0.05, lambda: F.set_event(event))
    timer.start()

    assert F.wait_for_event(event, timeout=1e10) is True
    timer.join(5)


def test_deadline_too_large_for_the_core_is_no_deadline():
    from msgflux import _core
    import contextvars

    batch = _core.new_batch(1, abs, [(-4,)], None, contextvars.copy_context(), 1e19, None)
    _core.submit(batch)

    assert batch.remaining() is None
    assert batch.wait() == (4,)
