"""Exceptions raised by model calls.

Every one derives from ``ModelError``. None of their messages contains an API
key: a key that the server echoes back is replaced with ``***``.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "ModelConfigError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelResponseError",
    "ModelTimeoutError",
]


class ModelError(Exception):
    """Base class of the errors that a model call raises."""


class ModelConfigError(ModelError, ValueError):
    """The model cannot send a request because a setting is missing or invalid.

    Raised at call time, for example when no API key is set, so that models
    can be created at import time before the environment is ready.
    """


class ModelHTTPError(ModelError):
    """The server responded with an HTTP error status.

    For 429 and 5xx responses it is raised only after the retries ran out.

    Attributes:
        status_code: The HTTP status code, such as 401 or 429.
        server_message: The error message from the response body, with any
            API key replaced by ``***``.
    """

    def __init__(self, message: str, status_code: int, server_message: Optional[str]) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message

    def __reduce__(self):
        return (type(self), (str(self), self.status_code, self.server_message))


class ModelConnectionError(ModelError, ConnectionError):
    """The request could not reach the server, after every retry."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The server did not respond within the request timeout, after every retry."""


class ModelResponseError(ModelError):
    """The server responded 2xx, but the body is not a chat completion."""
