"""HTTP transport of model calls: shared httpx clients, retries and error mapping.

One ``httpx.Client`` serves every sync call in the process, so all models
share its connection pool. An ``httpx.AsyncClient`` is bound to the event
loop it first runs on, so async calls get one client per loop. That client is
closed when the loop shuts down its async generators, as ``asyncio.run`` does
before closing the loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import re
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Dict, Optional, Tuple

import httpx

from msgflux.models.errors import (
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
)

logger = logging.getLogger(__name__)

__all__ = ["ChatRequest", "asend", "retry_after_seconds", "retry_delay", "send"]

# Delay before retry n (from 0) is drawn from [c/2, c] with
# c = min(BACKOFF_MAX, BACKOFF_INITIAL * 2**n), in seconds.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
# Longest Retry-After honoured, in seconds; longer requests are cut to this.
RETRY_AFTER_MAX = 60.0
# Extra random wait on top of Retry-After, as a fraction of it, so that many
# clients given the same Retry-After do not all come back at once.
RETRY_AFTER_JITTER = 0.1

# Connections shared by all calls; a call waits for a free connection for as
# long as its request timeout.
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)

_RETRY_STATUSES = frozenset({408, 429})

_sync_client: Optional[httpx.Client] = None
_sync_lock = threading.Lock()

# Per event loop: (client, the async generator that closes it with the loop).
_async_clients: "weakref.WeakKeyDictionary[Any, Tuple[httpx.AsyncClient, Any]]"
_async_clients = weakref.WeakKeyDictionary()
_async_lock = threading.Lock()


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request, ready to send.

    Attributes:
        url: The full endpoint URL.
        headers: Request headers, the ``Authorization`` header included.
        body: The JSON body.
        timeout: Seconds allowed for each attempt.
        max_retries: Retries after the first attempt.
        label: The model path, used in messages and logs.
        api_key: The key sent, kept only to scrub it from server messages.
        api_key_env: The variable the key came from, for error hints.
    """

    url: str
    headers: Dict[str, str]
    body: Dict[str, Any]
    timeout: float
    max_retries: int
    label: str
    api_key: Optional[str]
    api_key_env: Optional[str]

    def __repr__(self) -> str:
        # The headers hold the key, so they stay out of the repr.
        return f"ChatRequest(url={self.url!r}, label={self.label!r})"


def _forget_clients() -> None:
    # A forked child must not reuse the parent's sockets.
    global _sync_client, _sync_lock, _async_lock
    _sync_client = None
    _sync_lock = threading.Lock()
    _async_clients.clear()
    _async_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_clients)


def sync_client() -> httpx.Client:
    """Return the process-wide sync client, creating it on first use."""
    global _sync_client
    client = _sync_client
    if client is None:
        with _sync_lock:
            if _sync_client is None:
                # NOTE: never closed; its sockets close when the process exits.
                _sync_client = httpx.Client(limits=LIMITS)
            client = _sync_client
    return client


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncIterator[None]:
    # The loop's shutdown_asyncgens() finalizes this generator on the loop,
    # which is the last moment the client's connections can close cleanly.
    try:
        yield
    finally:
        with _async_lock:
            for loop, (stored, _) in list(_async_clients.items()):
                if stored is client:
                    del _async_clients[loop]
        await client.aclose()


async def async_client() -> httpx.AsyncClient:
    """Return the client of the running event loop, creating it on first use."""
    loop = asyncio.get_running_loop()
    with _async_lock:
        entry = _async_clients.get(loop)
    if entry is not None:
        return entry[0]
    # NOTE: a loop closed without shutdown_asyncgens() (loop.close() alone)
    # leaves this client open until the loop is garbage collected.
    client = httpx.AsyncClient(limits=LIMITS)
    closer = _close_with_loop(client)
    with _async_lock:
        _async_clients[loop] = (client, closer)
    # No await between the lookup and the store, so no other coroutine of
    # this loop can create a second client. This first step registers the
    # generator with the loop.
    await closer.__anext__()
    return client


def retry_after_seconds(headers: httpx.Headers) -> Optional[float]:
    """Read the wait a server asked for, in seconds, or None.

    ``retry-after-ms`` (sent by OpenAI) wins over ``Retry-After``, which may
    be a number of seconds or an HTTP date.
    """
    text = headers.get("retry-after-ms")
    if text:
        try:
            seconds = float(text) / 1000
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return max(0.0, seconds)
    text = headers.get("retry-after")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_delay(attempt: int, retry_after: Optional[float]) -> float:
    """Seconds to wait before retry ``attempt`` (counted from 0).

    Args:
        attempt: How many retries came before this one.
        retry_after: The server's Retry-After in seconds, or None.

    Returns:
        ``retry_after`` (at most ``RETRY_AFTER_MAX``) plus up to 10 % jitter
        if the server sent it, else an exponential backoff with jitter.
    """
    if retry_after is not None:
        base = min(retry_after, RETRY_AFTER_MAX)
        return base + random.uniform(0, base * RETRY_AFTER_JITTER)
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def _scrub(text: str, api_key: Optional[str]) -> str:
    if not api_key or api_key not in text:
        return text
    if len(api_key) >= 8:
        return text.replace(api_key, "***")
    # A short key (a placeholder for a local server, say) is replaced only
    # as a whole token, so that "k" does not garble every word with a k.
    pattern = rf"(?<![\w-]){re.escape(api_key)}(?![\w-])"
    return re.sub(pattern, "***", text)


def _server_message(response: httpx.Response) -> Optional[str]:
    """Find the error message in an error body: OpenAI's, FastAPI's or plain text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def _status_hint(request: ChatRequest, status: int) -> str:
    if status in (401, 403):
        where = f"{request.api_key_env} or api_key=" if request.api_key_env else "api_key="
        return f"check the API key ({where})"
    if status == 404:
        return "check the model name and the base URL"
    if status in (400, 422):
        return "check the messages and the request options"
    if status == 429:
        return "the server is rate limiting; lower the concurrency or retry later"
    if status >= 500:
        return "the server failed; retry later"
    return "see the server message"


def _status_failure(request: ChatRequest, response: httpx.Response) -> Tuple[ModelError, bool, Optional[float]]:
    status = response.status_code
    message = _server_message(response)
    if message is not None:
        message = _scrub(message, request.api_key)
    error = ModelHTTPError(
        f"chat completion for {request.label!r} failed with HTTP {status}: "
        f"{message or response.reason_phrase}; {_status_hint(request, status)}",
        status,
        message,
    )
    retryable = status in _RETRY_STATUSES or status >= 500
    return error, retryable, retry_after_seconds(response.headers)


def _transport_failure(request: ChatRequest, exc: httpx.TransportError) -> Tuple[ModelError, bool]:
    error: ModelError
    if isinstance(exc, httpx.TimeoutException):
        error = ModelTimeoutError(
            f"chat completion for {request.label!r} timed out after {request.timeout:g} s "
            f"({type(exc).__name__}); pass a larger timeout= or check the server at "
            f"{request.url}"
        )
        retryable = True
    elif isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
        error = ModelConnectionError(
            f"chat completion for {request.label!r} could not reach {request.url}: "
            f"{type(exc).__name__}: {exc}; check that the server runs and the base URL is right"
        )
        retryable = True
    else:
        error = ModelConnectionError(
            f"chat completion for {request.label!r} could not be sent to {request.url}: "
            f"{type(exc).__name__}: {exc}; check the base URL"
        )
        retryable = False
    error.__cause__ = exc
    return error, retryable


def _parse(request: ChatRequest, response: httpx.Response) -> Dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ModelResponseError(
            f"chat completion for {request.label!r} returned HTTP "
            f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}"
        ) from None
    if not isinstance(body, dict):
        raise ModelResponseError(
            f"chat completion for {request.label!r} returned a JSON "
            f"{type(body).__name__}, not an object"
        )
    return body


def _log_retry(request: ChatRequest, attempt: int, delay: float, error: ModelError) -> None:
    reason = (
        f"HTTP {error.status_code}" if isinstance(error, ModelHTTPError)
        else type(error.__cause__ or error).__name__
    )
    logger.info(
        "retrying chat completion for %r in %.2f s after %s (retry %d of %d)",
        request.label, delay, reason, attempt + 1, request.max_retries,
    )


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


async def _async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def send(request: ChatRequest) -> Dict[str, Any]:
    """Send ``request`` with retries and return the decoded JSON body.

    Retries on HTTP 408, 429 and 5xx, timeouts and connection errors, up to
    ``request.max_retries`` times, with ``retry_delay`` seconds between attempts.

    Args:
        request: The request to send.

    Returns:
        The response body of the first 2xx response.

    Raises:
        ModelHTTPError: On a 4xx response other than 408 and 429, or when the
            retries run out on an HTTP error.
        ModelTimeoutError: When the retries run out on timeouts.
        ModelConnectionError: When the retries run out on connection errors,
            or at once for an invalid URL.
        ModelResponseError: If a 2xx body is not a JSON object.
    """
    client = sync_client()
    attempt = 0
    while True:
        retry_after = None
        try:
            response = client.post(
                request.url, json=request.body, headers=request.headers,
                timeout=request.timeout,
            )
        except httpx.TransportError as exc:
            error, retryable = _transport_failure(request, exc)
        else:
            if response.is_success:
                return _parse(request, response)
            error, retryable, retry_after = _status_failure(request, response)
        if not retryable or attempt >= request.max_retries:
            raise error
        delay = retry_delay(attempt, retry_after)
        _log_retry(request, attempt, delay, error)
        _sleep(delay)
        attempt += 1


async def asend(request: ChatRequest) -> Dict[str, Any]:
    """Send ``request`` with retries on the running event loop.

    The awaitable form of ``send``, with the same retries, result and errors.

    Args:
        request: The request to send.

    Returns:
        The response body of the first 2xx response.

    Raises:
        ModelHTTPError: As for ``send``.
        ModelTimeoutError: As for ``send``.
        ModelConnectionError: As for ``send``.
        ModelResponseError: As for ``send``.
    """
    client = await async_client()
    attempt = 0
    while True:
        retry_after = None
        try:
            response = await client.post(
                request.url, json=request.body, headers=request.headers,
                timeout=request.timeout,
            )
        except httpx.TransportError as exc:
            error, retryable = _transport_failure(request, exc)
        else:
            if response.is_success:
                return _parse(request, response)
            error, retryable, retry_after = _status_failure(request, response)
        if not retryable or attempt >= request.max_retries:
            raise error
        delay = retry_delay(attempt, retry_after)
        _log_retry(request, attempt, delay, error)
        await _async_sleep(delay)
        attempt += 1
