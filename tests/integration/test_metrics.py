"""GET /metrics: Prometheus text that prometheus_client parses, whose counters match the ledger;
served to a bearer token, or to loopback only when no token is set."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from django.test import AsyncClient, RequestFactory
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import UsageRecord
from accounts.pool import pool
from claude_api import limits, metrics
from proxysite import views
from tests.conftest import Api, make_client_key, make_credential, read_stream, set_proxy_settings
from tests.fakes.upstream import Respond, anthropic_events, anthropic_message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("published_prices", "fresh_pool"),
]

MODEL = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def fresh_metrics():
    metrics.metrics.__init__()
    limits.rejections.clear()
    yield
    metrics.metrics.__init__()
    limits.rejections.clear()


def reply(input_tokens: int, output_tokens: int) -> Respond:
    body = anthropic_message("ok", MODEL)
    body["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return Respond.json(body)


async def scrape(**headers: str) -> dict:
    response = await AsyncClient().get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **match: str) -> float:
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


async def test_it_counts_what_the_ledger_records(upstream):
    set_proxy_settings(request_retry=0)
    make_credential("primary", base_url=upstream.url)
    alice = Api(make_client_key("alice"))
    bob = Api(make_client_key("bob", rpm_limit=1))
    upstream.script("/v1/messages", reply(1000, 200), reply(30, 7))
    assert (await alice.message(MODEL)).status_code == 200
    assert (await bob.message(MODEL)).status_code == 200
    assert (await bob.message(MODEL)).status_code == 429  # bob's rpm
    events = copy.deepcopy(anthropic_events("a b", MODEL))
    events[0][1]["message"]["usage"] = {"input_tokens": 50, "output_tokens": 1}
    events[-2][1]["usage"] = {"output_tokens": 9}
    upstream.script("/v1/messages", Respond.sse(events))
    await read_stream(await alice.message(MODEL, stream=True))
    upstream.script("/v1/messages", Respond.error(500, "api_error", "boom"))
    assert (await alice.message(MODEL)).status_code == 500

    samples = await scrape()
    await pool.settle()
    await pool.flush()
    ledger = list(UsageRecord.objects.all())
    assert len(ledger) == 5
    assert total(samples, "claude_proxy_requests_total") == len(ledger)
    for status in (200, 429, 500):
        assert total(samples, "claude_proxy_requests_total", status=str(status)) == sum(
            1 for r in ledger if r.status == status
        )
    assert total(samples, "claude_proxy_requests_total", client_key="bob", status="429") == 1
    for kind, column in (("input", "input_tokens"), ("output", "output_tokens")):
        assert total(samples, "claude_proxy_tokens_total", kind=kind) == sum(
            getattr(r, column) for r in ledger
        )
    assert total(samples, "claude_proxy_tokens_total", kind="input") == 1080
    ledger_cost = sum((r.cost for r in ledger if r.cost is not None), Decimal(0))
    assert total(samples, "claude_proxy_cost_usd_total") == pytest.approx(float(ledger_cost))
    assert total(samples, "claude_proxy_upstream_attempts_total") == sum(r.attempts for r in ledger)
    assert total(samples, "claude_proxy_limit_rejections_total", client_key="bob", limit="rpm") == 1
    assert total(samples, "claude_proxy_request_duration_seconds_count") == len(ledger)
    assert total(samples, "claude_proxy_ttfb_seconds_count") == sum(
        1 for r in ledger if r.ttfb_ms is not None
    )
    # The last request's 500 cooled the credential down (transient).
    assert (
        total(samples, "claude_proxy_credential_state", credential="primary", state="cooling") == 1
    )


async def test_it_shows_a_cooling_credential(upstream):
    set_proxy_settings(request_retry=0)
    make_credential("primary", base_url=upstream.url)
    api = Api(make_client_key())
    upstream.script(
        "/v1/messages",
        Respond.error(429, "rate_limit_error", "slow", headers={"retry-after": "60"}),
    )
    assert (await api.message(MODEL)).status_code == 429
    samples = await scrape()
    assert (
        total(samples, "claude_proxy_credential_state", credential="primary", state="cooling") == 1
    )


async def test_it_serves_a_bearer_token_and_refuses_anything_else(settings):
    settings.METRICS_TOKEN = "metrics-token-1"
    refused = await AsyncClient().get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    wrong = await AsyncClient().get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    await scrape(authorization="Bearer metrics-token-1")


async def test_it_serves_loopback_only_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    remote = await views.metrics_view(RequestFactory().get("/metrics", REMOTE_ADDR="203.0.113.9"))
    assert remote.status_code == 403
    assert json.loads(remote.content)["error"]["type"] == "permission_error"
    await scrape()  # the test client is 127.0.0.1
