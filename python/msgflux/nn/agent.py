"""``Agent``: a module that sends text to a chat model and returns its reply."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from msgflux.nn.modules import Module

logger = logging.getLogger(__name__)

__all__ = ["Agent"]

Message = Union[str, Sequence[Mapping[str, Any]]]


class Agent(Module):
    """A module that sends its instructions and the input to a chat model.

    Subclasses set the model and the instructions as class attributes::

        class Classifier(nn.Agent):
            model = mf.Model.chat_completion("openai/gpt-4.1-mini")
            instructions = "Classify the sentiment. Reply with one word."

        Classifier()("This product is amazing!")  # -> "positive"

    ``agent(text)`` returns the reply text; ``await agent.acall(text)`` does
    the same through the model's async path. The instructions go first, as a
    system message. An agent keeps no per-call state, so one instance can
    serve every task of a gather at once.

    Attributes:
        model: The chat model, such as ``Model.chat_completion(...)``; any
            object whose call returns an object with a ``text`` attribute
            works. An ``acall`` method is used for async calls if present.
        instructions: The system prompt, or None for none.

    Args:
        model: Replaces the class attribute ``model`` for this instance.
        instructions: Replaces the class attribute ``instructions``.
        name: A readable name for logs; defaults to the class name.
    """

    model: Any = None
    instructions: Optional[str] = None

    def __init__(
        self,
        *,
        model: Any = None,
        instructions: Optional[str] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        if model is not None:
            self.model = model
        if instructions is not None:
            self.instructions = instructions

    def extra_repr(self) -> str:
        return f"model={self.model!r}"

    def _checked_model(self) -> Any:
        model = self.model
        if model is None or not callable(model):
            raise TypeError(
                f"{self.name}.model must be a chat model, got {type(model).__name__}; "
                "set the class attribute model = mf.Model.chat_completion('openai/...') "
                f"or pass model= to {type(self).__name__}()"
            )
        return model

    def _messages(self, message: Message) -> List[Dict[str, Any]]:
        instructions = self.instructions
        if instructions is not None and not isinstance(instructions, str):
            raise TypeError(
                f"{self.name}.instructions must be a string or None, got "
                f"{type(instructions).__name__}"
            )
        messages: List[Dict[str, Any]] = []
        if instructions:
            messages.append({"role": "system", "content": instructions})
        if isinstance(message, str):
            messages.append({"role": "user", "content": message})
        elif isinstance(message, Sequence) and not isinstance(message, (bytes, bytearray)):
            messages.extend(dict(item) for item in _checked_history(message, self.name))
        else:
            raise TypeError(
                f"{self.name} expects a string or a list of message dicts, got "
                f"{type(message).__name__}; pass the text to send, as agent('hello')"
            )
        return messages

    def forward(self, message: Message, **options: Any) -> str:
        """Send the instructions and ``message`` to the model; return the reply text.

        Args:
            message: The user text, or a list of chat message dicts that
                follow the instructions.
            **options: Request options for this call, such as ``temperature``.

        Returns:
            The model's reply text.

        Raises:
            TypeError: If the model is not set or ``message`` has the wrong type.
            ModelError: Any error of the model call (see ``msgflux.models``).
        """
        model = self._checked_model()
        messages = self._messages(message)
        started = time.perf_counter()
        reply = model(messages, **options).text
        self._log_reply(started)
        return reply

    async def aforward(self, message: Message, **options: Any) -> str:
        """Send the instructions and ``message`` to the model without blocking the loop.

        Uses the model's ``acall``; a model without one runs in a worker thread.

        Args:
            message: The user text, or a list of chat message dicts.
            **options: Request options for this call.

        Returns:
            The model's reply text.

        Raises:
            TypeError: If the model is not set or ``message`` has the wrong type.
            ModelError: Any error of the model call.
        """
        model = self._checked_model()
        messages = self._messages(message)
        started = time.perf_counter()
        acall = getattr(model, "acall", None)
        if acall is not None:
            response = await acall(messages, **options)
        else:
            response = await asyncio.to_thread(model, messages, **options)
        reply = response.text
        self._log_reply(started)
        return reply

    def _log_reply(self, started: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "agent %s got a reply in %.3f s", self.name, time.perf_counter() - started
            )


def _checked_history(messages: Sequence[Any], agent_name: str) -> Sequence[Mapping[str, Any]]:
    for index, item in enumerate(messages):
        if not isinstance(item, Mapping) or "role" not in item:
            raise TypeError(
                f"{agent_name} got a message list whose item {index} is "
                f"{type(item).__name__}, not a dict with a 'role' key"
            )
    return messages
