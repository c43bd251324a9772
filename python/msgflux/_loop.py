"""Background event loops that run coroutines for the sync API.

Sync gathers hand coroutines to a loop owned by the library, each on its own
daemon thread. A sync gather may itself be called from a coroutine running on
such a loop, which then blocks until the gather returns. Its coroutines must
therefore go to a different loop: a task running on loop ``k`` records ``k``
in a context variable, and a sync gather called from that context uses loop
``k + 1``. The variable travels with the context into pool workers too, so any
chain of nested sync and async gathers gets a loop that is free to run.
Loops are created on first use; most programs only ever start loop 0.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from typing import Any, Dict, List, Optional, Set

logger = logging.getLogger(__name__)

__all__ = ["AsyncBatch", "loop_depth", "get_loop", "stop_all"]

# Depth of the library loop the current code runs on; -1 outside them.
_LOOP_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar(
    "msgflux_loop_depth", default=-1
)

HAS_TASK_CONTEXT = sys.version_info >= (3, 11)


class _LoopThread:
    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"msgflux-loop-{depth}", daemon=True
        )
        self.thread.start()
        self.ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.ready.set)
        try:
            self.loop.run_forever()
        finally:
            logger.debug("background loop %d stopped", self.depth)


_loops: List[_LoopThread] = []
_loops_lock = threading.Lock()


def loop_depth() -> int:
    """Depth of the library loop a sync gather called here should use."""
    return _LOOP_DEPTH.get() + 1


def get_loop(depth: int) -> asyncio.AbstractEventLoop:
    """Return library loop ``depth``, starting it and any below it on first use."""
    loops = _loops
    if depth < len(loops):
        return loops[depth].loop
    with _loops_lock:
        while len(_loops) <= depth:
            _loops.append(_LoopThread(len(_loops)))
            logger.debug("started background loop %d", len(_loops) - 1)
        return _loops[depth].loop


def running_loops() -> List[asyncio.AbstractEventLoop]:
    return [entry.loop for entry in _loops]


def stop_all(timeout: float) -> None:
    """Cancel every task on the library loops, stop them and join their threads."""
    with _loops_lock:
        loops = list(_loops)
    for entry in loops:
        try:
            entry.loop.call_soon_threadsafe(_cancel_and_stop, entry.loop)
        except RuntimeError:
            continue
    for entry in loops:
        entry.thread.join(timeout)


def _cancel_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon(loop.stop)


def forget_after_fork() -> None:
    """Drop the parent's loops in a forked child, whose threads do not exist."""
    global _loops_lock
    _loops.clear()
    _loops_lock = threading.Lock()


class AsyncBatch:
    """Runs the awaitable parts of one batch on a library loop.

    ``depth`` picks the loop. ``tasks`` is only touched on that loop's thread.
    """

    __slots__ = ("depth", "loop", "tasks", "refill")

    def __init__(self, depth: int, refill: bool = False) -> None:
        self.depth = depth
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.tasks: Set[asyncio.Task] = set()
        # With a concurrency limit, each finished coroutine starts the next.
        self.refill = refill

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = get_loop(self.depth)
        return self.loop

    def start_all(self, batch: Any) -> None:
        """Start every task of ``batch`` on the loop, as coroutines."""
        self._loop().call_soon_threadsafe(self._start_all, batch)

    def on_awaitable(self, batch: Any, index: int, awaitable: Any, context: Any) -> None:
        """Called by a worker whose task returned an awaitable."""
        try:
            self._loop().call_soon_threadsafe(
                self._start_one, batch, index, awaitable, context
            )
        except BaseException:
            _close(awaitable)
            raise

    def cancel(self) -> None:
        """Cancel what still runs on the loop, from any thread."""
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._cancel_tasks)
        except RuntimeError:
            pass  # The loop is closed at exit, and its tasks with it.

    def _cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def _start_all(self, batch: Any) -> None:
        while True:
            index = batch.claim()
            if index is None:
                return
            try:
                awaitable, context = batch.call(index)
            except BaseException as exc:
                batch.set_exception(index, exc)
                continue
            self._start_one(batch, index, awaitable, context)

    def _start_one(self, batch: Any, index: int, awaitable: Any, context: Any) -> None:
        if batch.closed:
            # The caller returned (deadline or Ctrl-C) before this started.
            _close(awaitable)
            batch.set_exception(index, asyncio.CancelledError())
            return
        refill = self._start_all if self.refill else None
        runner = _run_guarded(batch, index, awaitable, self.depth, refill)
        if HAS_TASK_CONTEXT:
            task = self.loop.create_task(runner, context=context)
        else:
            task = context.run(self.loop.create_task, runner)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def _run_guarded(
    batch: Any, index: int, awaitable: Any, depth: int, refill: Any = None
) -> None:
    # The library loop must survive anything a task raises: asyncio re-raises
    # KeyboardInterrupt and SystemExit out of run_forever, so nothing escapes.
    _LOOP_DEPTH.set(depth)
    try:
        value = await awaitable
    except BaseException as exc:
        batch.set_exception(index, exc)
    else:
        batch.set_result(index, value)
    if refill is not None:
        refill(batch)


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.debug("closing an unstarted awaitable failed", exc_info=True)
