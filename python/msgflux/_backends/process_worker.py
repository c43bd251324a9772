"""The worker process of the ``"processes"`` backend, and the frames that
travel between it and the caller over their socket pair.

A frame is a kind byte, the body length and the body. A task's body
contains the pickled callable and, separately, its pickled arguments, so a
worker that gets the same callable again reuses the object it unpickled last.
"""

from __future__ import annotations

import asyncio
import faulthandler
import inspect
import os
import signal
import socket
import struct
import threading
import time
import traceback
from typing import Any, Optional, Sequence, Tuple

import cloudpickle

# A frame is a kind byte, the body length and the body.
_HEADER = struct.Struct("!BQ")
_LENGTH = struct.Struct("!Q")
_TASK = 1
_RESULT = 2
_ERROR = 3

# Bodies up to this size go out in one write with their header.
_JOIN_LIMIT = 1 << 20

_PATH_ENV = "MSGFLUX_WORKER_SYS_PATH"

# The worker's first lines run before msgflux can be imported: they give it
# the caller's sys.path, so modules the caller can import resolve alike.
_BOOT = (
    "import json, os, sys\n"
    f"sys.path[:] = json.loads(os.environ.pop({_PATH_ENV!r}))\n"
    "from msgflux._backends.process_worker import _worker_main\n"
    "_worker_main(int(sys.argv[1]))\n"
)


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
    """Read one frame, or return None when the other end closed its socket."""
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
    # Ctrl-C in a terminal reaches the whole process group, but the caller
    # decides what happens to running tasks, so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    sock = socket.socket(fileno=fd)
    _watch_parent(os.getppid())

    from msgflux import _backends

    # A gather inside a task runs on threads unless it names a backend,
    # whatever MSGFLUX_BACKEND is set to, because workers must not start
    # pools of their own.
    with _backends.backend("threads"):
        _serve(sock)
    sock.close()


def _watch_parent(parent: int) -> None:
    # A worker stuck in a task would outlive a caller that was killed. This
    # thread ends the worker once it is re-parented, as the caller is gone.
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
