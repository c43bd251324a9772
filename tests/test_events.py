"""Waiting for events from sync and async code."""

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import msgflux.nn.functional as F


def set_later(action, delay=0.05):
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


def test_wait_for_event_returns_when_a_threading_event_is_set():
    event = threading.Event()
    set_later(event.set)

    assert F.wait_for_event(event, timeout=5) is True


def test_wait_for_event_returns_false_at_the_timeout():
    assert F.wait_for_event(threading.Event(), timeout=0.05) is False
    assert F.wait_for_event(asyncio.Event(), timeout=0.05) is False


def test_wait_for_event_sees_asyncio_event_set_through_set_event():
    event = asyncio.Event()
    set_later(lambda: F.set_event(event))

    assert F.wait_for_event(event, timeout=5) is True


def test_wait_for_event_sees_asyncio_event_set_directly_from_a_thread():
    event = asyncio.Event()

    def set_directly():
        try:
            event.set()
        except RuntimeError:
            # asyncio's debug mode (python -X dev) rejects the cross-thread
            # wake-up of the waiters, after the flag itself is already set.
            pass

    set_later(set_directly)

    assert F.wait_for_event(event, timeout=5) is True


def test_wait_for_event_sees_an_event_set_on_a_running_loop():
    ready = threading.Event()
    holder = {}

    async def owner():
        holder["event"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        ready.set()
        await holder["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(owner(),))
    thread.start()
    assert ready.wait(5)
    set_later(lambda: holder["loop"].call_soon_threadsafe(holder["event"].set))

    assert F.wait_for_event(holder["event"], timeout=5) is True
    thread.join(5)


def test_wait_for_event_on_the_events_own_loop_raises():
    async def main():
        event = asyncio.Event()
        with pytest.raises(RuntimeError, match="await await_for_event"):
            F.wait_for_event(event)

    asyncio.run(main())


def test_wait_for_event_rejects_other_objects():
    with pytest.raises(TypeError, match="event must be an asyncio.Event or a threading.Event"):
        F.wait_for_event(object())


def test_ctrl_c_interrupts_wait_for_event():
    child = textwrap.dedent(
        """
        import asyncio, time
        import msgflux.nn.functional as F
        try:
            print("waiting", flush=True)
            F.wait_for_event(asyncio.Event())
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout.readline().strip() == "waiting"
            time.sleep(0.2)  # let the child block in the wait
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            line = process.stdout.readline().split()
            process.wait(10)
        finally:
            process.kill()

    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.5


def test_documented_pattern_sets_an_asyncio_event_from_a_plain_thread():
    event = asyncio.Event()

    def set_event_later():
        time.sleep(0.1)
        F.set_event(event)

    thread = threading.Thread(target=set_event_later)
    thread.start()
    F.wait_for_event(event)
    thread.join(5)

    assert event.is_set()


def test_await_for_event_waits_for_an_event_of_the_same_loop(run_async):
    async def main():
        event = asyncio.Event()
        asyncio.get_running_loop().call_later(0.02, event.set)
        return await F.await_for_event(event, timeout=5)

    assert run_async(main()) is True


def test_await_for_event_waits_for_a_threading_event(run_async):
    event = threading.Event()
    set_later(event.set)

    assert run_async(F.await_for_event(event, timeout=5)) is True


def test_await_for_event_returns_false_at_the_timeout(run_async):
    assert run_async(F.await_for_event(threading.Event(), timeout=0.05)) is False


def test_cancelled_await_for_threading_event_leaves_no_worker_parked(run_async):
    import msgflux

    async def main():
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(F.await_for_event(threading.Event()), 0.1)

    run_async(main())
    deadline = time.monotonic() + 5
    while msgflux.pool_stats()["workers"] != msgflux.pool_stats()["idle"]:
        assert time.monotonic() < deadline, "a worker is still parked on the event"
        time.sleep(0.01)


def test_await_for_event_of_another_loop(run_async):
    ready = threading.Event()
    holder = {}

    async def owner():
        holder["event"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        ready.set()
        await holder["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(owner(),))
    thread.start()
    assert ready.wait(5)
    set_later(lambda: holder["loop"].call_soon_threadsafe(holder["event"].set))

    assert run_async(F.await_for_event(holder["event"], timeout=5)) is True
    thread.join(5)
