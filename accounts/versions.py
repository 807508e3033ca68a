"""Change counters shared by every worker: bump on a write, poll to notice other workers' writes.

Three counters: ``config`` (credentials, client keys, settings), ``quota`` (cooldown state) and
``tokens`` (OAuth account tokens, bumped by every refresh, import and login).
They live in the ``PoolVersion`` row; with REDIS_URL set they are mirrored in Redis, which is then
what workers poll (cheaper than a database round trip, and the database stays the record).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F

from accounts import notices

logger = logging.getLogger(__name__)

REDIS_KEYS = (
    "claude-proxy:version:config",
    "claude-proxy:version:quota",
    "claude-proxy:version:tokens",
)


def bump(*, config: bool = False, quota: bool = False, tokens: bool = False) -> None:
    from accounts.models import PoolVersion

    changes = {}
    if config:
        changes["config"] = F("config") + 1
    if quota:
        changes["quota"] = F("quota") + 1
    if tokens:
        changes["tokens"] = F("tokens") + 1
    if not changes:
        return
    if not PoolVersion.objects.filter(pk=1).update(**changes):
        # A fresh (or restored, or truncated) table starts from random counters, so a worker that
        # remembers an old value cannot mistake the new sequence for the one it already saw.
        start = secrets.randbelow(2**40) + 1
        PoolVersion.objects.get_or_create(
            pk=1, defaults={"config": start, "quota": start, "tokens": start}
        )
        PoolVersion.objects.filter(pk=1).update(**changes)
    if settings.REDIS_URL:
        try:
            client = _sync_redis()
            pipe = client.pipeline()
            if config:
                pipe.incr(REDIS_KEYS[0])
            if quota:
                pipe.incr(REDIS_KEYS[1])
            if tokens:
                pipe.incr(REDIS_KEYS[2])
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis is an accelerator, the database is the record
            logger.warning("could not publish a version bump to Redis: %s", type(exc).__name__)
    # After the commit (a bump inside a transaction): whoever reloads on the notice must see it.
    transaction.on_commit(notices.pool_changed)


def read_from_database() -> tuple[int, int, int]:
    from accounts.models import PoolVersion

    row = PoolVersion.objects.filter(pk=1).values_list("config", "quota", "tokens").first()
    return row if row else (0, 0, 0)


async def read() -> tuple[int, int, int] | None:
    """The current counters from Redis, or None when Redis is not configured or unreachable."""
    if not settings.REDIS_URL:
        return None
    try:
        values = await _async_redis().mget(REDIS_KEYS)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not read versions from Redis: %s", type(exc).__name__)
        return None
    return int(values[0] or 0), int(values[1] or 0), int(values[2] or 0)


def redis_configured() -> bool:
    return bool(settings.REDIS_URL)


def ping_sync() -> None:
    _sync_redis().ping()


async def ping() -> None:
    """Raises when Redis does not answer (readiness checks)."""
    await _async_redis().ping()


@cache
def _sync_redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


_async_clients: dict[int, object] = {}


def _async_redis():
    """One client per event loop (a redis.asyncio pool is bound to the loop that created it)."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None:
        _async_clients.clear()
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        _async_clients[id(loop)] = client
    return client


async def close_async_clients() -> None:
    """Close this loop's Redis client (tests, whose every test runs its own event loop)."""
    from accounts import redis_wire

    clients = list(_async_clients.values())
    _async_clients.clear()
    for client in clients:
        await client.aclose()
    await redis_wire.close_for_loop()
