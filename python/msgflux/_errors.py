"""The value placed in the result slot of a task that failed."""

from __future__ import annotations

__all__ = ["TaskError"]


class TaskError:
    """A failed task's exception, returned in that task's result slot.

    Gather functions never raise a task's exception in the caller. The slot of
    a failed task holds a ``TaskError`` instead, so every other result is kept.
    A ``TaskError`` is falsy, which makes ``all(results)`` a quick success check.

    Attributes:
        index: Position of the task in the batch, counted from 0.
        exception: The exception object the task raised, with its original
            ``__traceback__``. For a task still unfinished at the deadline it
            is a ``TimeoutError``.
    """

    __slots__ = ("index", "exception")

    def __init__(self, index: int, exception: BaseException) -> None:
        self.index = index
        self.exception = exception

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TaskError(index={self.index}, exception={self.exception!r})"

    def __str__(self) -> str:
        kind = type(self.exception).__name__
        return f"task {self.index} failed with {kind}: {self.exception}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskError):
            return NotImplemented
        return self.index == other.index and self.exception is other.exception

    def __hash__(self) -> int:
        return hash((self.index, id(self.exception)))

    def __reduce__(self):
        return (TaskError, (self.index, self.exception))
