"""Ctrl-C and KeyboardInterrupt while a gather waits."""

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import msgflux.nn.functional as F

CHILD = textwrap.dedent(
    """
    import sys, threading, time
    import msgflux.nn.functional as F
    never = threading.Event()
    try:
        print("waiting", flush=True)
        F.map_gather(lambda i: never.wait(30), args_list=[(i,) for i in range(4)])
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
        sys.exit(0)
    print("returned without interrupt", flush=True)
    sys.exit(1)
    """
)


def test_sigint_raises_keyboard_interrupt_in_a_waiting_gather_within_half_a_second():
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout.readline().strip() == "waiting"
            time.sleep(0.2)  # let the child enter the native wait
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            line = child.stdout.readline().split()
            assert child.wait(10) == 0, child.stderr.read()
        finally:
            child.kill()
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.5


def test_keyboard_interrupt_raised_in_a_task_propagates_to_the_caller():
    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        F.bcast_gather([interrupt, lambda: "other"])


def test_keyboard_interrupt_in_a_task_cancels_unstarted_tasks(pool_limit):
    pool_limit(1)
    started = []

    def task(i):
        started.append(i)
        if i == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        F.map_gather(task, args_list=[(i,) for i in range(100)])

    assert F.map_gather(abs, args_list=[(-1,)]) == (1,)
    assert len(started) < 100


def test_keyboard_interrupt_from_a_nested_gather_reaches_the_outer_caller():
    def inner():
        raise KeyboardInterrupt

    def outer():
        return F.bcast_gather([inner])

    with pytest.raises(KeyboardInterrupt):
        F.bcast_gather([outer])
