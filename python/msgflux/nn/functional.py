"""Concurrent execution primitives: gather, wait and spawn.

Sync functions run tasks on msgflux's worker pool (and ``async def`` callables
on a background event loop); the ``a``-prefixed versions are awaitable and
run on the caller's event loop. Every gather returns a tuple in input order,
with a ``TaskError`` in the slot of each task that failed or timed out.
"""

from msgflux._aio import abcast_gather, amap_gather, ascatter_gather
from msgflux._backends import backend
from msgflux._events import await_for_event, set_event, wait_for_event
from msgflux._gather import bcast_gather, map_gather, scatter_gather, wait_for
from msgflux._spawn import aspawn, spawn
from msgflux._stream import aimap_gather, imap_gather

__all__ = [
    "abcast_gather",
    "aimap_gather",
    "amap_gather",
    "ascatter_gather",
    "aspawn",
    "await_for_event",
    "backend",
    "bcast_gather",
    "imap_gather",
    "map_gather",
    "scatter_gather",
    "set_event",
    "spawn",
    "wait_for",
    "wait_for_event",
]
