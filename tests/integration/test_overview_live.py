"""The overview's websocket (/admin/live/) through the real ASGI entry point, in process, with
channels' WebsocketCommunicator and the in-memory channel layer: who may open it, what it sends
first, and that a cooldown, an in-flight request and a logout reach it without the page asking.
(Across daphne workers through Redis: tests/live/test_overview_live.py.)"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db import connections
from django.db.models import F
from django.test import Client
from django.utils import timezone

from accounts import quota
from accounts.cooldown import Failure, FailureKind
from accounts.models import PoolVersion, QuotaState
from dashboard import live
from proxysite.asgi import application
from proxysite.lifecycle import serving
from tests.conftest import make_credential

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "proxy.example:8317"
PASSWORD = "pw-live-view-1"


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def user(name: str, *, staff: bool = True, superuser: bool = False, perms: tuple[str, ...] = ()):
    model = get_user_model()
    if superuser:
        made = model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
    else:
        made = model.objects.create_user(name, password=PASSWORD, is_staff=staff)
    for codename in perms:
        made.user_permissions.add(Permission.objects.get(codename=codename))
    return made


def socket(cookie: str | None = None, origin: str | None = f"http://{HOST}"):
    headers = [(b"host", HOST.encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, "/admin/live/", headers=headers)


@pytest.fixture(autouse=True)
async def fresh_live():
    live.hub.reset()
    # The test bodies log users in with the plain ORM: their connection lives in the async
    # context this fixture shares with them, so teardown can close it (see fresh_pool).
    connections["default"]
    yield
    live.hub.reset()
    connections.close_all()
    # And what the consumers' database calls left open on the thread they share (channels'
    # session lookup for a refused handshake leaves one on PostgreSQL).
    await database_sync_to_async(connections.close_all)()


async def receive_until(communicator, wanted, timeout: float = 5.0) -> dict:
    """The first message for which ``wanted(message)`` is true (earlier ones are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the awaited message never came")
        message = await communicator.receive_json_from(timeout=left)
        if wanted(message):
            return message


async def test_an_anonymous_websocket_is_refused():
    communicator = socket()
    connected, code = await communicator.connect()
    assert not connected and code == 4403
    await communicator.wait()


async def test_a_logged_in_user_who_is_not_staff_is_refused():
    cookie = session_cookie(user("visitor", staff=False))
    communicator = socket(cookie)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait()


async def test_staff_without_the_view_credential_permission_is_refused():
    cookie = session_cookie(user("accountant", perms=("view_usagerecord",)))
    communicator = socket(cookie)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait()


async def test_a_page_from_another_site_is_refused_even_with_the_operators_cookie():
    cookie = session_cookie(user("root", superuser=True))
    communicator = socket(cookie, origin="https://evil.example")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait()


async def test_staff_allowed_to_view_credentials_get_the_pool_and_this_workers_load():
    make_credential("primary", models=["claude-sonnet-4-6"])
    cookie = session_cookie(user("ops", perms=("view_credential",)))
    communicator = socket(cookie)
    connected, _ = await communicator.connect()
    assert connected
    pool = await communicator.receive_json_from()
    assert pool["type"] == "pool"
    assert [(c["label"], c["state"]) for c in pool["credentials"]] == [("primary", "ok")]
    worker = await communicator.receive_json_from()
    assert worker["type"] == "worker" and worker["worker"] == live.WORKER_ID
    assert worker["in_flight"] == 0
    await communicator.disconnect()
    assert not live.hub.viewers


async def test_a_cooldown_applied_in_this_worker_reaches_the_page_live():
    credential = make_credential("primary", models=["claude-sonnet-4-6"])
    cookie = session_cookie(user("root", superuser=True))
    live.publisher.start()
    try:
        communicator = socket(cookie)
        assert (await communicator.connect())[0]
        await receive_until(communicator, lambda m: m["type"] == "pool")
        failure = Failure(
            FailureKind.RATE_LIMITED,
            429,
            "busy",
            "rate_limited",
            retry_at=time.time() + 120,
            retry_source="retry-after",
        )
        await database_sync_to_async(quota.persist_failure)(
            credential.pk,
            "claude-sonnet-4-6",
            failure,
            time.time(),
            transient_seconds=60,
            cooling_disabled=False,
        )
        pool = await receive_until(
            communicator, lambda m: m["type"] == "pool" and m["credentials"][0]["state"] != "ok"
        )
        (row,) = pool["credentials"]
        assert row["state"] == "cooling"
        (block,) = row["blocks"]
        assert block["reason"] == "rate_limited" and block["until"] > time.time() + 100
        await communicator.disconnect()
    finally:
        await live.publisher.stop()


async def test_in_flight_requests_reach_the_page_as_they_change():
    cookie = session_cookie(user("root", superuser=True))
    live.publisher.start()
    communicator = socket(cookie)
    try:
        assert (await communicator.connect())[0]
        serving.in_flight += 3
        status = await receive_until(
            communicator, lambda m: m["type"] == "worker" and m["in_flight"] == 3
        )
        assert status["worker"] == live.WORKER_ID
        serving.in_flight -= 3
        await receive_until(communicator, lambda m: m["type"] == "worker" and m["in_flight"] == 0)
    finally:
        serving.in_flight = max(0, serving.in_flight)
        await communicator.disconnect()
        await live.publisher.stop()


async def test_a_page_that_opens_between_two_ticks_still_sees_the_count_change_back():
    # The page gets this moment's count when it opens; the publisher compared later counts
    # with the last one it had sent, so a count changing back to that one never reached the
    # page (a request in flight shown as 0 for its whole length: the browser test's flake).
    # The publisher's ticks are driven by hand here, so none falls in between by chance.
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    publisher = live.Publisher()
    cookie = session_cookie(user("root", superuser=True))
    first = socket(cookie)
    try:
        assert (await first.connect())[0]
        serving.in_flight = 1  # an admin page loading, say
        await publisher.publish(layer)
        await receive_until(first, lambda m: m["type"] == "worker" and m["in_flight"] == 1)
        serving.in_flight = 0  # it ends, and before the next tick a new page opens with 0
        live.publisher, shared = publisher, live.publisher  # the one the consumer tells
        try:
            second = socket(cookie)
            assert (await second.connect())[0]
        finally:
            live.publisher = shared
        # What the group heard last (1), then this moment's count (0).
        await receive_until(
            second,
            lambda m: (
                m["type"] == "worker" and m["worker"] == live.WORKER_ID and not m["in_flight"]
            ),
        )
        serving.in_flight = 1  # a request starts: back to what the publisher sent last
        await publisher.publish(layer)
        await receive_until(second, lambda m: m["type"] == "worker" and m["in_flight"] == 1)
        await second.disconnect()
    finally:
        serving.in_flight = 0
        await first.disconnect()


async def test_many_pages_in_one_worker_share_one_read_of_the_pool_per_change():
    make_credential("primary", models=["claude-sonnet-4-6"])
    cookie = session_cookie(user("root", superuser=True))
    pages = [socket(cookie) for _ in range(5)]
    for page in pages:
        assert (await page.connect())[0]
        await receive_until(page, lambda m: m["type"] == "pool")
    await asyncio.sleep(live.MIN_RELOAD_SECONDS)
    loads = live.hub.loads
    layer = get_channel_layer()
    for _ in range(3):  # three workers announce changes at about the same moment
        await layer.group_send(live.GROUP, {"type": "pool.changed", "worker": "w"})
    for page in pages:
        await receive_until(page, lambda m: m["type"] == "pool")
    assert live.hub.loads == loads + 1
    for page in pages:
        await page.disconnect()


async def test_without_a_shared_layer_a_change_made_by_another_worker_shows_within_seconds(
    monkeypatch,
):
    # Another worker's publisher is out of reach of the in-memory layer; the change counters
    # in the database are not.
    monkeypatch.setattr(live, "VERSION_CHECK_SECONDS", 0.2)
    credential = make_credential("primary", models=["claude-sonnet-4-6"])
    cookie = session_cookie(user("root", superuser=True))
    communicator = socket(cookie)
    assert (await communicator.connect())[0]
    await receive_until(communicator, lambda m: m["type"] == "pool")

    def another_worker_cools_it_down() -> None:
        # What persist_failure does in another process: the row and the counter, no notice here.
        QuotaState.objects.create(
            credential=credential,
            model="",
            status="attention",
            reason="unauthorized",
            next_retry_at=timezone.now() + timedelta(hours=1),
        )
        PoolVersion.objects.update(quota=F("quota") + 1)

    await database_sync_to_async(another_worker_cools_it_down)()
    pool = await receive_until(
        communicator, lambda m: m["type"] == "pool" and m["credentials"][0]["state"] != "ok"
    )
    assert pool["credentials"][0]["state"] == "attention"
    await communicator.disconnect()


async def test_a_logout_ends_the_live_view(monkeypatch):
    monkeypatch.setattr(live, "RESYNC_SECONDS", 0.2)
    cookie = session_cookie(user("root", superuser=True))
    communicator = socket(cookie)
    assert (await communicator.connect())[0]
    await receive_until(communicator, lambda m: m["type"] == "pool")
    await database_sync_to_async(Session.objects.filter(session_key=cookie).delete)()
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4401
    assert not live.hub.viewers
    await communicator.disconnect()


async def test_the_publisher_never_fails_when_the_channel_layer_does(caplog):
    class Broken:
        async def group_send(self, group, message):
            raise ConnectionError("redis is away")

    publisher = live.Publisher()
    publisher._changed = True
    await publisher.publish(Broken())
    assert publisher._changed  # the change is sent again on the next tick
    assert "could not reach the channel layer" in caplog.text
