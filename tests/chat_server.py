"""A small OpenAI-compatible chat completions server for tests, on 127.0.0.1.

It responds to ``POST /v1/chat/completions`` with the JSON shape of the OpenAI
API and records every request. Tests can queue failures (HTTP 429 or 500,
with or without ``Retry-After``), hold responses until released, require an
API key, and choose the reply text.

Use the ``chat_server`` fixture, imported into a test module with
``from chat_server import chat_server``.
"""

from __future__ import annotations

import collections
import itertools
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Set

import pytest

Responder = Callable[[Dict[str, Any]], str]


def echo_reply(body: Dict[str, Any]) -> str:
    """Reply with the system and the last user message, so tests can see both."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    user = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return f"[{system}] {user[-1] if user else ''}"


@dataclass
class Failure:
    """One queued error response."""

    status: int
    retry_after: Optional[str] = None
    message: str = "simulated failure"


@dataclass
class RecordedRequest:
    """A request as the server received it, with lowercase header names."""

    path: str
    headers: Dict[str, str]
    body: Any
    client_port: int


@dataclass
class _State:
    responder: Responder = echo_reply
    api_key: Optional[str] = None
    failures: Deque[Failure] = field(default_factory=collections.deque)
    hold: Optional[threading.Event] = None
    requests: List[RecordedRequest] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    ids: Any = field(default_factory=lambda: itertools.count(1))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Keep test output clean; the test reads requests from the server.

    def _send_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, headers=None) -> None:
        self._send_json(
            status, {"error": {"message": message, "type": kind, "code": None}}, headers
        )

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with state.arrived:
            headers = {name.lower(): value for name, value in self.headers.items()}
            record = RecordedRequest(self.path, headers, body, self.client_address[1])
            state.requests.append(record)
            state.arrived.notify_all()

        if self.path != "/v1/chat/completions":
            self._error(404, f"unknown path {self.path}", "invalid_request_error")
            return
        if state.api_key is not None:
            sent = self.headers.get("Authorization", "")
            if sent != f"Bearer {state.api_key}":
                # Echo the key as some servers do, so tests can check that the
                # client keeps it out of its errors.
                sent_key = sent.removeprefix("Bearer ")
                self._error(401, f"Incorrect API key provided: {sent_key}", "invalid_api_key")
                return
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            self._error(400, "body must be a JSON object with model and messages", "invalid_request_error")
            return
        if state.hold is not None:
            state.hold.wait(30)
        try:
            failure = state.failures.popleft()
        except IndexError:
            failure = None
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
            kind = "rate_limit_error" if failure.status == 429 else "server_error"
            self._error(failure.status, failure.message, kind, headers)
            return

        text = state.responder(body)
        self._send_json(200, {
            "id": f"chatcmpl-{next(state.ids)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many tests open 200 connections at once; the default backlog of 5
    # would make the kernel drop connection attempts.
    request_queue_size = 512

    def __init__(self, state: _State) -> None:
        self.state = state
        self.connections: Set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its end before a held response is
        # written. That is expected in timeout tests; other errors still print.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Handler threads of keep-alive connections wait for the next request;
        # shutting their sockets down ends those threads.
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ChatServer:
    """Controls one running test server.

    Attributes:
        base_url: The API root to pass as ``base_url`` or ``OPENAI_BASE_URL``.
        requests: Every request received, in arrival order.
    """

    def __init__(self) -> None:
        self._state = _State()
        self._server = _Server(self._state)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}/v1"
        # A short poll interval makes stop() quick: shutdown() waits for it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="chat-server", daemon=True
        )

    def start(self) -> "ChatServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(10)

    @property
    def requests(self) -> List[RecordedRequest]:
        with self._state.arrived:
            return list(self._state.requests)

    def set_responder(self, responder: Responder) -> None:
        """Reply with ``responder(request_body)`` from now on."""
        self._state.responder = responder

    def require_api_key(self, key: str) -> None:
        """Answer 401, echoing the key sent, unless ``Authorization`` carries ``key``."""
        self._state.api_key = key

    def fail_next(self, status: int, count: int = 1, retry_after: Optional[str] = None) -> None:
        """Answer the next ``count`` valid requests with HTTP ``status``."""
        for _ in range(count):
            self._state.failures.append(Failure(status, retry_after))

    def hold(self) -> threading.Event:
        """Hold every response until the returned event is set (at most 30 s)."""
        event = threading.Event()
        self._state.hold = event
        return event

    def release(self) -> None:
        """Let held responses go and stop holding new ones."""
        hold, self._state.hold = self._state.hold, None
        if hold is not None:
            hold.set()

    def wait_for_requests(self, count: int, timeout: float = 10) -> bool:
        """Wait until at least ``count`` requests arrived; return whether they did."""
        with self._state.arrived:
            return self._state.arrived.wait_for(
                lambda: len(self._state.requests) >= count, timeout
            )


@pytest.fixture
def chat_server():
    """A running ``ChatServer`` on 127.0.0.1, stopped after the test."""
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_env(chat_server, monkeypatch):
    """Point the ``openai/`` provider at ``chat_server`` through its variables."""
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return chat_server
