"""Notices, within one process, that the pool's shared state changed in the database.

Raised after a commit that changed what an operator sees of the pool: a cooldown applied or
cleared, credentials or settings edited (every version bump), request counters flushed. The
admin overview's live view listens (dashboard.live) and tells the open pages in every worker.
A listener must be cheap and thread-safe: notices come from the worker threads that ran the
write. Nothing here does I/O, and with no listener a notice costs one empty loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

_listeners: list[Callable[[], None]] = []


def subscribe(listener: Callable[[], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Callable[[], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def pool_changed() -> None:
    for listener in tuple(_listeners):
        try:
            listener()
        except Exception:  # a notice must never fail the write that raised it
            logger.exception("a pool change listener failed")
