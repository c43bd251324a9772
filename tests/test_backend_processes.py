"""The "processes" backend: worker processes that crash, hang and nest."""

import asyncio
import ctypes
import os
import signal
import sys
import threading
import time

import pytest

import msgflux.nn.functional as F
from conftest import run_python
from msgflux import TaskError
from msgflux._backends import configure_processes
from msgflux._backends.processes import RemoteTraceback, WorkerDiedError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="workers need POSIX")

# Task bodies live at module level: workers import this module by name, as
# they would any module of the caller's program.


def square(x):
    return x * x


def pid():
    return os.getpid()


def finish_in_reverse(i, count):
    # Later tasks finish first, so order must come from the slots.
    time.sleep(0.02 * (count - i))
    return i


def fail_with(message):
    raise ValueError(message)


def exit_now(code):
    os._exit(code)


def segfault():
    ctypes.string_at(0)


def write_pid_then_hang(path):
    with open(path, "w") as file:
        file.write(str(os.getpid()))
    threading.Event().wait()


def nested_pids(count):
    inner = F.map_gather(pid, args_list=[()] * count)
    return os.getpid(), inner


def return_lock():
    return threading.Lock()


def raise_interrupt():
    raise KeyboardInterrupt


async def async_square(x):
    await asyncio.sleep(0)
    return x * x


def alive(process_id):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{process_id}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_tasks_run_in_other_processes():
    pids = F.map_gather(pid, args_list=[()] * 4, backend="processes")

    assert os.getpid() not in pids


def test_results_keep_input_order():
    count = 6

    results = F.map_gather(
        finish_in_reverse, args_list=[(i, count) for i in range(count)],
        backend="processes",
    )

    assert results == tuple(range(count))


def test_scatter_and_bcast_run_on_processes():
    scattered = F.scatter_gather([square, abs], [(3,), (-4,)], backend="processes")
    broadcast = F.bcast_gather([square, abs], -5, backend="processes")

    assert scattered == (9, 4)
    assert broadcast == (25, 5)


def test_lambda_and_closure_are_pickled_by_value():
    offset = 10

    def add_offset(x):
        return x + offset

    results = F.scatter_gather(
        [lambda x: x * 3, add_offset], [(2,), (2,)], backend="processes"
    )

    assert results == (6, 12)


def test_failed_task_keeps_exception_type_and_message():
    results = F.map_gather(
        fail_with, args_list=[("bad input 0",), ("bad input 1",)], backend="processes"
    )

    assert [type(r) for r in results] == [TaskError, TaskError]
    assert [r.index for r in results] == [0, 1]
    assert type(results[1].exception) is ValueError
    assert str(results[1].exception) == "bad input 1"


def test_failed_task_leaves_other_slots_alone():
    results = F.scatter_gather(
        [square, fail_with, square], [(2,), ("no",), (3,)], backend="processes"
    )

    assert results[0] == 4
    assert isinstance(results[1], TaskError)
    assert results[2] == 9


def test_worker_traceback_text_is_the_exception_cause():
    (result,) = F.map_gather(fail_with, args_list=[("deep",)], backend="processes")

    cause = result.exception.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail_with" in cause.text
    assert "ValueError: deep" in cause.text


def test_os_exit_fails_only_its_task():
    results = F.scatter_gather(
        [exit_now, square], [(7,), (5,)], backend="processes", timeout=60
    )

    error = results[0].exception
    assert isinstance(error, WorkerDiedError)
    assert error.exitcode == 7
    assert "exited with status 7 while running task 0" in str(error)
    assert results[1] == 25
    assert F.map_gather(square, args_list=[(6,)], backend="processes") == (36,)


def test_segfault_gives_task_error_naming_the_signal():
    (result,) = F.bcast_gather([segfault], backend="processes", timeout=60)

    error = result.exception
    assert isinstance(error, WorkerDiedError)
    assert error.exitcode == -signal.SIGSEGV
    assert "SIGSEGV" in str(error)


def test_timeout_kills_stuck_worker_and_frees_its_slot(tmp_path):
    pid_file = tmp_path / "stuck.pid"
    started = time.monotonic()

    results = F.scatter_gather(
        [write_pid_then_hang, square], [(str(pid_file),), (4,)],
        backend="processes", timeout=3,
    )

    assert time.monotonic() - started < 4
    assert isinstance(results[0].exception, TimeoutError)
    assert results[1] == 16
    stuck = int(pid_file.read_text())
    assert wait_until(lambda: not alive(stuck), 5)


def test_gather_after_timeout_gets_every_slot_back(tmp_path):
    size = configure_processes()["max_workers"]
    hangers = [(str(tmp_path / f"{i}.pid"),) for i in range(size)]
    F.map_gather(write_pid_then_hang, args_list=hangers, backend="processes", timeout=2)

    pids = F.map_gather(pid, args_list=[()] * size, backend="processes", timeout=60)

    assert all(isinstance(p, int) for p in pids)


def test_timeout_slot_message_names_the_limit(tmp_path):
    (result,) = F.map_gather(
        write_pid_then_hang, args_list=[(str(tmp_path / "p"),)],
        backend="processes", timeout=1.5,
    )

    message = str(result.exception)
    assert "1.5 s timeout" in message
    assert "1 worker process(es) still running tasks were killed" in message


def test_nested_gather_runs_on_threads():
    ((outer, inner),) = F.map_gather(nested_pids, args_list=[(3,)], backend="processes")

    assert outer != os.getpid()
    assert inner == (outer, outer, outer)


def test_nested_gather_ignores_msgflux_backend_env(monkeypatch):
    monkeypatch.setenv("MSGFLUX_BACKEND", "processes")

    ((outer, inner),) = F.map_gather(nested_pids, args_list=[(2,)])

    assert inner == (outer, outer)


def test_backend_block_selects_processes():
    with F.backend("processes"):
        pids = F.map_gather(pid, args_list=[()])

    assert pids[0] != os.getpid()
    assert F.map_gather(pid, args_list=[()]) == (os.getpid(),)


def test_backend_argument_overrides_the_block():
    with F.backend("processes"):
        pids = F.map_gather(pid, args_list=[()], backend="threads")

    assert pids == (os.getpid(),)


def test_msgflux_backend_env_selects_processes(monkeypatch):
    monkeypatch.setenv("MSGFLUX_BACKEND", "processes")

    pids = F.map_gather(pid, args_list=[()])

    assert pids[0] != os.getpid()


def test_unknown_backend_name_raises_listing_choices():
    with pytest.raises(ValueError) as info:
        F.map_gather(square, args_list=[(1,)], backend="gpu")

    message = str(info.value)
    assert "'gpu'" in message
    assert "threads, processes, dask" in message


def test_unknown_backend_in_env_raises(monkeypatch):
    monkeypatch.setenv("MSGFLUX_BACKEND", "cluster")

    with pytest.raises(ValueError, match="MSGFLUX_BACKEND"):
        F.map_gather(square, args_list=[(1,)])


def test_unpicklable_argument_fails_only_its_slot():
    results = F.map_gather(
        id, args_list=[(threading.Lock(),), (5,)], backend="processes"
    )

    assert isinstance(results[0].exception, TypeError)
    assert isinstance(results[1], int)


def test_unpicklable_result_fails_its_slot_with_type_error():
    (result,) = F.bcast_gather([return_lock], backend="processes")

    assert isinstance(result.exception, TypeError)
    assert "cannot be pickled" in str(result.exception)


def test_keyboard_interrupt_raised_in_task_reaches_caller():
    with pytest.raises(KeyboardInterrupt):
        F.bcast_gather([raise_interrupt], backend="processes", timeout=60)


def test_system_exit_in_task_is_its_failure():
    (result,) = F.bcast_gather([sys.exit], backend="processes")

    assert isinstance(result.exception, SystemExit)
    assert F.map_gather(square, args_list=[(2,)], backend="processes") == (4,)


def test_async_callable_is_awaited_in_the_worker():
    results = F.map_gather(async_square, args_list=[(3,), (4,)], backend="processes")

    assert results == (9, 16)


def test_amap_gather_runs_on_processes(run_async):
    results = run_async(
        F.amap_gather(square, args_list=[(i,) for i in range(5)], backend="processes")
    )

    assert results == (0, 1, 4, 9, 16)


def test_amap_gather_timeout_keeps_the_loop_running(run_async, tmp_path):
    ticks = []

    async def main():
        async def tick():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.05)

        ticker = asyncio.ensure_future(tick())
        try:
            return await F.amap_gather(
                write_pid_then_hang, args_list=[(str(tmp_path / "a"),)],
                backend="processes", timeout=1,
            )
        finally:
            ticker.cancel()

    (result,) = run_async(main())

    assert isinstance(result.exception, TimeoutError)
    assert len(ticks) >= 5


def test_cancelled_amap_gather_kills_its_worker(run_async, tmp_path):
    pid_file = tmp_path / "c.pid"

    async def main():
        task = asyncio.ensure_future(F.amap_gather(
            write_pid_then_hang, args_list=[(str(pid_file),)], backend="processes",
        ))
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the task never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(main())

    assert wait_until(lambda: not alive(int(pid_file.read_text())), 5)


def test_configured_size_limits_workers():
    before = configure_processes()["max_workers"]
    try:
        settings = configure_processes(max_workers=1)
        pids = F.map_gather(pid, args_list=[()] * 4, backend="processes")
    finally:
        configure_processes(max_workers=before)

    assert settings["max_workers"] == 1
    assert len(set(pids)) == 1


def test_configure_rejects_size_below_one():
    with pytest.raises(ValueError, match="at least 1, got 0"):
        configure_processes(max_workers=0)


EXIT_WITH_STUCK_TASK = """
    import os, sys, threading, time
    import msgflux.nn.functional as F

    def hang(path):
        with open(path, "w") as file:
            file.write(str(os.getpid()))
        threading.Event().wait()

    if __name__ == "__main__":
        path = sys.argv[1]
        (first,) = F.map_gather(os.getpid, args_list=[()], backend="processes")
        print(first, flush=True)
        runner = threading.Thread(
            target=F.map_gather, args=(hang,),
            kwargs=dict(args_list=[(path,)], backend="processes"), daemon=True,
        )
        runner.start()
        deadline = time.monotonic() + 30
        while not (os.path.exists(path) and os.path.getsize(path)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
"""


def test_exit_with_stuck_task_is_clean(tmp_path):
    pid_file = tmp_path / "exit.pid"
    started = time.monotonic()

    result = run_python(
        EXIT_WITH_STUCK_TASK, timeout=60, args_extra=[str(pid_file)],
        env={"PYTHONDEVMODE": "1"}, cwd=str(tmp_path),
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert time.monotonic() - started < 20
    workers = [int(result.stdout.split()[0]), int(pid_file.read_text())]
    assert wait_until(lambda: not any(alive(p) for p in workers), 5)
