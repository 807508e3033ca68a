"""The request path stays off the database while nothing changes, and keeps secrets out."""

from __future__ import annotations

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
