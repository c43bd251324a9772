"""Fire-and-forget tasks."""

import asyncio
import gc
import logging
import threading

import msgflux.nn.functional as F

from conftest import run_python


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.error_seen = threading.Event()

    def emit(self, record):
        self.records.append(record)
        if record.levelno >= logging.ERROR:
            self.error_seen.set()


def capture():
    handler = Collect()
    logging.getLogger("msgflux").addHandler(handler)
    return handler


def release(handler):
    logging.getLogger("msgflux").removeHandler(handler)


def test_spawn_runs_a_sync_callable_in_the_background():
    done = threading.Event()

    assert F.spawn(done.set) is None
    assert done.wait(5)


def test_spawn_runs_an_async_callable_in_the_background():
    done = threading.Event()

    async def job():
        await asyncio.sleep(0)
        done.set()

    F.spawn(job)

    assert done.wait(5)


def test_spawn_passes_arguments_and_keywords():
    seen = []
    done = threading.Event()

    def job(a, *, b):
        seen.append((a, b))
        done.set()

    F.spawn(job, 1, b=2)

    assert done.wait(5)
    assert seen == [(1, 2)]


def test_failing_spawned_sync_task_is_logged_at_error_with_traceback():
    handler = capture()
    try:
        def boom():
            raise ValueError("sync-boom-1")

        F.spawn(boom)
        assert handler.error_seen.wait(5)
    finally:
        release(handler)

    (record,) = [r for r in handler.records if r.levelno >= logging.ERROR]
    assert "boom" in record.getMessage()
    assert record.exc_info[1].args == ("sync-boom-1",)


def test_failing_spawned_async_task_is_logged_at_error():
    handler = capture()
    try:
        async def boom():
            raise ValueError("async-boom-2")

        F.spawn(boom)
        assert handler.error_seen.wait(5)
    finally:
        release(handler)

    record = next(r for r in handler.records if r.levelno >= logging.ERROR)
    assert record.exc_info[1].args == ("async-boom-2",)


def test_spawned_coroutine_survives_garbage_collection():
    done = threading.Event()
    release_job = threading.Event()

    async def job():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(lambda: None)
        while not release_job.is_set():
            await asyncio.sleep(0.01)
        future.set_result(None)
        await future
        done.set()

    F.spawn(job)
    for _ in range(5):
        gc.collect()
    release_job.set()

    assert done.wait(5)


def test_exit_is_not_blocked_by_stuck_spawned_tasks():
    result = run_python(
        """
        import asyncio, threading
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(exit_grace=0.3)
        never = threading.Event()
        async def forever():
            await asyncio.sleep(3600)
        F.spawn(never.wait, 3600)
        F.spawn(forever)
        print("main done", flush=True)
        """,
        timeout=20,
    )

    assert result.returncode == 0, result.stderr
    assert "main done" in result.stdout
    assert "Fatal Python error" not in result.stderr


def test_exit_waits_for_spawned_work_within_the_grace_period():
    result = run_python(
        """
        import time
        import msgflux.nn.functional as F
        def slow():
            time.sleep(0.3)
            print("spawned finished", flush=True)
        F.spawn(slow)
        """,
        timeout=20,
    )

    assert result.returncode == 0, result.stderr
    assert "spawned finished" in result.stdout


def test_exit_warns_once_with_the_count_of_abandoned_tasks():
    result = run_python(
        """
        import logging, threading
        logging.basicConfig(level=logging.WARNING)
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(exit_grace=0.2)
        never = threading.Event()
        for _ in range(3):
            F.spawn(never.wait, 3600)
        """,
        timeout=20,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("abandoning 3 spawned task(s)") == 1


def test_exit_status_is_the_programs_own_with_spawned_work_running():
    result = run_python(
        """
        import sys, threading
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(exit_grace=0.1)
        F.spawn(threading.Event().wait, 3600)
        sys.exit(7)
        """,
        timeout=20,
    )

    assert result.returncode == 7, result.stderr
