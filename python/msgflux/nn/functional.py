"""Concurrent execution primitives: gather, wait and spawn.

Sync functions run tasks on msgflux's worker pool (and ``async def`` callables
on a background event loop); the ``a``-prefixed versions are awaitable and
run on the caller's event loop. Every gather returns a tuple in input order,
with a ``TaskError`` in the slot of each task that failed or timed out.
"""

from msgflux._gather import bcast_gather, map_gather, scatter_gather, wait_for
from msgflux._spawn import spawn

__all__ = [
    "bcast_gather",
    "map_gather",
    "scatter_gather",
    "spawn",
    "wait_for",
]
