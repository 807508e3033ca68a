"""Routing traces are kept for requests a failure, probe or wait changed; requests that merely
passed a cooling credential by are counted per credential and hour instead."""

from __future__ import annotations

import pytest

from accounts.models import CredentialStats, RoutingTrace
from accounts.pool import pool
from tests.conftest import make_credential, set_proxy_settings
from tests.fakes.upstream import Respond

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


async def test_it_summarises_routine_skips_instead_of_tracing_each_request(api, upstream):
    set_proxy_settings(routing_strategy="fill-first")
    make_credential("first", base_url=f"{upstream.url}/first", priority=10)
    make_credential("second", base_url=f"{upstream.url}/second")
    upstream.script(
        "/first/", Respond.error(429, "rate_limit_error", "slow", headers={"retry-after": "60"})
    )
    failed_over = await api.message()
    assert failed_over.status_code == 200
    for _ in range(5):
        assert (await api.message()).status_code == 200
    await pool.settle()
    await pool.flush()
    # Only the request the 429 changed has a trace.
    [trace] = RoutingTrace.objects.all()
    assert trace.request_id == failed_over["request-id"]
    assert [s["outcome"] for s in trace.steps] == ["failed", "ok"]
    stats = {
        s.credential.label: (s.successes, s.failures, s.skips)
        for s in CredentialStats.objects.select_related("credential")
    }
    assert stats == {"first": (0, 1, 5), "second": (6, 0, 0)}


async def test_it_still_traces_a_skip_that_ended_in_an_error(api, upstream):
    set_proxy_settings(request_retry=0, max_retry_interval=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script("/only/", Respond.error(401, "authentication_error", "bad key"))
    assert (await api.message()).status_code == 401
    refused = await api.message()
    assert refused.status_code == 429
    await pool.settle()
    trace = RoutingTrace.objects.get(request_id=refused["request-id"])
    assert [s["outcome"] for s in trace.steps] == ["skipped"]
