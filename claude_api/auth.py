"""Client authentication: ``x-api-key: K`` or ``Authorization: Bearer K``.

Keys are looked up by their HMAC in the in-process snapshot (no query per request). A key the
snapshot does not know yet (created a moment ago in another process) is looked up once in the
database; unknown keys are remembered for a few seconds so garbage cannot hammer the database.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from django.http import HttpRequest

from accounts import keys
from accounts.models import ClientKey
from accounts.pool import ClientKeyView, Snapshot, pool
from accounts.store import DatabaseFailure
from claude_api.errors import AuthenticationFailed, StoreUnreachable

NEGATIVE_TTL = 5.0
_unknown: dict[str, float] = {}


def presented_key(request: HttpRequest) -> str:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    authorization = request.headers.get("authorization", "").strip()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return ""


async def authenticate(request: HttpRequest, snapshot: Snapshot) -> ClientKeyView:
    key = presented_key(request)
    if not key:
        raise AuthenticationFailed(
            "Missing API key: send it in the x-api-key header or as Authorization: Bearer <key>."
        )
    digest = keys.digest(key)
    client_key = snapshot.keys.get(digest)
    if client_key is None:
        client_key = await _lookup(digest)
    if client_key is None or not keys.same_digest(client_key.digest, digest):
        raise AuthenticationFailed("Invalid API key.")
    pool.key_used(client_key.key_id)
    return client_key


async def _lookup(digest: str) -> ClientKeyView | None:
    now = time.monotonic()
    if _unknown.get(digest, 0) > now:
        return None
    if pool.store.down:
        raise StoreUnreachable()
    try:
        row = await database_sync_to_async(
            lambda: ClientKey.objects.filter(digest=digest, enabled=True).first()
        )()
    except DatabaseFailure as exc:
        # A key this worker has not seen, and no database to ask: neither yes nor no.
        pool.store.failed(exc)
        raise StoreUnreachable() from exc
    if row is None:
        if len(_unknown) > 10_000:
            _unknown.clear()
        _unknown[digest] = now + NEGATIVE_TTL
        return None
    # The snapshot is behind; catch up for the next requests.
    pool.spawn(pool.refresh())
    return ClientKeyView.of(row)
