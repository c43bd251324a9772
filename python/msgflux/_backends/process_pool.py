"""Worker processes of the ``"processes"`` backend and the pool sharing them.

Each worker is a fresh interpreter started with ``subprocess.Popen`` and
holding one end of a socket pair. The pool lives for the whole process,
starts workers on demand up to its size and replaces those that die or are
killed, one slot each.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Set, Tuple

from msgflux._backends.process_worker import (
    _BOOT,
    _PATH_ENV,
    _TASK,
    _recv_frame,
    _send_frame,
)

logger = logging.getLogger(__name__)

_SIZE_ENV = "MSGFLUX_PROCESS_WORKERS"

# How long exit waits for idle workers to leave on their own.
_EXIT_GRACE = 2.0


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
        # The worker writes a whole frame at once, so the floor only matters
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
                pass  # Already gone, and wait() reaps it.

    def close(self) -> None:
        """Ask the worker to leave: it exits when it reads end of file."""
        self.sock.close()


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
                f"invalid {_SIZE_ENV} {text!r}: set it to a whole number of "
                "processes, 1 or more"
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
        """Return an idle or new worker, or None when every slot is taken."""
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
        """Stop every worker, giving idle ones ``grace`` seconds to exit."""
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
    """Set the maximum number of worker processes alive at once; see
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
