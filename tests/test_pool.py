"""Sizing of the worker pool and its settings."""

import os
import threading

import pytest

import msgflux
import msgflux.nn.functional as F

from conftest import run_python


def test_1000_blocking_tasks_run_concurrently_with_default_settings():
    # The barrier only opens when all 1,000 tasks wait at it at the same time.
    barrier = threading.Barrier(1000, timeout=30)

    results = F.map_gather(barrier.wait, args_list=[()] * 1000)

    assert sorted(results) == list(range(1000))


def test_trivial_tasks_do_not_grow_the_pool_beyond_the_cpu_count():
    result = run_python(
        """
        import msgflux, msgflux.nn.functional as F
        for _ in range(5):
            F.map_gather(abs, args_list=[(-i,) for i in range(100_000)])
        print(msgflux.pool_stats()["workers"])
        """
    )

    assert result.returncode == 0, result.stderr
    # Two extra workers are tolerated: when other processes keep every core
    # busy, waiting workers can look blocked to the pool for a moment.
    assert int(result.stdout) <= os.cpu_count() + 2


def test_pure_python_cpu_tasks_do_not_grow_the_pool_beyond_the_cpu_count():
    result = run_python(
        """
        import msgflux, msgflux.nn.functional as F
        def spin(n):
            total = 0
            for i in range(n):
                total += i
            return total
        F.map_gather(spin, args_list=[(2_000_000,)] * 8)
        print(msgflux.pool_stats()["workers"])
        """
    )

    assert result.returncode == 0, result.stderr
    assert int(result.stdout) <= os.cpu_count() + 2  # tolerance as above


def test_idle_workers_exit_after_the_idle_timeout():
    result = run_python(
        """
        import threading, time
        import msgflux, msgflux.nn.functional as F
        barrier = threading.Barrier(20, timeout=10)
        F.map_gather(barrier.wait, args_list=[()] * 20)
        grown = msgflux.pool_stats()["workers"]
        deadline = time.monotonic() + 10
        while msgflux.pool_stats()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        print(grown, msgflux.pool_stats()["workers"])
        """,
        env={"MSGFLUX_IDLE_TIMEOUT": "0.2"},
    )

    assert result.returncode == 0, result.stderr
    grown, left = map(int, result.stdout.split())
    assert grown >= 20
    assert left == 0


def test_max_workers_caps_concurrent_tasks(pool_limit):
    pool_limit(4)
    lock = threading.Lock()
    running = [0, 0]  # current, highest
    release = threading.Event()

    def task(i):
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        release.wait(0.05)
        with lock:
            running[0] -= 1

    F.map_gather(task, args_list=[(i,) for i in range(40)])

    assert running[1] <= 4


def test_max_workers_is_read_from_the_environment():
    result = run_python(
        "import msgflux; print(msgflux.configure()['max_workers'])",
        env={"MSGFLUX_MAX_WORKERS": "3"},
    )

    assert result.stdout.strip() == "3"


def test_invalid_max_workers_in_the_environment_gives_a_clear_error():
    result = run_python(
        """
        import msgflux.nn.functional as F
        F.map_gather(abs, args_list=[(1,)])
        """,
        env={"MSGFLUX_MAX_WORKERS": "lots"},
    )

    assert result.returncode != 0
    assert "ValueError: MSGFLUX_MAX_WORKERS must be a number, got \"lots\"" in result.stderr
    assert "atexit" not in result.stderr


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_workers": 0}, ValueError, "max_workers must be at least 1, got 0"),
        ({"max_workers": 2.5}, TypeError, "max_workers must be an int, got float"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout must be positive"),
        ({"idle_timeout": "1"}, TypeError, "idle_timeout must be a number of seconds"),
        ({"exit_grace": -1}, ValueError, "exit_grace must be 0 or more"),
    ],
)
def test_configure_rejects_bad_values(kwargs, error, message):
    with pytest.raises(error, match=message):
        msgflux.configure(**kwargs)


def test_configure_returns_the_settings_in_force():
    settings = msgflux.configure()

    assert set(settings) == {"max_workers", "idle_timeout", "exit_grace"}


def test_pool_stats_reports_workers_and_queue():
    stats = msgflux.pool_stats()

    assert {"workers", "idle", "queued_tasks", "nested_waiters", "spawned_pending"} <= set(stats)
