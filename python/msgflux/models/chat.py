"""Chat completion models over the OpenAI-compatible HTTP API."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from msgflux.models import _http
from msgflux.models.errors import ModelResponseError
from msgflux.models.providers import normalize_base_url, split_model_path

logger = logging.getLogger(__name__)

__all__ = ["ChatCompletion", "ChatCompletionModel"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3

Messages = Union[str, Sequence[Mapping[str, Any]]]

# Request body fields that the model itself sets, or that this client cannot
# handle (a streamed response is not a single JSON document).
_RESERVED_OPTIONS = frozenset({"model", "messages", "stream"})


@dataclass(frozen=True)
class ChatCompletion:
    """The response to one chat completion request.

    Attributes:
        text: The reply text of the first choice (empty if it has none, as
            when the model only calls tools).
        model: The model name that the server reports.
        finish_reason: Why the model stopped, such as ``"stop"``, or None.
        usage: Token counts as the server reports them, or None.
        raw: The whole decoded response body.
    """

    text: str
    model: Optional[str]
    finish_reason: Optional[str]
    usage: Optional[Dict[str, Any]]
    raw: Dict[str, Any] = field(repr=False)

    def __str__(self) -> str:
        return self.text


def _check_messages(messages: Messages) -> List[Dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Sequence):
        raise TypeError(
            "messages must be a string or a list of {'role': ..., 'content': ...} "
            f"dicts, got {type(messages).__name__}"
        )
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise TypeError(
                f"messages[{index}] must be a dict with a 'role' key, such as "
                f"{{'role': 'user', 'content': 'hi'}}, got {type(message).__name__}"
            )
        checked.append(dict(message))
    if not checked:
        raise ValueError("messages is empty; pass at least one message")
    return checked


def _check_options(options: Mapping[str, Any]) -> None:
    bad = sorted(_RESERVED_OPTIONS.intersection(options))
    if bad:
        raise ValueError(
            f"request option {bad[0]!r} cannot be set here; the model path sets "
            "'model', the call sets 'messages', and streaming is not supported"
        )


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if math.isnan(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _check_max_retries(max_retries: Any) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    return max_retries


def _completion(label: str, body: Dict[str, Any]) -> ChatCompletion:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelResponseError(
            f"chat completion for {label!r} has no choices in its response; "
            f"the server returned keys {sorted(body)}"
        )
    first = choices[0]
    message = first.get("message")
    if not isinstance(message, dict):
        raise ModelResponseError(
            f"chat completion for {label!r} has no message in its first choice"
        )
    content = message.get("content")
    usage = body.get("usage")
    return ChatCompletion(
        text=content if isinstance(content, str) else "",
        model=body.get("model"),
        finish_reason=first.get("finish_reason"),
        usage=usage if isinstance(usage, dict) else None,
        raw=body,
    )


class ChatCompletionModel:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Create it with ``Model.chat_completion("provider/model", **options)``.
    Creating it needs no key and opens no connection. At each call the base
    URL and key are taken from the arguments given here, else from the
    provider's environment variables. All models share HTTP connections.

    ``model(messages)`` sends a request and returns a ``ChatCompletion``;
    ``await model.acall(messages)`` does the same without blocking the loop.
    Both are safe to call from many threads and tasks at once.

    Args:
        model_path: ``"provider/model"``, such as ``"openai/gpt-4.1-mini"``.
        api_key: The API key; default from the provider's variable.
        base_url: The API root, such as ``"http://127.0.0.1:8000/v1"``;
            default from the provider's variable or its public URL.
        timeout: Seconds allowed for each attempt (default 60).
        max_retries: Retries on HTTP 408, 429, 5xx, timeouts and connection
            errors (default 3).
        headers: Extra HTTP headers sent with every request.
        **options: Request body fields sent with every request, such as
            ``temperature`` or ``max_tokens``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If the path is invalid, the provider is unknown and no
            ``base_url`` is given, ``base_url`` is not an http(s) URL, or an
            option cannot be set.
    """

    def __init__(
        self,
        model_path: str,
        *,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Optional[Mapping[str, str]] = None,
        **options: Any,
    ) -> None:
        self._provider, self.model_name = split_model_path(model_path, bool(base_url))
        self.model_path = model_path
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string, got {type(api_key).__name__}")
        self._api_key = api_key or None
        self._base_url = normalize_base_url(base_url, "base_url=") if base_url else None
        self.timeout = _check_timeout(timeout)
        self.max_retries = _check_max_retries(max_retries)
        self._headers = dict(headers or {})
        _check_options(options)
        self.options = dict(options)

    def __repr__(self) -> str:
        return f"ChatCompletionModel({self.model_path!r})"

    @property
    def provider(self) -> str:
        """The provider name, the part of the model path before the first ``/``."""
        return self._provider.name

    def _request(self, messages: Messages, options: Mapping[str, Any]) -> _http.ChatRequest:
        checked = _check_messages(messages)
        _check_options(options)
        base_url = self._provider.base_url(self._base_url)
        api_key = self._provider.api_key(self._api_key, self.model_path)
        headers = {"User-Agent": "msgflux", **self._headers}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        body = {**self.options, **options, "model": self.model_name, "messages": checked}
        return _http.ChatRequest(
            url=f"{base_url}/chat/completions",
            headers=headers,
            body=body,
            timeout=self.timeout,
            max_retries=self.max_retries,
            label=self.model_path,
            api_key=api_key,
            api_key_env=self._provider.api_key_env,
        )

    def __call__(self, messages: Messages, **options: Any) -> ChatCompletion:
        """Send a chat completion request and wait for the response.

        Args:
            messages: A user message as a string, or a list of message dicts
                (``{"role": "system" | "user" | "assistant", "content": ...}``).
            **options: Request body fields for this call only; they override
                the ones given at creation.

        Returns:
            The response; ``.text`` is the reply text.

        Raises:
            ModelConfigError: If no API key or base URL is set.
            ModelHTTPError: On a 4xx response, or a 429/5xx once retries run out.
            ModelTimeoutError: If every attempt timed out.
            ModelConnectionError: If the server could not be reached.
            ModelResponseError: If the response is not a chat completion.
            TypeError: If ``messages`` has the wrong shape.
            ValueError: If ``messages`` is empty or an option cannot be set.
        """
        request = self._request(messages, options)
        return _completion(self.model_path, _http.send(request))

    async def acall(self, messages: Messages, **options: Any) -> ChatCompletion:
        """Send a chat completion request on the running event loop.

        The awaitable form of calling the model, with the same arguments,
        result and errors.

        Args:
            messages: A string, or a list of message dicts.
            **options: Request body fields for this call only.

        Returns:
            The response; ``.text`` is the reply text.

        Raises:
            ModelConfigError: If no API key or base URL is set.
            ModelHTTPError: On a 4xx response, or a 429/5xx once retries run out.
            ModelTimeoutError: If every attempt timed out.
            ModelConnectionError: If the server could not be reached.
            ModelResponseError: If the response is not a chat completion.
            TypeError: If ``messages`` has the wrong shape.
            ValueError: If ``messages`` is empty or an option cannot be set.
        """
        request = self._request(messages, options)
        return _completion(self.model_path, await _http.asend(request))
