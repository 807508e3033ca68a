"""Client keys' limits and budgets at the door, counted in the database or in Redis: a refused
request gets 429 rate_limit_error naming the limit, with Retry-After, and nothing goes upstream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts import limiter
from accounts.models import ClientKey, UsageRecord
from accounts.pool import pool
from tests.conftest import REDIS_TEST_URL, Api, make_client_key, make_credential
from tests.fakes.upstream import Respond, anthropic_message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("published_prices", "fresh_pool"),
]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}
# A fixed moment (the clock stands still), so a test's requests share one rpm window.
START = datetime(2026, 12, 2, 10, 30, 2, tzinfo=UTC)


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    if request.param == "redis":
        use_redis(settings)
    return request.param


def use_redis(settings) -> None:
    from tests.services import redis_reachable

    if not redis_reachable(REDIS_TEST_URL):
        pytest.skip(f"needs Redis at {REDIS_TEST_URL}")
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    settings.REDIS_URL = REDIS_TEST_URL


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def client(**limits) -> Api:
    return Api(make_client_key("limited", **limits))


async def post(api: Api):
    return await api.post("/v1/messages", BODY)


def error_of(response) -> dict:
    return json.loads(response.content)["error"]


def reply(input_tokens: int, output_tokens: int, delay: float = 0.0) -> Respond:
    body = anthropic_message("ok", "claude-sonnet-4-6")
    body["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return Respond.json(body, delay=delay)


async def estimate() -> int:
    """What admission reserves for BODY (the local input-token estimate)."""
    from claude_api.translate.tokens import estimate_input_tokens

    return estimate_input_tokens(BODY)


async def test_it_lets_exactly_rpm_requests_through_a_minute(backend, clock, upstream):
    make_credential(base_url=upstream.url)
    api = client(rpm_limit=3)
    statuses = [(await post(api)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await post(api)
    assert error_of(refused) == {
        "type": "rate_limit_error",
        "message": "This API key's limit of 3 requests per minute is reached; it frees up in 58 s.",
    }
    assert refused["retry-after"] == "58"
    assert len(upstream.requests) == 3  # nothing sent upstream for the refused ones
    clock.move_to(datetime(2026, 12, 2, 10, 31, 1, tzinfo=UTC))
    assert (await post(api)).status_code == 200


async def test_it_holds_the_concurrency_limit_and_frees_a_slot_when_a_request_ends(
    backend, upstream
):
    make_credential(base_url=upstream.url)
    upstream.default = lambda request: reply(10, 5, delay=0.5)
    api = client(max_concurrent=2)
    responses = await asyncio.gather(*(post(api) for _ in range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429]
    [refused] = [r for r in responses if r.status_code == 429]
    assert "limit of 2 concurrent requests" in error_of(refused)["message"]
    await pool.settle()  # the slots' release runs off the request path
    assert (await post(api)).status_code == 200


async def test_it_stops_the_request_that_would_cross_a_token_budget(backend, clock, upstream):
    make_credential(base_url=upstream.url)
    upstream.default = lambda request: reply(10, 5)
    # Two requests use 30 tokens; a third would reserve its estimated input on top: one too many.
    budget = 30 + await estimate() - 1
    api = client(budget_tokens=budget, budget_period="day")
    assert (await post(api)).status_code == 200
    await pool.settle()
    assert (await post(api)).status_code == 200
    await pool.settle()
    refused = await post(api)
    assert refused.status_code == 429
    assert error_of(refused)["message"] == (
        f"This API key has used its daily budget of {budget:,} tokens; "
        "it renews at 2026-12-03 00:00 UTC."
    )
    assert int(refused["retry-after"]) == 13 * 3600 + 29 * 60 + 58
    assert len(upstream.requests) == 2


async def test_it_stops_requests_once_a_money_budget_is_spent(backend, clock, upstream):
    make_credential(base_url=upstream.url)
    # Sonnet 4.6 at $3 / $15: 1000 in + 200 out = $0.006 a request.
    upstream.default = lambda request: reply(1000, 200)
    api = client(budget_usd=Decimal("0.01"))
    assert (await post(api)).status_code == 200
    await pool.settle()
    assert (await post(api)).status_code == 200
    await pool.settle()
    refused = await post(api)
    assert refused.status_code == 429
    assert "monthly budget of $0.01" in error_of(refused)["message"]
    key = ClientKey.objects.get()
    use = limiter.current_use(key.pk, key.limits)
    assert use.budget_micro_usd == 12_000  # the reservations were replaced by the real cost


async def test_it_refuses_unpriced_models_to_a_key_with_a_money_budget(backend, upstream):
    make_credential(base_url=upstream.url, models=["house-model"])
    api = client(budget_usd=Decimal("5"))
    refused = await api.post("/v1/messages", {**BODY, "model": "house-model"})
    assert refused.status_code == 403
    assert "has no price" in error_of(refused)["message"]
    assert upstream.requests == []


async def test_it_writes_a_refused_request_to_the_ledger(backend, clock, upstream):
    make_credential(base_url=upstream.url)
    api = client(rpm_limit=1)
    assert (await post(api)).status_code == 200
    assert (await post(api)).status_code == 429
    await pool.settle()
    await pool.flush()
    refused = UsageRecord.objects.get(status=429)
    assert (refused.error_type, refused.attempts, refused.credential_id) == (
        "rate_limit_error",
        0,
        None,
    )


async def test_it_returns_a_refunded_reservation_when_the_upstream_fails(backend, clock, upstream):
    make_credential(base_url=upstream.url, request_retry=0)
    upstream.default = lambda request: Respond.error(400, "invalid_request_error", "no")
    api = client(tpm_limit=10_000)
    assert (await post(api)).status_code == 400
    await pool.settle()
    key = ClientKey.objects.get()
    assert limiter.current_use(key.pk, key.limits).tokens == 0


async def test_it_leaves_keys_without_limits_alone(backend, upstream):
    make_credential(base_url=upstream.url)
    api = client()
    for _ in range(5):
        assert (await post(api)).status_code == 200
    key = ClientKey.objects.get()
    assert limiter.current_use(key.pk, key.limits).requests == 0


async def test_a_request_releases_the_one_before_it_in_its_own_admissions_round_trip(
    upstream, settings, monkeypatch
):
    # One round trip a request under steady load, not two (admission, then release).
    use_redis(settings)
    make_credential(base_url=upstream.url)
    api = client(max_concurrent=1)
    sent: list[list[str]] = []
    original = limiter._redis

    async def recording(*commands):
        sent.append([command[0] for command in commands])
        return await original(*commands)

    monkeypatch.setattr(limiter, "_redis", recording)
    monkeypatch.setattr("claude_api.limits.RELEASE_DELAY", 5.0)  # only an admission releases
    assert (await post(api)).status_code == 200
    assert (await post(api)).status_code == 200  # the first one's slot, freed on the way
    assert sent == [["EVALSHA"], ["ZREM", "EVALSHA"]]


async def test_limits_are_not_checked_while_redis_is_unreachable(upstream, settings):
    # Every limited key refused (or a 500) for as long as Redis is away would be an outage of
    # the proxy's making: requests are served, uncounted, and the metrics say so.
    import socket

    from claude_api import limits as door

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    settings.REDIS_URL = f"redis://127.0.0.1:{free.getsockname()[1]}/0"
    free.close()
    make_credential(base_url=upstream.url)
    api = client(rpm_limit=1)
    before = door.unchecked.get("limited", 0)
    for _ in range(2):
        assert (await post(api)).status_code == 200
    assert door.unchecked["limited"] == before + 2
    from claude_api.metrics import render

    assert f'claude_proxy_limit_unchecked_total{{client_key="limited"}} {before + 2}' in render()


async def test_a_request_that_ends_before_any_upstream_call_gives_back_its_slot(backend, upstream):
    from accounts import quota

    credential = make_credential(base_url=upstream.url, request_retry=0)
    api = client(max_concurrent=1)
    upstream.script(
        "/v1/messages",
        Respond.error(429, "rate_limit_error", "slow down", headers={"retry-after": "60"}),
    )
    assert (await post(api)).status_code == 429  # and the credential cools down
    await pool.settle()
    cooling = await post(api)  # nothing to try: no upstream call awaits its admission
    assert cooling.status_code in (429, 503) and "cooling" in error_of(cooling)["message"]
    assert len(upstream.requests) == 1
    await pool.settle()
    quota.reset([credential.pk])
    assert (await post(api)).status_code == 200  # the slot was given back
