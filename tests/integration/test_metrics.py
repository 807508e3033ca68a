"""GET /metrics: Prometheus text that prometheus_client parses, whose counters match the ledger;
served to a bearer token, or to loopback only when no token is set."""

from __future__ import annotations

import asyncio
import copy
import json
from decimal import Decimal

import pytest
from django.test import AsyncClient, RequestFactory
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import UsageRecord
from accounts.pool import pool
from accounts.usage import RequestOutcome, Tokens
from claude_api import limits, metrics, metrics_share
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


def outcome(status: int = 200, key: str = "alice", cost: str | None = "0.1") -> RequestOutcome:
    return RequestOutcome(
        started_at=0.0,
        request_id="req",
        endpoint="messages",
        client_key_id=1,
        client_key_name=key,
        model=MODEL,
        stream=False,
        status=status,
        provider="anthropic",
        tokens=Tokens(input=10, output=2),
        cost=None if cost is None else Decimal(cost),
        latency_ms=300,
        ttfb_ms=40,
        attempts=1,
    )


def other_worker(requests: int) -> metrics_share.Totals:
    """What another worker of the same supervisor would have published."""
    own, other = metrics.metrics, metrics.Metrics()
    for _ in range(requests):
        other.observe(outcome())
    metrics.metrics = other  # what live_totals reads
    try:
        return metrics.live_totals()
    finally:
        metrics.metrics = own


async def test_under_a_supervisor_a_scrape_reports_every_worker_of_the_server(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PROXY_METRICS_DIR", str(tmp_path))
    monkeypatch.setenv("PROXY_WORKER", "5")
    metrics_share.publish(tmp_path, "3", other_worker(4))
    metrics_share.publish(tmp_path, "4", other_worker(2))
    metrics_share.retire_worker(tmp_path, "4")  # exited: its counts stay
    for _ in range(3):
        metrics.observe(outcome())
    metrics.observe(outcome(status=500, cost=None))

    samples = await scrape()
    assert total(samples, "claude_proxy_requests_total", status="200") == 4 + 2 + 3
    assert total(samples, "claude_proxy_requests_total", status="500") == 1
    assert total(samples, "claude_proxy_tokens_total", kind="input") == 10 * 10
    assert total(samples, "claude_proxy_cost_usd_total") == pytest.approx(0.1 * 9)
    assert total(samples, "claude_proxy_unpriced_requests_total") == 1
    assert total(samples, "claude_proxy_request_duration_seconds_count") == 10
    assert total(samples, "claude_proxy_request_duration_seconds_bucket", le="0.25") == 0
    assert total(samples, "claude_proxy_request_duration_seconds_bucket", le="0.5") == 10
    # This worker's counts were published on the way: the next scrape may land elsewhere.
    assert (tmp_path / "worker-5.json").exists()
    mine = metrics_share.exchange(tmp_path, "3", other_worker(4))
    assert sum(mine["claude_proxy_requests_total"].samples.values()) == 10


async def test_the_timer_publishes_this_workers_counts_and_the_last_publish_stops_it(
    tmp_path, monkeypatch, settings
):
    settings.STATS_FLUSH_SECONDS = 0.05
    monkeypatch.setenv("PROXY_METRICS_DIR", str(tmp_path))
    monkeypatch.setenv("PROXY_WORKER", "0")
    sharing = metrics.Sharing()
    sharing.start()
    metrics.observe(outcome())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if (tmp_path / "worker-0.json").exists():
            break
    seen = metrics_share.exchange(tmp_path, "1", {})
    assert sum(seen["claude_proxy_requests_total"].samples.values()) == 1
    metrics.observe(outcome())
    await sharing.last_publish()
    assert sharing._timer is None
    metrics_share.retire_worker(tmp_path, "0")
    seen = metrics_share.exchange(tmp_path, "1", {})
    assert sum(seen["claude_proxy_requests_total"].samples.values()) == 2


async def test_an_idle_worker_does_not_write_its_snapshot_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXY_METRICS_DIR", str(tmp_path))
    monkeypatch.setenv("PROXY_WORKER", "0")
    sharing = metrics.Sharing()
    metrics.observe(outcome())
    await sharing.publish()
    snapshot = tmp_path / "worker-0.json"
    snapshot.unlink()  # to see whether it comes back
    await sharing.publish()
    assert not snapshot.exists()
    metrics.observe(outcome())
    await sharing.publish()
    assert snapshot.exists()


async def test_a_single_worker_writes_nothing_and_reports_its_own_counts(tmp_path, monkeypatch):
    monkeypatch.delenv("PROXY_METRICS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    metrics.observe(outcome())
    metrics.sharing.start()  # no supervisor: no timer
    assert metrics.sharing._timer is None
    response = await AsyncClient().get("/metrics")
    assert response.content.decode() == metrics.render(metrics.live_totals())
    assert "claude_proxy_requests_total{" in response.content.decode()
    assert list(tmp_path.iterdir()) == []


async def test_a_scrape_that_cannot_read_the_other_workers_fails_rather_than_undercount(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PROXY_METRICS_DIR", str(tmp_path / "gone"))
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
