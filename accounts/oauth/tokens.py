"""The current token of each account, for the request path, and the refresh that never races.

Workers keep every account's access token in memory (``cache``) and reload them all only when the
``tokens`` change counter moves (read by the pool's periodic check), so a refresh elsewhere costs
one query per worker and no reload of the pool snapshot; while nothing changes, no query at all.

A refresh runs at most once per account at a time:
- in a process, concurrent callers share one task (``_inflight``);
- across processes and hosts, the task first takes the lease on the token row (accounts.oauth
  .store.claim); a worker that finds the lease taken waits, re-reads, and uses what the holder
  stored. The task is shielded: a client that disconnects does not cancel a refresh whose
  rotated refresh token is about to be stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from accounts.oauth import policy

if TYPE_CHECKING:
    from accounts.oauth.store import Token

logger = logging.getLogger(__name__)

WAIT_POLL_SECONDS = 0.1
_UNSET = object()


class AccountUnavailable(Exception):
    """No usable token for this account right now (``needs_login``: until someone logs in)."""

    def __init__(self, message: str, *, needs_login: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.needs_login = needs_login


class TokenCache:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.observed: Any = None
        self.loaded_for: Any = _UNSET
        self.tokens: dict[int, Token] = {}
        self._loading: dict[int, asyncio.Task] = {}

    def observe(self, counter: int) -> None:
        """The ``tokens`` counter as the pool's last check read it."""
        self.observed = counter

    async def get(self, credential_id: int) -> Token | None:
        if self.loaded_for is _UNSET or self.loaded_for != self.observed:
            await self._reload()
        return self.tokens.get(credential_id)

    async def _reload(self) -> None:
        # Requests arriving together after a change share one query.
        loop_id = id(asyncio.get_running_loop())
        task = self._loading.get(loop_id)
        if task is None:
            task = asyncio.ensure_future(self._load(self.observed))
            self._loading[loop_id] = task
            task.add_done_callback(lambda _: self._loading.pop(loop_id, None))
        await asyncio.shield(task)

    async def _load(self, target: Any) -> None:
        from accounts.oauth import store

        self.tokens = await database_sync_to_async(store.load_tokens)()
        self.loaded_for = target

    def put(self, token: Token) -> None:
        current = self.tokens.get(token.credential_id)
        if current is None or token.version >= current.version:
            self.tokens[token.credential_id] = token


cache = TokenCache()
_inflight: dict[tuple[int, int], asyncio.Task] = {}


async def current(credential_id: int) -> Token:
    """The token to call upstream with; refreshed first (synchronously) if already expired."""
    token = await cache.get(credential_id)
    if token is None:
        raise AccountUnavailable("the account has no tokens; log it in", needs_login=True)
    if token.needs_login:
        raise AccountUnavailable("the account needs a new login", needs_login=True)
    now = time.time()
    if policy.is_expired(token.expires_at, now):
        if token.can_refresh:
            token = await refresh(
                credential_id, seen_version=None, due_before=now + policy.EXPIRY_SKEW_SECONDS
            )
        if token.needs_login:
            raise AccountUnavailable("the account needs a new login", needs_login=True)
        if policy.is_expired(token.expires_at, time.time()):
            raise AccountUnavailable("the account's token expired and could not be refreshed yet")
    return token


async def refresh_after_unauthorized(credential_id: int, used_version: int) -> Token | None:
    """After an upstream 401 with token ``used_version``: a newer token to retry with, or None.
    Only the first worker to report that version refreshes; the others get its result."""
    token = await refresh(credential_id, seen_version=used_version, due_before=None)
    if token.needs_login or token.version == used_version:
        return None
    return token


async def refresh(
    credential_id: int, *, seen_version: int | None, due_before: float | None
) -> Token:
    key = (id(asyncio.get_running_loop()), credential_id)
    task = _inflight.get(key)
    if task is None:
        task = asyncio.ensure_future(_refresh(credential_id, seen_version, due_before))
        _inflight[key] = task
        task.add_done_callback(lambda _: _inflight.pop(key, None))
    # Shielded: the caller may be cancelled (its client left); the refresh goes on and stores.
    return await asyncio.shield(task)


async def _refresh(credential_id: int, seen_version: int | None, due_before: float | None) -> Token:
    from accounts.oauth import endpoints, store

    owner = uuid.uuid4().hex
    deadline = time.monotonic() + store.lease_seconds() + 5
    while True:
        claim = await database_sync_to_async(store.claim)(
            credential_id, owner, seen_version=seen_version, due_before=due_before
        )
        if claim.job:
            break
        if claim.token is not None:
            cache.put(claim.token)
            return claim.token
        if time.monotonic() > deadline:
            raise AccountUnavailable("another worker's refresh of this account did not finish")
        await asyncio.sleep(WAIT_POLL_SECONDS)
    assert claim.token is not None
    provider, sent = claim.token.provider, claim.refresh_token
    try:
        answer = await endpoints.refresh(provider, sent, proxy_url=claim.proxy_url)
        meaning = policy.classify_answer(
            answer.status, answer.body, answer.retry_after, claim.failures
        )
        if meaning.ok:
            data = endpoints.account_from_answer(
                provider, answer.body, datetime.now(UTC), previous_refresh=sent
            )
            token = await database_sync_to_async(store.store_refreshed)(
                credential_id, owner, sent, data
            )
            logger.info("account #%s refreshed", credential_id)
        elif meaning.rejected:
            token = await database_sync_to_async(store.store_rejected)(
                credential_id, owner, sent, meaning.message
            )
        else:
            logger.warning(
                "account #%s refresh failed (%s); retry in %.0f s",
                credential_id,
                meaning.message,
                meaning.retry_after or 0,
            )
            token = await database_sync_to_async(store.store_transient)(
                credential_id,
                owner,
                meaning.retry_after or policy.MIN_BACKOFF_SECONDS,
                meaning.message,
            )
        if token is None:
            token = await database_sync_to_async(store.load_token)(credential_id)
    except BaseException:
        await asyncio.shield(database_sync_to_async(store.release)(credential_id, owner))
        raise
    if token is None:
        raise AccountUnavailable("the account was deleted")
    cache.put(token)
    return token


# The background refresh -------------------------------------------------------------------------

_last_sweep = [0.0]


def maybe_sweep(spawn: Callable[[Coroutine], None]) -> None:
    """Called on the pool's periodic check: at most every OAUTH_SWEEP_SECONDS per worker, renew
    the accounts within their refresh lead, off the request path."""
    interval = settings.OAUTH_SWEEP_SECONDS
    if interval <= 0 or time.monotonic() - _last_sweep[0] < interval:
        return
    _last_sweep[0] = time.monotonic()
    spawn(sweep())


async def sweep() -> int:
    """Refresh every account due; returns how many were looked at."""
    from accounts.oauth import store

    try:
        due = await database_sync_to_async(store.due_accounts)(time.time())
    except Exception:
        logger.exception("could not list the accounts due for a refresh")
        return 0
    for credential_id, version, due_before in due:
        try:
            await refresh(credential_id, seen_version=version, due_before=due_before)
        except Exception:
            logger.exception("background refresh of account #%s failed", credential_id)
    return len(due)


def reset() -> None:
    """Forget process state (tests, after a fork)."""
    cache.reset()
    _inflight.clear()
    _last_sweep[0] = 0.0
