"""Shared fixtures for the msgflux test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import msgflux


@pytest.fixture
def pool_limit():
    """Set msgflux.configure(max_workers=...) for one test, then restore it."""
    before = msgflux.configure()["max_workers"]

    def set_limit(count: int) -> None:
        msgflux.configure(max_workers=count)

    yield set_limit
    msgflux.configure(max_workers=before)


def run_python(
    source: str,
    timeout: float = 30,
    env: dict | None = None,
    args_extra: list | None = None,
    **kwargs,
):
    """Run a Python program in a fresh interpreter and return the completed process."""
    # Allocator tuning that other libraries export (Dask sets
    # MALLOC_TRIM_THRESHOLD_) would change what memory tests measure.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *(args_extra or [])],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kwargs,
    )


@pytest.fixture
def gate():
    """A threading.Event that is always set at teardown, so no test can hang on it."""
    event = threading.Event()
    yield event
    event.set()


def _new_uvloop():
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop()


@pytest.fixture(params=["asyncio", "uvloop"])
def run_async(request):
    """Run a coroutine to completion on the stock loop or on uvloop.

    The global event loop policy is left alone, as the library must not
    depend on it.
    """
    factory = None if request.param == "asyncio" else _new_uvloop

    def run(coroutine):
        import asyncio

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coroutine)

    return run


def _foreign_threads():
    # Library-owned threads (background loops) live for the whole process,
    # and dummy entries stand for pool workers that asked for their thread.
    return {
        thread
        for thread in threading.enumerate()
        if not thread.name.startswith("msgflux-")
        and not isinstance(thread, threading._DummyThread)
    }


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Fail a test that leaves behind a thread it started."""
    before = _foreign_threads()
    yield
    deadline = time.monotonic() + 5
    while True:
        leftover = _foreign_threads() - before
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not leftover, f"threads left running after the test: {sorted(t.name for t in leftover)}"
