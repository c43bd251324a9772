"""The ``"processes"`` backend: tasks in reusable worker processes.

Threads cannot run pure-Python CPU work in parallel under the GIL, but
worker processes can. Each worker is a fresh interpreter started with
``subprocess.Popen`` (fork and exec, never a bare fork), so it inherits none
of the caller's threads or the locks they own. A bare ``fork`` is unsafe
here because of the Rust worker pool and the background event loops.
``multiprocessing``'s spawn method is not used either: it re-imports the
caller's ``__main__`` in every child, which breaks scripts without an
``if __name__ == "__main__"`` guard. The cost is one interpreter start per
worker, paid once, because workers are reused.

Each worker talks to the caller over its own Unix socket pair. The caller
pickles a task's callable and arguments with cloudpickle (so lambdas and
closures work), sends it to an idle worker and waits on the sockets of its
running tasks with ``selectors``. End of file on a socket means the worker
died (a segfault, ``os._exit``); its task gets a ``TaskError`` holding a
``WorkerDiedError`` and the slot in the pool is freed for a new worker. At
the deadline the workers still running the batch's tasks are killed, so a
stuck task cannot hold a slot past its timeout.

An exception raised in a worker comes back pickled. Its traceback cannot
cross processes as frames, so the formatted text is attached as the
exception's ``__cause__``, a ``RemoteTraceback``: printed tracebacks and
``logging``'s ``exc_info`` show it with no extra code, on every Python
version, the way ``concurrent.futures.ProcessPoolExecutor`` does.

This module runs one gather's tasks; ``process_pool`` holds the workers
and ``process_worker`` is the code that runs inside each of them.
"""

from __future__ import annotations

import collections
import logging
import pickle
import selectors
import time
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

import cloudpickle

from msgflux import TaskError
from msgflux._backends.process_pool import (
    _get_pool,
    _Pool,
    _remaining,
    _Waker,
    _Worker,
    _describe_exit,
    configure,
    shutdown,
)
from msgflux._backends.process_worker import _LENGTH, _RESULT

__all__ = [
    "RemoteTraceback",
    "WorkerDiedError",
    "arun",
    "configure",
    "run",
    "shutdown",
]

logger = logging.getLogger(__name__)

Call = Tuple[Any, tuple, dict]

_MISSING = object()


class WorkerDiedError(RuntimeError):
    """A worker process ended while it ran a task.

    Attributes:
        pid: The worker's process id.
        exitcode: Its exit status, or minus the signal number that ended it.
    """

    def __init__(self, message: str, pid: int, exitcode: Optional[int]) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self):
        return (type(self), (self.args[0], self.pid, self.exitcode))


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process.

    Set as the ``__cause__`` of that exception once it is back in the
    calling process, so the remote frames print with it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------------------
# One gather's tasks.


def _seconds_text(seconds: Optional[float]) -> str:
    # Written as the thread pool writes it: "2", not "2.0".
    if seconds is not None and float(seconds).is_integer():
        return str(int(seconds))
    return str(seconds)


class _Cancelled(Exception):
    """Raised inside a batch whose awaiting coroutine was cancelled, to stop it."""


def _add_note(exc: BaseException, note: str) -> BaseException:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    return exc


def _decode_error(body: bytes) -> BaseException:
    exc_bytes, kind, message, text, pid = pickle.loads(body)
    exc: Any = None
    reason = "it could not be pickled in the worker"
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except Exception as err:
            reason = f"unpickling it failed: {type(err).__name__}: {err}"
    if not isinstance(exc, BaseException):
        exc = RuntimeError(
            f"the task raised {kind}: {message}. Sending that exception back "
            f"from the worker process failed ({reason})"
        )
    exc.__cause__ = RemoteTraceback(f"\nin worker process {pid}:\n{text}")
    return exc


class _Batch:
    """One gather's calls, run on the pool from the calling thread."""

    def __init__(
        self, pool: _Pool, calls: List[Call], timeout: Optional[float]
    ) -> None:
        self.pool = pool
        self.calls = calls
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.results: List[Any] = [_MISSING] * len(calls)
        self.queue: Deque[int] = collections.deque(range(len(calls)))
        self.resent: Set[int] = set()
        self.running: Dict[int, Tuple[_Worker, int]] = {}
        self.pickled: Dict[int, bytes] = {}
        # Made in run(): a batch cancelled before it runs owns no sockets.
        self.waker: Optional[_Waker] = None
        self.waiting = False
        self.cancelled = False
        self.interrupt: Optional[BaseException] = None

    def cancel(self) -> None:
        """Stop the batch from another thread and kill its running workers."""
        self.cancelled = True
        waker = self.waker
        if waker is not None:
            waker.wake()

    def run(self) -> Optional[Tuple[Any, ...]]:
        """Run the batch to completion or to the deadline.

        Returns None if the batch was cancelled.
        """
        self.waker = waker = _Waker()
        selector = selectors.DefaultSelector()
        selector.register(waker.reader, selectors.EVENT_READ, None)
        try:
            self._loop(selector, waker)
        except _Cancelled:
            self._abandon_running()
            return None
        except BaseException:
            self._abandon_running()
            raise
        finally:
            self.pool.remove_waker(waker)
            selector.close()
            waker.close()
        return tuple(self.results)

    def _loop(self, selector: selectors.BaseSelector, waker: _Waker) -> None:
        while True:
            if self.cancelled:
                raise _Cancelled()
            if self.interrupt is not None:
                raise self.interrupt
            if self.queue and not self.waiting:
                # Registered before looking for a worker, so a release
                # between the look and the select still wakes us.
                self.pool.add_waker(waker)
                self.waiting = True
            self._dispatch(selector)
            if not self.queue and self.waiting:
                self.pool.remove_waker(waker)
                self.waiting = False
            if not self.queue and not self.running:
                return
            wait = _remaining(self.deadline, floor=0.0)
            if wait is not None and wait <= 0:
                self._expire()
                return
            for key, _events in selector.select(wait):
                if key.data is None:
                    waker.drain()
                    continue
                worker, index = key.data
                selector.unregister(worker.sock)
                del self.running[id(worker)]
                self._receive(worker, index)

    def _dispatch(self, selector: selectors.BaseSelector) -> None:
        while self.queue:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return
            try:
                worker = self.pool.try_acquire()
            except OSError as exc:
                index = self.queue.popleft()
                self._fail(index, _add_note(exc, "starting a worker process failed"))
                continue
            if worker is None:
                return
            index = self.queue.popleft()
            try:
                parts = self._encode(index)
            except Exception as exc:
                self.pool.release(worker)
                self._fail(index, exc)
                continue
            try:
                worker.send(parts, self.deadline)
            except OSError:
                # The worker died while idle, or the deadline passed during
                # the send. The task never started, so it is tried once more.
                self.pool.retire(worker)
                if index in self.resent:
                    self._fail(index, self._died(worker, index))
                else:
                    self.resent.add(index)
                    self.queue.appendleft(index)
                continue
            self.running[id(worker)] = (worker, index)
            selector.register(worker.sock, selectors.EVENT_READ, (worker, index))

    def _encode(self, index: int) -> List[bytes]:
        f, args, kwargs = self.calls[index]
        f_bytes = self.pickled.get(id(f))
        if f_bytes is None:
            try:
                f_bytes = cloudpickle.dumps(f)
            except Exception as exc:
                raise _add_note(
                    exc,
                    f"the callable {f!r} could not be pickled to send it to a "
                    "worker process",
                )
            self.pickled[id(f)] = f_bytes
        try:
            call_bytes = cloudpickle.dumps((args, kwargs))
        except Exception as exc:
            raise _add_note(
                exc, "the task's arguments could not be pickled to send them "
                "to a worker process",
            )
        return [_LENGTH.pack(len(f_bytes)), f_bytes, call_bytes]

    def _receive(self, worker: _Worker, index: int) -> None:
        try:
            frame = worker.receive(self.deadline)
        except OSError:
            # A frame still arriving at the deadline, or a reset socket.
            frame = None
            if self.deadline is not None and time.monotonic() >= self.deadline:
                # The slot stays empty and times out with the rest.
                self.pool.retire(worker)
                return
        if frame is None:
            self._fail(index, self._died(worker, index))
            self.pool.retire(worker)
            return
        kind, body = frame
        self.pool.release(worker)
        if kind == _RESULT:
            try:
                self.results[index] = pickle.loads(body)
            except Exception as exc:
                self._fail(index, _add_note(
                    exc, "the task's result could not be unpickled in the "
                    "calling process",
                ))
            return
        exc = _decode_error(body)
        if isinstance(exc, KeyboardInterrupt):
            # As with threads, a KeyboardInterrupt raised in a task stops the
            # whole call.
            self.interrupt = exc
            return
        self._fail(index, exc)

    def _died(self, worker: _Worker, index: int) -> WorkerDiedError:
        code = worker.exit_code(1.0)
        if code is None:
            worker.kill()
            code = worker.exit_code(1.0)
        how = _describe_exit(code)
        logger.debug("worker process %d %s during task %d", worker.pid, how, index)
        return WorkerDiedError(
            f"worker process {worker.pid} {how} while running task {index}. "
            "The task crashed its process (for example a segfault in an "
            "extension, os._exit() or running out of memory), and a new "
            "worker replaces it",
            worker.pid,
            code,
        )

    def _fail(self, index: int, exc: BaseException) -> None:
        self.results[index] = TaskError(index, exc)
        logger.debug("task %d failed: %r", index, exc, exc_info=exc)

    def _expire(self) -> None:
        unfinished = sum(1 for result in self.results if result is _MISSING)
        message = (
            f"task did not finish within the {_seconds_text(self.timeout)} s "
            f"timeout ({unfinished} of {len(self.results)} tasks unfinished)"
        )
        if self.running:
            killed = len(self.running)
            message += f"; {killed} worker process(es) still running tasks were killed"
        error = TimeoutError(message)
        self._abandon_running()
        for index, result in enumerate(self.results):
            if result is _MISSING:
                self.results[index] = TaskError(index, error)
        self.queue.clear()
        logger.debug("%d task(s) timed out after %s s", unfinished, self.timeout)

    def _abandon_running(self) -> None:
        running = list(self.running.values())
        self.running.clear()
        for worker, _index in running:
            worker.kill()
        for worker, _index in running:
            # A killed process exits almost at once, so it is reaped here,
            # waiting at most 50 ms. One that takes longer is reaped later.
            worker.exit_code(0.05)
            self.pool.retire(worker, kill=False)


def run(calls: List[Call], timeout: Optional[float]) -> Tuple[Any, ...]:
    """Run ``calls`` in worker processes and return results in input order.

    Args:
        calls: One ``(callable, args, kwargs)`` triple per task.
        timeout: Seconds for the whole call, or None.

    Returns:
        A tuple with each task's result, or a ``TaskError`` in the slot of a
        task that raised, whose worker died, or that had not finished at the
        deadline (then the exception is a ``TimeoutError``).

    Raises:
        KeyboardInterrupt: On Ctrl-C while waiting, or when a task raised it;
            the batch's running workers are killed.
        RuntimeError: If the system is not POSIX or the interpreter is exiting.
    """
    result = _Batch(_get_pool(), calls, timeout).run()
    assert result is not None  # Only a cancelled batch returns None.
    return result


async def arun(calls: List[Call], timeout: Optional[float]) -> Tuple[Any, ...]:
    """Run ``calls`` like ``run``, waiting on a msgflux worker thread.

    Args:
        calls: One ``(callable, args, kwargs)`` triple per task.
        timeout: Seconds for the whole call, or None.

    Returns:
        The same tuple as ``run``.

    Raises:
        asyncio.CancelledError: If the awaiting task is cancelled; the
            batch's running workers are killed.
        KeyboardInterrupt: When a task raised it.
        RuntimeError: If the system is not POSIX or the interpreter is exiting.
    """
    from msgflux._aio import amap_gather

    batch = _Batch(_get_pool(), calls, timeout)
    try:
        (outcome,) = await amap_gather(batch.run, args_list=[()], backend="threads")
    except BaseException:
        batch.cancel()
        raise
    if isinstance(outcome, TaskError):
        raise outcome.exception
    return outcome
