"""Where every worker counts client keys' limits: Redis when REDIS_URL is set, else the database.

Admission is one atomic step: check every limit and, if all hold, count the request (rpm), take
a concurrency slot and reserve the estimated tokens and cost. In Redis that is one Lua script
(one round trip, atomic across workers); in the database one transaction that first locks the
key's row (on SQLite, the IMMEDIATE transaction takes the database's write lock at BEGIN), so
two workers cannot both take the last slot. Releasing (when the request ends) frees the slot and
replaces the reservation by what was used; it runs off the request path.

Concurrency slots carry their start time and are forgotten after ``SLOT_STALE_SECONDS``, so a
worker killed mid-request (no release) cannot hold a key's slots for ever.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from accounts import limits, redis_wire, versions
from accounts.limits import Counts, KeyLimits, Windows

SLOT_STALE_SECONDS = 3600
PREFIX = "claude-proxy:limit"
INFLIGHT = "inflight:"


@dataclass(frozen=True, slots=True)
class Admission:
    key_id: int
    request_id: str
    limits: KeyLimits
    window: Windows
    tokens: int  # reserved
    cost: int  # reserved, micro-dollars


# A request that ended: its admission, the tokens it used, its cost (micro-dollars; None unknown).
Ended = tuple[Admission, int, "int | None"]


class StoreUnreachable(Exception):
    """The limits' counters (Redis) did not answer."""


def _redis_keys(key_id: int, window: Windows) -> list[str]:
    base = f"{PREFIX}:{key_id}"
    return [
        f"{base}:inflight",
        f"{base}:rpm:{window.minute}",
        f"{base}:tpm:{window.minute}",
        f"{base}:tokens:{window.period}",
        f"{base}:usd:{window.period}",
    ]


# KEYS: inflight (zset of request id -> start ms), rpm, tpm, budget tokens, budget micro-USD.
# ARGV: now_ms, request id, stale ms, rpm, tpm, concurrent, budget tokens, budget micro-USD
#       (-1 = no such limit), reserved tokens, reserved micro-USD, minute ttl, period ttl.
# Checks in accounts.limits.CHECK_ORDER; returns "" when admitted, else the limit's name.
ADMIT_LUA = """
local function limit(i) local v = tonumber(ARGV[i]); if v < 0 then return nil end; return v end
local function used(k) return tonumber(redis.call('GET', k) or '0') end
local now, stale = tonumber(ARGV[1]), tonumber(ARGV[3])
local rpm, tpm, conc = limit(4), limit(5), limit(6)
local btok, busd = limit(7), limit(8)
local tokens, cost = tonumber(ARGV[9]), tonumber(ARGV[10])
if btok and used(KEYS[4]) + tokens > btok then return 'budget_tokens' end
if busd and used(KEYS[5]) + cost > busd then return 'budget_usd' end
if tpm and used(KEYS[3]) + tokens > tpm then return 'tpm' end
if rpm and used(KEYS[2]) + 1 > rpm then return 'rpm' end
if conc then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale)
  if redis.call('ZCARD', KEYS[1]) + 1 > conc then return 'concurrent' end
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], stale)
end
if rpm then redis.call('INCR', KEYS[2]); redis.call('EXPIRE', KEYS[2], ARGV[11]) end
if tpm then redis.call('INCRBY', KEYS[3], tokens); redis.call('EXPIRE', KEYS[3], ARGV[11]) end
if btok then redis.call('INCRBY', KEYS[4], tokens); redis.call('EXPIRE', KEYS[4], ARGV[12]) end
if busd then redis.call('INCRBY', KEYS[5], cost); redis.call('EXPIRE', KEYS[5], ARGV[12]) end
return ''
"""

ADMIT_SHA = hashlib.sha1(ADMIT_LUA.encode()).hexdigest()


def _n(value: int | None) -> int:
    return -1 if value is None else value


async def admit(
    key_id: int,
    request_id: str,
    key_limits: KeyLimits,
    *,
    tokens: int,
    cost: int,
    now: float,
    releasing: list[Ended] | None = None,
) -> Admission | str:
    """The admission, or the name of the limit that refused it. ``releasing``: requests ended
    and not yet released, settled in the same round trip, before this admission is checked.

    Raises ``StoreUnreachable`` when the counters cannot be reached."""
    window = limits.windows(now, key_limits.budget_period)
    admission = Admission(key_id, request_id, key_limits, window, tokens, cost)
    if settings.REDIS_URL:
        refused = await _admit_redis(admission, now, releasing or [])
    else:
        from channels.db import database_sync_to_async

        if releasing:
            await release(releasing)
        refused = await database_sync_to_async(admit_in_database)(admission, now)
    return refused or admission


def _admit_command(admission: Admission, now: float, *, sha: bool = True) -> tuple:
    k, w = admission.limits, admission.window
    return (
        "EVALSHA" if sha else "EVAL",
        ADMIT_SHA if sha else ADMIT_LUA,
        5,
        *_redis_keys(admission.key_id, w),
        int(now * 1000),
        admission.request_id,
        SLOT_STALE_SECONDS * 1000,
        _n(k.rpm),
        _n(k.tpm),
        _n(k.concurrent),
        _n(k.budget_tokens),
        _n(k.budget_micro_usd),
        admission.tokens,
        admission.cost,
        120,
        w.period_end - w.minute + 86_400,
    )


def _release_commands(ended: list[Ended]) -> list[tuple]:
    commands: list[tuple] = []
    for admission, tokens, cost in ended:
        k = admission.limits
        names = _redis_keys(admission.key_id, admission.window)
        token_delta = tokens - admission.tokens
        cost_delta = 0 if cost is None else cost - admission.cost
        if k.concurrent is not None:
            commands.append(("ZREM", names[0], admission.request_id))
        if k.tpm is not None and token_delta:
            commands.append(("INCRBY", names[2], token_delta))
        if k.budget_tokens is not None and token_delta:
            commands.append(("INCRBY", names[3], token_delta))
        if k.budget_micro_usd is not None and cost_delta:
            commands.append(("INCRBY", names[4], cost_delta))
    return commands


async def _redis(*commands: tuple) -> list:
    """Replies to ``commands``, sent in one round trip (accounts.redis_wire; redis-py for a
    REDIS_URL the lean connection does not speak)."""
    if not commands:
        return []
    wire = redis_wire.for_loop(settings.REDIS_URL)
    try:
        if wire is not None:
            return await wire.execute(*commands)
        pipe = versions._async_redis().pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)
    except (redis_wire.WireError, OSError) as exc:
        raise StoreUnreachable(str(exc)) from None
    except Exception as exc:
        import redis.exceptions

        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            raise StoreUnreachable(type(exc).__name__) from None
        raise


def _refused(reply) -> bool:
    return isinstance(reply, Exception) and "NOSCRIPT" in str(reply)


async def _admit_redis(admission: Admission, now: float, releasing: list[Ended]) -> str:
    commands = [*_release_commands(releasing), _admit_command(admission, now)]
    result = (await _redis(*commands))[-1]
    if _refused(result):
        # A Redis that has not seen the script yet (restarted, flushed): send it whole once.
        [result] = await _redis(_admit_command(admission, now, sha=False))
    if isinstance(result, Exception):
        # A Redis that refuses to run it (out of memory, a read-only replica, still loading)
        # cannot count either.
        raise StoreUnreachable(f"Redis refused the admission: {result}")
    return result.decode() if isinstance(result, bytes) else str(result or "")


async def release(ended: list[Ended]) -> None:
    """Requests ended, each having used ``tokens`` and ``cost`` (None: unknown, keep the
    reservation). With Redis, all of them in one round trip."""
    if settings.REDIS_URL:
        for reply in await _redis(*_release_commands(ended)):
            if isinstance(reply, Exception):
                raise reply
        return
    from channels.db import database_sync_to_async

    for admission, tokens, cost in ended:
        await database_sync_to_async(release_in_database)(admission, tokens, cost)


# The database backend ------------------------------------------------------------------------


def _counts(admission: Admission, now: float) -> Counts:
    from accounts.models import LimitCounter

    w = admission.window
    rows = LimitCounter.objects.filter(client_key_id=admission.key_id)
    values = {
        (name, window): value
        for name, window, value in rows.filter(
            name__in=("rpm", "tpm", "tokens", "usd"), window__in=(w.minute, w.period)
        ).values_list("name", "window", "value")
    }
    in_flight = rows.filter(
        name__startswith=INFLIGHT, window__gte=int(now) - SLOT_STALE_SECONDS
    ).count()
    return Counts(
        requests=values.get(("rpm", w.minute), 0),
        tokens=values.get(("tpm", w.minute), 0),
        in_flight=in_flight,
        budget_tokens=values.get(("tokens", w.period), 0),
        budget_micro_usd=values.get(("usd", w.period), 0),
    )


def _add(key_id: int, name: str, window: int, delta: int) -> None:
    from accounts.models import LimitCounter

    rows = LimitCounter.objects.filter(client_key_id=key_id, name=name, window=window)
    if rows.update(value=F("value") + delta):
        return
    try:
        with transaction.atomic():
            LimitCounter.objects.create(client_key_id=key_id, name=name, window=window, value=delta)
    except IntegrityError:
        rows.update(value=F("value") + delta)


def _lock(key_id: int) -> bool:
    from accounts.models import ClientKey

    # Serialises admissions of one key across workers (PostgreSQL row lock).
    return bool(list(ClientKey.objects.select_for_update().filter(pk=key_id).values_list("pk")))


def admit_in_database(admission: Admission, now: float) -> str:
    from accounts.models import LimitCounter

    k, w = admission.limits, admission.window
    with transaction.atomic():
        if not _lock(admission.key_id):
            return ""  # the key was deleted a moment ago; authentication already passed
        refused = limits.check(
            k, _counts(admission, now), tokens=admission.tokens, cost=admission.cost
        )
        if refused:
            return refused
        if k.rpm is not None:
            _add(admission.key_id, "rpm", w.minute, 1)
        if k.tpm is not None:
            _add(admission.key_id, "tpm", w.minute, admission.tokens)
        if k.budget_tokens is not None:
            _add(admission.key_id, "tokens", w.period, admission.tokens)
        if k.budget_micro_usd is not None:
            _add(admission.key_id, "usd", w.period, admission.cost)
        if k.concurrent is not None:
            LimitCounter.objects.create(
                client_key_id=admission.key_id,
                name=INFLIGHT + admission.request_id[:50],
                window=int(now),
            )
    return ""


def release_in_database(admission: Admission, tokens: int, cost: int | None) -> None:
    from accounts.models import LimitCounter

    k, w = admission.limits, admission.window
    token_delta = tokens - admission.tokens
    cost_delta = 0 if cost is None else cost - admission.cost
    with transaction.atomic():
        if not _lock(admission.key_id):
            return
        if k.concurrent is not None:
            LimitCounter.objects.filter(
                client_key_id=admission.key_id, name=INFLIGHT + admission.request_id[:50]
            ).delete()
        if k.tpm is not None and token_delta:
            _add(admission.key_id, "tpm", w.minute, token_delta)
        if k.budget_tokens is not None and token_delta:
            _add(admission.key_id, "tokens", w.period, token_delta)
        if k.budget_micro_usd is not None and cost_delta:
            _add(admission.key_id, "usd", w.period, cost_delta)


def prune_database(now: float | None = None) -> int:
    """Counters of windows long past (the longest budget period is a month)."""
    from accounts.models import LimitCounter

    moment = datetime.fromtimestamp(now or time.time(), tz=UTC)
    cutoff = int((moment - timedelta(days=32)).timestamp())
    stale = int(moment.timestamp()) - SLOT_STALE_SECONDS
    removed = LimitCounter.objects.filter(window__lt=cutoff).delete()[0]
    removed += LimitCounter.objects.filter(name__startswith=INFLIGHT, window__lt=stale).delete()[0]
    return removed


def current_use(key_id: int, key_limits: KeyLimits, now: float | None = None) -> Counts:
    """What a key has used in its current windows (the admin's 'use against limits')."""
    now = now or time.time()
    window = limits.windows(now, key_limits.budget_period)
    admission = Admission(key_id, "", key_limits, window, 0, 0)
    if settings.REDIS_URL:
        client = versions._sync_redis()
        names = _redis_keys(key_id, window)
        pipe = client.pipeline(transaction=False)
        pipe.zcount(names[0], (now - SLOT_STALE_SECONDS) * 1000, "+inf")
        for name in names[1:]:
            pipe.get(name)
        in_flight, rpm, tpm, tokens, usd = pipe.execute()
        return Counts(int(rpm or 0), int(tpm or 0), int(in_flight), int(tokens or 0), int(usd or 0))
    return _counts(admission, now)
