"""Models that msgflux agents call: chat completions over OpenAI-compatible APIs."""

from msgflux.models.chat import ChatCompletion, ChatCompletionModel
from msgflux.models.errors import (
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
)
from msgflux.models.model import Model

__all__ = [
    "ChatCompletion",
    "ChatCompletionModel",
    "Model",
    "ModelConfigError",
    "ModelConnectionError",
    "ModelError",
    "ModelHTTPError",
    "ModelResponseError",
    "ModelTimeoutError",
]
