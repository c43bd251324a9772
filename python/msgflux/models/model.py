"""``Model``: the factory of model objects."""

from __future__ import annotations

from typing import Any

from msgflux.models.chat import ChatCompletionModel

__all__ = ["Model"]


class Model:
    """Factory of models, one class method per kind of model.

    Example::

        model = Model.chat_completion("openai/gpt-4.1-mini", temperature=0)
        reply = model("Say hi").text
    """

    def __init__(self) -> None:
        raise TypeError(
            "Model is a factory and cannot be instantiated; call "
            "Model.chat_completion('provider/model') instead"
        )

    @classmethod
    def chat_completion(cls, model_path: str, **options: Any) -> ChatCompletionModel:
        """Create a chat model behind an OpenAI-compatible API.

        No key is needed to create it: the key and base URL are read at each
        call, from ``options`` or from the provider's environment variables
        (``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` for ``openai/``). Known
        providers are openai, groq, openrouter, together, ollama, vllm and
        llamacpp; any other name works together with ``base_url=``.

        Args:
            model_path: ``"provider/model"``, such as ``"openai/gpt-4.1-mini"``.
            **options: ``api_key``, ``base_url``, ``timeout`` (seconds per
                attempt, default 60), ``max_retries`` (default 3),
                ``headers``, and request body fields such as ``temperature``.

        Returns:
            A ``ChatCompletionModel``; ``model(messages).text`` is the reply.

        Raises:
            TypeError: If an option has the wrong type.
            ValueError: If the path is invalid or the provider unknown.
        """
        return ChatCompletionModel(model_path, **options)
