"""Polling Claude's usage endpoint for the accounts' 5-hour and 7-day windows (optional).

Real traffic already reports the windows in its response headers (accounts.windows); an account
that serves nothing for a while shows stale bars, and the quota-aware strategy would place new
sessions on stale numbers. With ``CLAUDE_USAGE_POLL_SECONDS`` set (0 = off, the default; never
more often than every ``MIN_INTERVAL_SECONDS``), each worker's periodic task asks
``GET {CLAUDE_API_URL}/api/oauth/usage`` for the accounts whose windows nobody has seen within
that interval, one worker per account (claimed in the database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine

from channels.db import database_sync_to_async
from django.conf import settings

from accounts import windows
from accounts.oauth import endpoints, store, tokens

logger = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 120.0
_last_poll = [0.0]


def interval() -> float:
    configured = settings.CLAUDE_USAGE_POLL_SECONDS
    return 0.0 if configured <= 0 else max(configured, MIN_INTERVAL_SECONDS)


def maybe_poll(spawn: Callable[[Coroutine], None]) -> None:
    every = interval()
    if every <= 0 or time.monotonic() - _last_poll[0] < every:
        return
    _last_poll[0] = time.monotonic()
    spawn(poll(every))


async def poll(every: float) -> int:
    """Ask for every account due; returns how many answered with windows."""
    now = time.time()
    try:
        due = await database_sync_to_async(store.claim_usage_polls)(now, every)
    except Exception:  # noqa: BLE001 - advisory: the next poll tries again
        logger.warning("could not list accounts for the usage poll", exc_info=True)
        return 0
    answered = 0
    for credential_id in due:
        try:
            token = await tokens.current(credential_id)
        except tokens.AccountUnavailable:
            continue
        data = await endpoints.claude_usage(token.access.reveal())
        found = windows.parse_usage(data, time.time())
        if not found:
            continue
        answered += 1
        windows.board.replace(credential_id, found, time.time())
        stored = [window.as_dict() for window in found]
        await database_sync_to_async(store.save_windows)(credential_id, stored, time.time())
    return answered
