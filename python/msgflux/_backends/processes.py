"""The ``"processes"`` backend: tasks in reusable worker processes.

Threads cannot run pure-Python CPU work in parallel under the GIL; worker
processes can. Each worker is a fresh interpreter started with
``subprocess.Popen`` (fork and exec, never a bare fork), so it inherits none
of the caller's threads or the locks they hold: the Rust worker pool and the
background event loops make a bare ``fork`` unsafe, and ``multiprocessing``'s
spawn re-imports the caller's ``__main__`` in every child, which breaks
scripts without an ``if __name__ == "__main__"`` guard. The cost is one
interpreter start per worker, paid once, since workers are reused.

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
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import inspect
import json
import logging
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Tuple

import cloudpickle

from msgflux import TaskError

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

# A frame is a kind byte, the body length and the body.
_HEADER = struct.Struct("!BQ")
_LENGTH = struct.Struct("!Q")
_TASK = 1
_RESULT = 2
_ERROR = 3

# Bodies up to this size go out in one write with their header.
_JOIN_LIMIT = 1 << 20

_PATH_ENV = "MSGFLUX_WORKER_SYS_PATH"
_SIZE_ENV = "MSGFLUX_PROCESS_WORKERS"

# The worker's first lines run before msgflux can be imported: they give it
# the caller's sys.path, so modules the caller can import resolve alike.
_BOOT = (
    "import json, os, sys\n"
    f"sys.path[:] = json.loads(os.environ.pop({_PATH_ENV!r}))\n"
    "from msgflux._backends.processes import _worker_main\n"
    "_worker_main(int(sys.argv[1]))\n"
)

# How long exit waits for idle workers to leave on their own.
_EXIT_GRACE = 2.0

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
# Framing, shared by both ends.


def _send_frame(sock: socket.socket, kind: int, parts: Sequence[bytes]) -> None:
    size = sum(len(part) for part in parts)
    header = _HEADER.pack(kind, size)
    if size <= _JOIN_LIMIT:
        sock.sendall(b"".join([header, *parts]))
        return
    sock.sendall(header)
    for part in parts:
        sock.sendall(part)


def _recv_exact(sock: socket.socket, size: int) -> Optional[bytearray]:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            return None
        received += count
    return buffer


def _recv_frame(sock: socket.socket) -> Optional[Tuple[int, bytearray]]:
    """Read one frame; None when the other end closed its socket."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    body = _recv_exact(sock, size)
    if body is None:
        return None
    return kind, body


# ---------------------------------------------------------------------------
# The worker process.


def _worker_main(fd: int) -> None:
    """Serve tasks on socket ``fd`` until the caller closes it."""
    # Ctrl-C in a terminal reaches the whole process group; the caller
    # decides what happens to running tasks, so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    sock = socket.socket(fileno=fd)
    _watch_parent(os.getppid())

    from msgflux import _backends

    # A gather inside a task runs on threads unless it names a backend,
    # whatever MSGFLUX_BACKEND says: workers must not start pools of their own.
    with _backends.backend("threads"):
        _serve(sock)
    sock.close()


def _watch_parent(parent: int) -> None:
    # A worker stuck in a task would outlive a caller that was killed; this
    # thread ends it once the caller is gone (the worker is re-parented).
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="msgflux-parent-watch", daemon=True).start()


def _serve(sock: socket.socket) -> None:
    cached_key: Optional[bytes] = None
    cached_f: Any = None
    while True:
        frame = _recv_frame(sock)
        if frame is None:
            return
        _kind, body = frame
        (f_size,) = _LENGTH.unpack_from(body)
        f_bytes = bytes(body[_LENGTH.size : _LENGTH.size + f_size])
        call_bytes = body[_LENGTH.size + f_size :]
        del body
        try:
            if f_bytes != cached_key:
                cached_f = None
                cached_f = cloudpickle.loads(f_bytes)
                cached_key = f_bytes
            args, kwargs = cloudpickle.loads(call_bytes)
            del call_bytes
            kind, payload = _RESULT, _encode_result(_call(cached_f, args, kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back
            kind, payload = _ERROR, _encode_error(exc)
        try:
            _send_frame(sock, kind, [payload])
        except OSError:
            return  # The caller is gone or killed this batch.


def _call(f: Any, args: tuple, kwargs: dict) -> Any:
    result = f(*args, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _encode_result(value: Any) -> bytes:
    try:
        return cloudpickle.dumps(value)
    except Exception as exc:
        raise TypeError(
            f"the task returned a {type(value).__name__} that cannot be pickled "
            f"({exc}); return a picklable value from tasks run on processes"
        ) from exc


def _encode_error(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        exc_bytes: Optional[bytes] = cloudpickle.dumps(exc)
    except Exception:
        exc_bytes = None
    try:
        message = str(exc)
    except Exception:
        message = "<str() of the exception failed>"
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return cloudpickle.dumps((exc_bytes, kind, message, text, os.getpid()))


# ---------------------------------------------------------------------------
# The caller's side: workers and the pool.


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class _Worker:
    """One worker process and the caller's end of its socket."""

    __slots__ = ("proc", "sock")

    def __init__(self, proc: subprocess.Popen, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock

    @classmethod
    def start(cls) -> "_Worker":
        if not sys.executable:
            raise RuntimeError(
                "the 'processes' backend cannot start workers: sys.executable "
                "is empty, so there is no Python interpreter to run"
            )
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env[_PATH_ENV] = json.dumps(sys.path)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            # Only the worker may hold this end, or its death would not
            # show as end of file.
            theirs.close()
        logger.debug("started worker process %d", proc.pid)
        return cls(proc, ours)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, parts: Sequence[bytes], deadline: Optional[float]) -> None:
        self.sock.settimeout(_remaining(deadline, floor=0.001))
        _send_frame(self.sock, _TASK, parts)

    def receive(self, deadline: Optional[float]) -> Optional[Tuple[int, bytearray]]:
        # The worker writes a whole frame at once; the floor only matters
        # when a large frame is still arriving at the deadline.
        self.sock.settimeout(_remaining(deadline, floor=0.005))
        return _recv_frame(self.sock)

    def exit_code(self, wait: float) -> Optional[int]:
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.sock.close()
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except OSError:
                pass  # Already gone; wait() reaps it.

    def close(self) -> None:
        """Ask the worker to leave: it exits when it reads end of file."""
        self.sock.close()


def _seconds_text(seconds: Optional[float]) -> str:
    # Written as the thread pool writes it: "2", not "2.0".
    if seconds is not None and float(seconds).is_integer():
        return str(int(seconds))
    return str(seconds)


def _remaining(deadline: Optional[float], floor: float) -> Optional[float]:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), floor)


class _Waker:
    """Wakes a batch blocked in ``select`` from another thread."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)

    def wake(self) -> None:
        try:
            self.writer.send(b"\0")
        except OSError:
            pass  # The buffer is full (a wake-up is pending) or it is closed.

    def drain(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def _default_size() -> int:
    text = os.environ.get(_SIZE_ENV, "").strip()
    if text:
        try:
            size = int(text)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(
                f"{_SIZE_ENV} must be a whole number of processes, 1 or more, "
                f"got {text!r}"
            )
        return size
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return max(1, count or 1)


class _Pool:
    """Worker processes shared by every batch in this process.

    ``count`` covers every worker started and not yet retired: idle, busy
    or still starting. A batch that finds no idle worker and no room waits
    on its waker, which ``release`` and ``retire`` poke.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.closed = False
        self.lock = threading.Lock()
        self.idle: List[_Worker] = []
        self.busy: Set[_Worker] = set()
        self.dying: List[_Worker] = []
        self.wakers: Set[_Waker] = set()

    def try_acquire(self) -> Optional[_Worker]:
        """An idle or new worker, or None when every slot is taken."""
        if self.dying:
            self._reap()
        while True:
            with self.lock:
                if self.closed:
                    raise RuntimeError(
                        "the 'processes' backend is shut down because the "
                        "interpreter is exiting; no new task can start"
                    )
                if self.idle:
                    worker = self.idle.pop()
                elif self.count < self.size:
                    self.count += 1
                    worker = None
                else:
                    return None
            if worker is None:
                return self._start()
            if worker.proc.poll() is None:
                with self.lock:
                    self.busy.add(worker)
                return worker
            logger.debug(
                "idle worker process %d %s; dropping it",
                worker.pid, _describe_exit(worker.proc.returncode),
            )
            self.retire(worker)

    def _start(self) -> _Worker:
        try:
            worker = _Worker.start()
        except BaseException:
            with self.lock:
                self.count -= 1
            self._wake()
            raise
        with self.lock:
            self.busy.add(worker)
        return worker

    def release(self, worker: _Worker) -> None:
        """Return a worker whose task finished cleanly."""
        with self.lock:
            self.busy.discard(worker)
            keep = not self.closed and self.count <= self.size
            if keep:
                self.idle.append(worker)
            else:
                self.count -= 1
                self.dying.append(worker)
        if not keep:
            worker.close()
        self._wake()

    def retire(self, worker: _Worker, kill: bool = True) -> None:
        """Stop a worker that died or was abandoned, freeing its slot."""
        if kill:
            worker.kill()
        else:
            worker.close()
        with self.lock:
            self.busy.discard(worker)
            self.count -= 1
            self.dying.append(worker)
        self._wake()

    def resize(self, size: int) -> None:
        with self.lock:
            self.size = size
            extra = max(0, self.count - size)
            surplus = self.idle[:extra]
            del self.idle[:extra]
            self.count -= len(surplus)
            self.dying.extend(surplus)
        for worker in surplus:
            worker.close()
        self._wake()

    def _reap(self) -> None:
        with self.lock:
            dying, self.dying = self.dying, []
        alive = [worker for worker in dying if worker.proc.poll() is None]
        if alive:
            with self.lock:
                self.dying.extend(alive)

    def _wake(self) -> None:
        with self.lock:
            wakers = list(self.wakers)
        for waker in wakers:
            waker.wake()

    def add_waker(self, waker: _Waker) -> None:
        with self.lock:
            self.wakers.add(waker)

    def remove_waker(self, waker: _Waker) -> None:
        with self.lock:
            self.wakers.discard(waker)

    def stats(self) -> Dict[str, int]:
        with self.lock:
            return {
                "max_workers": self.size,
                "workers": self.count,
                "idle": len(self.idle),
            }

    def shutdown(self, grace: float) -> None:
        """Stop every worker: idle ones get ``grace`` seconds to leave."""
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
            busy = list(self.busy)
            self.busy.clear()
            dying, self.dying = self.dying, []
            self.count = 0
        for worker in idle:
            worker.close()
        for worker in busy:
            worker.kill()
        deadline = time.monotonic() + grace
        for worker in idle + busy + dying:
            if worker.exit_code(max(0.0, deadline - time.monotonic())) is None:
                worker.kill()
                if worker.exit_code(1.0) is None:
                    logger.warning(
                        "worker process %d did not exit after SIGKILL", worker.pid
                    )


_pool: Optional[_Pool] = None
_pool_lock = threading.Lock()
_size: Optional[int] = None

# Pools inherited through os.fork(): their workers belong to the parent.
_inherited: List[_Pool] = []


def _get_pool() -> _Pool:
    global _pool
    pool = _pool
    if pool is not None:
        return pool
    if os.name != "posix":
        # NOTE: workers receive their socket through pass_fds, which only
        # POSIX systems offer.
        raise RuntimeError(
            "the 'processes' backend needs a POSIX system (Linux or macOS); "
            "use the 'threads' or 'dask' backend here"
        )
    with _pool_lock:
        if _pool is None:
            _pool = _Pool(_size if _size is not None else _default_size())
        return _pool


def configure(*, max_workers: Optional[int] = None) -> Dict[str, int]:
    """Set the most worker processes alive at once; see
    ``msgflux._backends.configure_processes``."""
    global _size
    if max_workers is not None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(
                f"max_workers must be an int, got {type(max_workers).__name__}"
            )
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        with _pool_lock:
            _size = max_workers
            pool = _pool
        if pool is not None:
            pool.resize(max_workers)
    pool = _pool
    if pool is not None:
        return pool.stats()
    size = _size if _size is not None else _default_size()
    return {"max_workers": size, "workers": 0, "idle": 0}


def shutdown() -> None:
    """Stop every worker process; called at interpreter exit."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(_EXIT_GRACE)


def _forget_after_fork() -> None:
    global _pool, _pool_lock
    if _pool is not None:
        for worker in _pool.idle + list(_pool.busy):
            worker.sock.close()
        # NOTE: the Popen objects are kept, never waited on: the workers are
        # the parent's children, and dropping them would warn that they
        # still run.
        _inherited.append(_pool)
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# ---------------------------------------------------------------------------
# One gather's tasks.


class _Cancelled(Exception):
    """The awaiting coroutine was cancelled; the batch stops."""


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
            f"the task raised {kind}: {message}; that exception could not be "
            f"sent back from the worker process ({reason})"
        )
    exc.__cause__ = RemoteTraceback(f"\nin worker process {pid}:\n{text}")
    return exc


class _Batch:
    """Runs one gather's calls on the pool, in the calling thread."""

    def __init__(self, pool: _Pool, calls: List[Call], timeout: Optional[float]) -> None:
        self.pool = pool
        self.calls = calls
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.results: List[Any] = [_MISSING] * len(calls)
        self.queue: Deque[int] = collections.deque(range(len(calls)))
        self.resent: Set[int] = set()
        self.running: Dict[int, Tuple[_Worker, int]] = {}
        self.pickled: Dict[int, bytes] = {}
        self.waker = _Waker()
        self.waiting = False
        self.cancelled = False
        self.interrupt: Optional[BaseException] = None

    def cancel(self) -> None:
        """Stop the batch from another thread; its running workers are killed."""
        self.cancelled = True
        self.waker.wake()

    def run(self) -> Optional[Tuple[Any, ...]]:
        """Run to completion or to the deadline; None if cancelled."""
        selector = selectors.DefaultSelector()
        selector.register(self.waker.reader, selectors.EVENT_READ, None)
        try:
            self._loop(selector)
        except _Cancelled:
            self._abandon_running()
            return None
        except BaseException:
            self._abandon_running()
            raise
        finally:
            self.pool.remove_waker(self.waker)
            selector.close()
            self.waker.close()
        return tuple(self.results)

    def _loop(self, selector: selectors.BaseSelector) -> None:
        while True:
            if self.cancelled:
                raise _Cancelled()
            if self.interrupt is not None:
                raise self.interrupt
            if self.queue and not self.waiting:
                # Registered before looking for a worker, so a release
                # between the look and the select still wakes us.
                self.pool.add_waker(self.waker)
                self.waiting = True
            self._dispatch(selector)
            if not self.queue and self.waiting:
                self.pool.remove_waker(self.waker)
                self.waiting = False
            if not self.queue and not self.running:
                return
            wait = _remaining(self.deadline, floor=0.0)
            if wait is not None and wait <= 0:
                self._expire()
                return
            for key, _events in selector.select(wait):
                if key.data is None:
                    self.waker.drain()
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
                # The worker died while idle, or the deadline came mid-send.
                # Either way the task never started: try it once more.
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
            # As with threads: Ctrl-C raised in a task stops the whole call.
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
            f"the worker process {worker.pid} running task {index} {how}; "
            "a crash in the task itself (a segfault in an extension, "
            "os._exit(), running out of memory) ends its process. A new "
            "worker takes its place",
            worker.pid,
            code,
        )

    def _fail(self, index: int, exc: BaseException) -> None:
        self.results[index] = TaskError(index, exc)
        logger.debug("task %d failed: %r", index, exc, exc_info=exc)

    def _expire(self) -> None:
        unfinished = sum(1 for result in self.results if result is _MISSING)
        error = TimeoutError(
            f"task did not finish within the {_seconds_text(self.timeout)} s timeout "
            f"({unfinished} of {len(self.results)} tasks unfinished); the "
            "worker processes still running them were killed"
        )
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
            # SIGKILL ends a process within microseconds; reaping it here
            # keeps the slot honest. One that lingers is reaped later.
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
    """Awaitable ``run``: the waiting happens on a msgflux worker thread.

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
