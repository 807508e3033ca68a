"""The request path stays off the database while nothing changes, and keeps secrets out."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.db.backends import utils

from accounts.models import RoutingTrace
from accounts.pool import pool
from tests.conftest import UPSTREAM_SECRET, make_credential, set_proxy_settings
from tests.fakes.upstream import Respond

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


@pytest.fixture
def queries(monkeypatch):
    """Every SQL statement any thread runs (the proxy's own go through a worker thread)."""
    seen: list[str] = []
    lock = threading.Lock()
    original = utils.CursorWrapper._execute

    def counting(self, sql, params, *ignored):
        with lock:
            seen.append(sql)
        return original(self, sql, params, *ignored)

    monkeypatch.setattr(utils.CursorWrapper, "_execute", counting)
    return seen


async def test_it_makes_no_database_query_per_request_while_nothing_changes(
    api, upstream, queries, settings
):
    make_credential(base_url=upstream.url)
    settings.POOL_REFRESH_SECONDS = 60
    settings.STATS_FLUSH_SECONDS = 60
    await api.message()  # loads the snapshot
    assert queries  # the counter sees the proxy's own queries (on its worker thread)
    queries.clear()
    for _ in range(20):
        response = await api.message()
        assert response.status_code == 200
    assert queries == []


async def test_it_keeps_the_upstream_secret_out_of_error_messages_and_traces(api, upstream):
    set_proxy_settings(routing_strategy="fill-first", request_retry=0)
    make_credential("first", base_url=upstream.url + "/first")
    make_credential("second", base_url=upstream.url + "/second")
    upstream.script(
        "/first/",
        Respond.error(401, "authentication_error", f"invalid x-api-key {UPSTREAM_SECRET}"),
    )
    upstream.script(
        "/second/",
        Respond.error(
            401, "authentication_error", "Incorrect API key provided: sk-proj-abc123****wxyz"
        ),
    )
    response = await api.message()
    assert (
        json.loads(response.content)["error"]["message"] == "Incorrect API key provided: [redacted]"
    )
    await pool.settle()
    trace = RoutingTrace.objects.get(request_id=response["request-id"])
    assert UPSTREAM_SECRET not in json.dumps(trace.steps)
    assert "[redacted]" in trace.steps[0]["error"]


@pytest.fixture
def refresh_timer(settings):
    """The worker's change check on its timer, as daphne runs it (proxysite.lifecycle)."""
    settings.POOL_REFRESH_SECONDS = 0.05
    pool.start_refresh_timer()
    yield
    pool._refresh_timer.cancel()


async def asgi_message(api) -> int:
    """POST /v1/messages through the ASGI application daphne serves (Django's test client adds
    request signals whose handlers run on the thread the change check uses)."""
    from proxysite.asgi import application

    body = json.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    headers = [(name.encode(), value.encode()) for name, value in api.headers().items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8317),
    }
    sent: list[dict] = []
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if request:
            return request.pop()
        await asyncio.Event().wait()  # no disconnect: the response ends the exchange

    async def send(message: dict) -> None:
        sent.append(message)

    await application(scope, receive, send)
    return sent[0]["status"]


async def test_with_the_refresh_timer_running_no_request_waits_on_the_change_check(
    api, upstream, monkeypatch, refresh_timer
):
    # Awaited by a request, the check cost it a thread hop and a database connection: every
    # request of a client sending less often than POOL_REFRESH_SECONDS paid about 1 ms.
    from accounts import versions

    make_credential(base_url=upstream.url)
    assert await asgi_message(api) == 200  # loads the snapshot
    checking, release = threading.Event(), threading.Event()
    original = versions.read_from_database

    def stuck_check():
        checking.set()
        release.wait(30)
        return original()

    monkeypatch.setattr(versions, "read_from_database", stuck_check)
    try:
        assert await asyncio.to_thread(checking.wait, 10)  # the timer's check is under way
        await asyncio.sleep(0.2)  # and the next one is due
        for _ in range(3):
            assert await asyncio.wait_for(asgi_message(api), 5) == 200
    finally:
        release.set()


async def test_the_refresh_timer_sees_a_change_with_no_request_coming_in(
    api, upstream, refresh_timer
):
    make_credential("primary", base_url=upstream.url)
    assert (await api.message()).status_code == 200
    make_credential("added later", base_url=upstream.url)
    for _ in range(100):
        labels = {credential.label for credential in pool.snapshot.credentials}
        if "added later" in labels:
            break
        await asyncio.sleep(0.05)
    assert "added later" in labels
