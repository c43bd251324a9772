"""The value placed in the result slot of a task that failed.

``TaskError`` is defined in the compiled core, which builds one per failed or
unfinished task; see its docstring for the attributes.
"""

from msgflux._core import TaskError

__all__ = ["TaskError"]
