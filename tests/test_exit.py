"""Interpreter exit with work still running."""

import signal
import subprocess
import sys
import textwrap
import time

from conftest import run_python


def test_exit_after_a_timed_out_gather_keeps_the_programs_status():
    result = run_python(
        """
        import sys, threading, time
        import msgflux.nn.functional as F
        never = threading.Event()
        F.map_gather(never.wait, args_list=[(3600,)] * 4, timeout=0.1)
        F.map_gather(time.sleep, args_list=[(0.2,)] * 4, timeout=0.05)
        sys.exit(5)
        """,
        timeout=20,
    )

    assert result.returncode == 5, result.stderr
    assert "Fatal Python error" not in result.stderr


def test_tasks_finishing_during_finalization_do_not_crash_the_process():
    # The sleeps end while the interpreter is shutting down; a worker that
    # then re-enters Python must not abort the process.
    result = run_python(
        """
        import time
        import msgflux.nn.functional as F
        F.map_gather(time.sleep, args_list=[(i / 1000,) for i in range(200)], timeout=0.001)
        """,
        timeout=20,
    )

    assert result.returncode == 0, result.stderr
    assert "Fatal Python error" not in result.stderr


def test_ctrl_c_during_the_exit_grace_period_exits_promptly():
    child = textwrap.dedent(
        """
        import threading
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(exit_grace=30)
        F.spawn(threading.Event().wait, 3600)
        print("exiting", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout.readline().strip() == "exiting"
            time.sleep(0.3)  # let the exit handler start waiting
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(10)
            elapsed = time.monotonic() - sent
            stderr = process.stderr.read()
        finally:
            process.kill()

    assert elapsed < 0.5
    assert "exit was interrupted with Ctrl-C" in stderr
    assert "Fatal Python error" not in stderr


def test_ctrl_c_while_spawned_tasks_run_interrupts_the_main_thread():
    child = textwrap.dedent(
        """
        import threading, time
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(exit_grace=0.1)
        for _ in range(4):
            F.spawn(threading.Event().wait, 3600)
        try:
            print("running", flush=True)
            time.sleep(30)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout.readline().strip() == "running"
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            assert process.stdout.readline().strip() == "interrupted"
            interrupted = time.monotonic() - sent
            assert process.wait(10) == 0
        finally:
            process.kill()

    assert interrupted < 0.5


def test_exit_after_an_unhandled_ctrl_c_skips_the_grace_period():
    child = textwrap.dedent(
        """
        import threading
        import msgflux.nn.functional as F
        for _ in range(4):
            F.spawn(threading.Event().wait, 3600)
        print("ready", flush=True)
        F.map_gather(lambda i: threading.Event().wait(60), args_list=[(i,) for i in range(4)])
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # let the gather start waiting
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            status = process.wait(10)
            elapsed = time.monotonic() - sent
            stderr = process.stderr.read()
        finally:
            process.kill()

    assert elapsed < 0.5
    assert status != 0
    assert "KeyboardInterrupt" in stderr
    assert "exit was interrupted with Ctrl-C" not in stderr
