"""Per-call controls: concurrency limit, retries and progress."""

import asyncio
import threading
import time

import pytest

import msgflux.nn.functional as F
from msgflux import TaskError


class Gauge:
    """Counts tasks running at once and remembers the highest count."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.highest = 0

    def __enter__(self):
        with self.lock:
            self.running += 1
            self.highest = max(self.highest, self.running)

    def __exit__(self, *exc):
        with self.lock:
            self.running -= 1


def test_max_concurrency_caps_sync_tasks_of_one_call():
    gauge = Gauge()

    def task(_):
        with gauge:
            time.sleep(0.005)

    F.map_gather(task, args_list=[(i,) for i in range(60)], max_concurrency=4)

    assert gauge.highest == 4


def test_max_concurrency_caps_coroutines_of_one_call(run_async):
    gauge = Gauge()

    async def task(_):
        with gauge:
            await asyncio.sleep(0.005)

    run_async(F.amap_gather(task, args_list=[(i,) for i in range(60)], max_concurrency=3))

    assert gauge.highest == 3


def test_max_concurrency_caps_coroutines_in_sync_gathers():
    gauge = Gauge()

    async def task(_):
        with gauge:
            await asyncio.sleep(0.005)

    F.map_gather(task, args_list=[(i,) for i in range(40)], max_concurrency=5)

    assert gauge.highest == 5


def test_max_concurrency_keeps_results_in_order():
    results = F.map_gather(abs, args_list=[(-i,) for i in range(500)], max_concurrency=2)

    assert results == tuple(range(500))


@pytest.mark.parametrize(
    "value, error, message",
    [
        (0, ValueError, "max_concurrency must be at least 1, got 0; pass None"),
        (2.5, TypeError, "max_concurrency must be an int or None"),
    ],
)
def test_bad_max_concurrency_raises_before_any_task(value, error, message):
    ran = []
    with pytest.raises(error, match=message):
        F.map_gather(ran.append, args_list=[(1,)], max_concurrency=value)
    assert ran == []


def make_flaky(failures, exc_type=ValueError):
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) <= failures:
            raise exc_type(f"failure {len(calls)}")
        return x

    return flaky, calls


def test_retries_call_a_failed_task_again():
    flaky, calls = make_flaky(2)

    assert F.map_gather(flaky, args_list=[(7,)], retries=2) == (7,)
    assert len(calls) == 3


def test_task_error_records_the_number_of_attempts():
    flaky, calls = make_flaky(10)

    (result,) = F.map_gather(flaky, args_list=[(7,)], retries=2)

    assert isinstance(result, TaskError)
    assert result.attempts == 3
    assert str(result.exception) == "failure 3"


def test_failures_outside_retry_on_are_not_retried():
    flaky, calls = make_flaky(1, KeyError)

    (result,) = F.map_gather(flaky, args_list=[(7,)], retries=3, retry_on=(ValueError,))

    assert isinstance(result.exception, KeyError)
    assert result.attempts == 1
    assert len(calls) == 1


def test_async_callables_are_retried(run_async):
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    assert run_async(F.abcast_gather([flaky], retries=5)) == ("ok",)
    assert len(attempts) == 3


def test_deadline_wins_over_retries():
    def always_fails():
        raise ValueError("no")

    started = time.monotonic()
    (result,) = F.bcast_gather([always_fails], retries=1000, timeout=0.3)

    assert time.monotonic() - started < 0.4
    assert isinstance(result, TaskError)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"retries": -1}, ValueError, "retries must be 0 or more, got -1"),
        ({"retries": "2"}, TypeError, "retries must be an int"),
        ({"retry_on": "ValueError"}, TypeError, "retry_on must be an exception type"),
        ({"progress": 5}, TypeError, "progress must be True, False, None or a callable"),
    ],
)
def test_bad_control_values_raise_with_what_to_pass(kwargs, error, message):
    with pytest.raises(error, match=message):
        F.bcast_gather([abs], 1, **kwargs)


def test_progress_callable_receives_done_and_total_ending_at_total(gate):
    reports = []

    def task(i):
        if i == 0:
            gate.wait(0.1)
        return i

    F.map_gather(task, args_list=[(i,) for i in range(20)], progress=lambda d, t: reports.append((d, t)))

    assert reports[-1] == (20, 20)
    assert all(total == 20 for _, total in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_progress_callable_runs_on_the_calling_thread():
    threads = set()

    F.map_gather(abs, args_list=[(1,)] * 10, progress=lambda d, t: threads.add(threading.get_ident()))

    assert threads == {threading.get_ident()}


def test_async_progress_is_reported(run_async):
    reports = []

    async def task(i):
        await asyncio.sleep(0.01 * (i % 3))
        return i

    run_async(F.amap_gather(task, args_list=[(i,) for i in range(12)], progress=lambda d, t: reports.append(d)))

    assert reports[-1] == 12


def test_progress_true_off_a_terminal_shows_nothing(capsys):
    assert F.map_gather(abs, args_list=[(-1,)], progress=True) == (1,)

    assert capsys.readouterr().err == ""


def test_attempts_count_retries_of_a_task_still_running_at_the_deadline(gate):
    calls = []

    def fails_twice_then_hangs():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        gate.wait(10)

    (result,) = F.map_gather(
        fails_twice_then_hangs, args_list=[()], retries=3, timeout=1.0
    )

    assert isinstance(result.exception, TimeoutError)
    assert result.attempts == len(calls) == 3


def test_attempts_are_counted_per_task():
    failures = {0: 2, 1: 0}

    def task(i):
        if failures[i]:
            failures[i] -= 1
            raise ValueError(i)
        raise KeyError(i)

    results = F.map_gather(task, args_list=[(0,), (1,)], retries=5, retry_on=ValueError)

    assert [r.attempts for r in results] == [3, 1]
