"""The overview's websocket (``/admin/live/``): the pool's state and every worker's in-flight
requests, pushed to the page as they change (dashboard.live).

Refused at the handshake (HTTP 403) unless the session belongs to an active staff user allowed
to view credentials (the same permission the admin's credential list needs), and unless the
page that opens it is served from this host (a cross-site page could otherwise ride the
operator's session cookie to read the pool). The page sends nothing; what it receives:

- ``{"type": "pool", "credentials": [...], "summary": {...}, "at": …}`` (dashboard.pool_state);
- ``{"type": "worker", "worker": "host:pid", "in_flight": n, "draining": bool, "at": …}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone

from dashboard import live
from dashboard.pool_state import PERMISSION

REFUSED = 4403


def may_watch(user: Any) -> bool:
    """Synchronous: a staff user's permissions come from the database."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PERMISSION)
    )


def same_origin(scope: dict[str, Any]) -> bool:
    """The page's origin is this host (or a trusted origin). Browsers always send Origin on a
    websocket handshake; a client without one is not a browser, so no cookie was lent to it."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    host = headers.get(b"host", b"").decode("latin-1").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


def _still_allowed(user_id: int, session_key: str | None) -> bool:
    if (
        session_key
        and not Session.objects.filter(
            session_key=session_key, expire_date__gt=timezone.now()
        ).exists()
    ):
        return False  # logged out, or the session expired
    user = get_user_model().objects.filter(pk=user_id).first()
    return may_watch(user)


class OverviewConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.joined = False
        user = self.scope.get("user")
        if not same_origin(self.scope) or not await database_sync_to_async(may_watch)(user):
            await self.close(code=REFUSED)  # before accept: the handshake gets 403
            return
        self.user_id = user.pk
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        live.hub.join(self)
        await self.send_pool(await live.hub.current())
        for status in live.hub.known_workers():
            await self.send_worker(status)
        await self.send_worker(live.worker_status())
        # That count is this moment's, not the one the publisher last sent everyone: let it
        # send the next one even if it equals its last (else a change back to its last value
        # never reaches this page).
        live.publisher.send_next()

    async def disconnect(self, code: int) -> None:
        live.hub.leave(self)
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page has nothing to say; whatever it sends is ignored."""

    # Group messages (dashboard.live) ------------------------------------------------------

    async def pool_changed(self, event: dict[str, Any]) -> None:
        live.hub.changed()

    async def worker_status(self, event: dict[str, Any]) -> None:
        live.hub.heard(event)
        await self.send_worker(event)

    # What the hub calls -------------------------------------------------------------------

    async def send_pool(self, state: dict[str, Any]) -> None:
        await self.send_json({"type": "pool", **state})

    async def send_worker(self, status: dict[str, Any]) -> None:
        await self.send_json({**status, "type": "worker"})

    async def still_allowed(self) -> bool:
        return await database_sync_to_async(_still_allowed)(self.user_id, self.session_key)

    async def end(self, code: int) -> None:
        await self.close(code=code)
        await self.disconnect(code)
