"""Rotation, failover, cooldowns and retry rounds, end to end against the fake upstream."""

from __future__ import annotations

import json
import time

import pytest
import time_machine

from accounts.models import QuotaState, RoutingTrace
from accounts.pool import pool
from tests.conftest import make_credential, read_stream, set_proxy_settings, sse_events
from tests.fakes.upstream import DROP, Respond

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


def three_credentials(upstream):
    """first, second and third, all serving every Claude model; fill-first prefers first."""
    set_proxy_settings(routing_strategy="fill-first")
    return [
        make_credential(name, base_url=f"{upstream.url}/{name}")
        for name in ("first", "second", "third")
    ]


def served_by(upstream) -> list[str]:
    return [r.path.split("/")[1] for r in upstream.requests]


async def test_it_fails_over_on_429_and_skips_the_credential_until_its_reset(api, upstream):
    three_credentials(upstream)
    upstream.script(
        "/first/",
        Respond.error(429, "rate_limit_error", "slow down", headers={"retry-after": "30"}),
    )
    with time_machine.travel(time.time(), tick=True) as clock:
        response = await api.message()
        assert response.status_code == 200
        assert served_by(upstream) == ["first", "second"]
        assert response["x-proxy-attempts"] == "2"

        await api.message()
        assert served_by(upstream)[2:] == ["second"]  # first is cooling: not even tried
        state = QuotaState.objects.get(credential__label="first")
        assert state.reason == "rate_limited" and state.reset_source == "retry-after"

        clock.shift(31)
        await api.message()
        assert served_by(upstream)[3:] == ["first"]  # an expired cooldown never blocks
    assert not QuotaState.objects.exists()  # and its success cleared the state


async def test_it_cools_a_credential_down_after_a_503(api, upstream):
    three_credentials(upstream)
    upstream.script("/first/", Respond.error(503, "api_error", "unavailable"))
    before = time.time()
    response = await api.message()
    assert response.status_code == 200
    state = QuotaState.objects.get(credential__label="first")
    assert state.status == "cooling" and state.reason == "transient"
    assert 59 <= state.next_retry_at.timestamp() - before <= 62
    await api.message()
    assert served_by(upstream) == ["first", "second", "second"]


async def test_it_returns_a_request_fault_at_once_without_failover_or_cooldown(api, upstream):
    three_credentials(upstream)
    upstream.script(
        "/first/",
        Respond.error(
            400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
        ),
    )
    response = await api.message()
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["message"].startswith("prompt is too long")
    assert served_by(upstream) == ["first"]
    assert not QuotaState.objects.exists()


async def test_it_answers_429_with_retry_after_when_every_credential_is_cooling(api, upstream):
    three_credentials(upstream)
    set_proxy_settings(request_retry=0)
    for name in ("first", "second", "third"):
        upstream.script(
            f"/{name}/",
            Respond.error(429, "rate_limit_error", "busy", headers={"retry-after": "40"}),
        )
    first = await api.message()
    assert first.status_code == 429  # the last upstream error, as it was
    assert json.loads(first.content)["error"]["message"] == "busy"

    second = await api.message()
    assert second.status_code == 429
    body = json.loads(second.content)
    assert body["error"]["type"] == "rate_limit_error"
    assert "claude-sonnet-4-6" in body["error"]["message"]
    assert 38 <= int(second["retry-after"]) <= 41
    assert len(upstream.requests) == 3  # nothing was attempted the second time


async def test_it_counts_retry_rounds_per_credential_exactly(api, upstream):
    """reference-behaviour.md scenario 19: request-retry 3, A(limit 3), B(2), C(2), always 500,
    cooling disabled → A is called 4 times, B 3 times, C 3 times."""
    set_proxy_settings(request_retry=3, disable_cooling=True, max_retry_interval=0)
    for name, limit in (("A", 3), ("B", 2), ("C", 2)):
        make_credential(name, base_url=f"{upstream.url}/{name}", request_retry=limit)
    upstream.default = lambda request: Respond.error(500, "api_error", "boom")
    response = await api.message()
    assert response.status_code == 500
    counts = {name: served_by(upstream).count(name) for name in "ABC"}
    assert counts == {"A": 4, "B": 3, "C": 3}
    assert response["x-proxy-attempts"] == "10"


async def test_it_waits_for_a_short_cooldown_before_the_next_round(api, upstream):
    set_proxy_settings(request_retry=1, max_retry_interval=3)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script(
        "/only/", Respond.error(429, "rate_limit_error", "wait", headers={"retry-after": "1"})
    )
    started = time.monotonic()
    response = await api.message()
    assert response.status_code == 200
    assert 0.9 <= time.monotonic() - started < 3
    assert served_by(upstream) == ["only", "only"]


async def test_it_does_not_wait_longer_than_max_retry_interval(api, upstream):
    set_proxy_settings(request_retry=3, max_retry_interval=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script(
        "/only/", Respond.error(429, "rate_limit_error", "wait", headers={"retry-after": "1"})
    )
    response = await api.message()
    assert response.status_code == 429
    assert served_by(upstream) == ["only"]


async def test_it_blocks_every_model_of_a_credential_on_a_unified_rejection(api, upstream):
    three_credentials(upstream)
    reset = int(time.time()) + 3600
    upstream.script(
        "/first/",
        Respond.error(
            429,
            "rate_limit_error",
            "subscription limit",
            headers={
                "anthropic-ratelimit-unified-5h-status": "rejected",
                "anthropic-ratelimit-unified-5h-reset": str(reset),
            },
        ),
    )
    await api.message(model="claude-sonnet-4-6")
    state = QuotaState.objects.get(credential__label="first")
    assert state.model == "" and state.reason == "credential_quota"
    assert abs(state.next_retry_at.timestamp() - (reset + 1)) < 2
    await api.message(model="claude-opus-4-8")
    assert served_by(upstream) == ["first", "second", "second"]


async def test_it_marks_a_401_credential_as_needing_attention(api, upstream):
    three_credentials(upstream)
    upstream.script("/first/", Respond.error(401, "authentication_error", "invalid x-api-key"))
    response = await api.message()
    assert response.status_code == 200
    state = QuotaState.objects.get(credential__label="first")
    assert state.status == "attention" and state.reason == "unauthorized" and state.model == ""


async def test_it_fails_over_before_the_first_stream_event(api, upstream):
    three_credentials(upstream)
    upstream.script("/first/", Respond.error(529, "overloaded_error", "Overloaded"))
    response = await api.message(stream=True)
    events = sse_events(await read_stream(response))
    assert events[-1][0] == "message_stop"
    assert served_by(upstream) == ["first", "second"]


async def test_it_fails_over_when_an_upstream_stream_ends_with_no_event(api, upstream):
    three_credentials(upstream)
    upstream.script(
        "/first/", Respond(200, {"content-type": "text/event-stream"}, chunks=[b": nothing\n\n"])
    )
    response = await api.message(stream=True)
    assert response.status_code == 200
    assert sse_events(await read_stream(response))[-1][0] == "message_stop"
    assert QuotaState.objects.get(credential__label="first").reason == "transient"


async def test_it_cools_down_a_credential_whose_stream_fails_after_the_first_event(api, upstream):
    three_credentials(upstream)
    start = Respond.anthropic_stream("a b").chunks[:2]
    upstream.script(
        "/first/",
        Respond(
            200,
            {"content-type": "text/event-stream"},
            chunks=[
                *start,
                b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal"}}\n\n',
            ],
        ),
    )
    response = await api.message(stream=True)
    events = sse_events(await read_stream(response))
    assert events[-1] == (
        "error",
        {
            "type": "error",
            "error": {"type": "api_error", "message": "Internal"},
            "request_id": response["request-id"],
        },
    )
    await pool.settle()
    assert QuotaState.objects.get(credential__label="first").status == "cooling"
    trace = RoutingTrace.objects.get(request_id=response["request-id"])
    assert trace.steps[-1]["outcome"] == "failed after first byte"


async def test_it_keeps_a_session_on_one_credential_and_fails_over_when_it_cools(api, upstream):
    set_proxy_settings(routing_strategy="round-robin", session_affinity=True)
    for name in ("first", "second", "third"):
        make_credential(name, base_url=f"{upstream.url}/{name}")
    session = {"x-claude-code-session-id": "3f2a1e0c-aaaa-bbbb-cccc-000000000001"}
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    for _ in range(4):
        await api.post("/v1/messages", body, headers=session)
    chosen = served_by(upstream)
    assert len(set(chosen)) == 1
    upstream.script(
        f"/{chosen[0]}/",
        Respond.error(429, "rate_limit_error", "busy", headers={"retry-after": "60"}),
    )
    await api.post("/v1/messages", body, headers=session)
    moved = served_by(upstream)[-1]
    assert moved != chosen[0]
    await api.post("/v1/messages", body, headers=session)
    assert served_by(upstream)[-1] == moved  # sticks to the new one


async def test_it_round_robins_across_credentials(api, upstream):
    for name in ("first", "second", "third"):
        make_credential(name, base_url=f"{upstream.url}/{name}")
    for _ in range(6):
        await api.message()
    assert sorted(served_by(upstream)) == ["first"] * 2 + ["second"] * 2 + ["third"] * 2


async def test_it_only_uses_a_lower_priority_when_the_higher_tier_is_unavailable(api, upstream):
    make_credential("main", base_url=f"{upstream.url}/main", priority=10)
    make_credential("backup", base_url=f"{upstream.url}/backup", priority=0)
    for _ in range(3):
        await api.message()
    assert served_by(upstream) == ["main"] * 3
    upstream.script("/main/", Respond.error(500, "api_error", "down"))
    await api.message()
    assert served_by(upstream)[3:] == ["main", "backup"]


async def test_it_records_a_routing_trace_for_a_retried_request(api, upstream):
    three_credentials(upstream)
    upstream.script("/first/", Respond.error(500, "api_error", "boom"))
    response = await api.message()
    await pool.settle()
    trace = RoutingTrace.objects.get(request_id=response["request-id"])
    assert trace.attempts == 2 and trace.status == 200
    assert [(s["credential"], s["outcome"]) for s in trace.steps] == [
        ("first", "failed"),
        ("second", "ok"),
    ]
    assert "boom" in trace.steps[0]["error"]


async def test_it_lets_the_per_credential_cooling_switch_win(api, upstream):
    set_proxy_settings(routing_strategy="fill-first", disable_cooling=True, request_retry=0)
    make_credential("first", base_url=f"{upstream.url}/first", disable_cooling=False)
    make_credential("second", base_url=f"{upstream.url}/second")
    upstream.script("/first/", Respond.error(503, "api_error", "x"))
    upstream.script("/second/", Respond.error(503, "api_error", "x"))
    await api.message()
    states = {s.credential.label: s for s in QuotaState.objects.select_related("credential")}
    assert states["first"].next_retry_at is not None
    assert states["second"].next_retry_at is None and states["second"].last_status == 503


async def test_it_clears_a_model_state_on_the_next_success(api, upstream):
    set_proxy_settings(request_retry=1, max_retry_interval=3, transient_error_cooldown_seconds=1)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script("/only/", Respond.error(503, "api_error", "flaky"))
    response = await api.message()
    assert response.status_code == 200
    assert not QuotaState.objects.exists()


async def test_it_aggregates_success_and_failure_counts_and_key_use_off_the_request_path(
    api, upstream
):
    from accounts.models import ClientKey, CredentialStats

    three_credentials(upstream)
    upstream.script("/first/", Respond.error(500, "api_error", "boom"))
    for _ in range(3):
        await api.message()
    assert not CredentialStats.objects.exists()  # nothing written per request
    await pool.flush()
    counts = {
        s.credential.label: (s.successes, s.failures)
        for s in CredentialStats.objects.select_related("credential")
    }
    assert counts == {"first": (0, 1), "second": (3, 0)}
    assert ClientKey.objects.get().last_used_at is not None


async def test_it_probes_the_only_credential_of_a_model_after_a_transient_failure(api, upstream):
    """One 5xx used to turn into a minute of 429s that the proxy never tried upstream."""
    set_proxy_settings(request_retry=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script("/only/", Respond.error(502, "api_error", "bad gateway"))
    first = await api.message()
    assert first.status_code == 502
    assert QuotaState.objects.get(credential__label="only").reason == "transient"

    second = await api.message()
    assert second.status_code == 200  # sent upstream anyway: a half-open probe
    assert served_by(upstream) == ["only", "only"]
    assert not QuotaState.objects.exists()  # and its success cleared the cooldown
    await pool.settle()
    trace = RoutingTrace.objects.get(request_id=second["request-id"])
    assert [step["outcome"] for step in trace.steps] == ["skipped", "probe", "ok"]
    assert "half-open probe" in trace.steps[1]["reason"]


async def test_it_extends_a_transient_cooldown_when_the_probe_fails(api, upstream):
    set_proxy_settings(request_retry=0, transient_error_cooldown_seconds=60)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.default = lambda request: Respond.error(503, "api_error", "still down")
    with time_machine.travel(time.time(), tick=False) as clock:
        assert (await api.message()).status_code == 503
        first_until = QuotaState.objects.get().next_retry_at
        clock.shift(20)
        response = await api.message()
        assert response.status_code == 503  # the upstream's own error, not a proxy 429
        assert json.loads(response.content)["error"]["message"] == "still down"
        assert (QuotaState.objects.get().next_retry_at - first_until).total_seconds() == 20
    assert served_by(upstream) == ["only", "only"]


async def test_it_probes_the_credential_that_failed_longest_ago_once_per_request(api, upstream):
    three_credentials(upstream)
    set_proxy_settings(request_retry=0)
    upstream.default = lambda request: Respond.error(500, "api_error", "down")
    with time_machine.travel(time.time(), tick=False) as clock:
        await api.message()  # all three fail at once
        for _ in range(4):
            clock.shift(5)
            response = await api.message()
            assert response.status_code == 500  # the upstream's own error
    # Then one probe a request, each time on the credential whose failure is the oldest.
    assert served_by(upstream) == ["first", "second", "third", "first", "second", "third", "first"]


async def test_it_never_probes_a_credential_whose_cooldown_the_upstream_timed(api, upstream):
    set_proxy_settings(request_retry=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script(
        "/only/", Respond.error(429, "rate_limit_error", "later", headers={"retry-after": "40"})
    )
    assert (await api.message()).status_code == 429
    second = await api.message()
    assert second.status_code == 429
    assert "cooling down" in json.loads(second.content)["error"]["message"]
    assert served_by(upstream) == ["only"]


async def test_it_never_probes_a_credential_that_needs_attention(api, upstream):
    set_proxy_settings(request_retry=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.script("/only/", Respond.error(401, "authentication_error", "invalid x-api-key"))
    assert (await api.message()).status_code == 401
    assert (await api.message()).status_code == 429
    assert served_by(upstream) == ["only"]


async def test_it_serves_a_stream_after_a_stream_was_cut_mid_way(api, upstream):
    """Claude Code retries a cut stream at once (and then falls back to non-streaming): with
    one credential both retries used to meet the proxy's own 429."""
    set_proxy_settings(request_retry=0)
    make_credential("only", base_url=f"{upstream.url}/only")
    start = Respond.anthropic_stream("a b").chunks[:2]
    upstream.script(
        "/only/", Respond(200, {"content-type": "text/event-stream"}, chunks=[*start, DROP])
    )
    cut = await api.message(stream=True)
    assert sse_events(await read_stream(cut))[-1][0] == "error"
    await pool.settle()
    assert QuotaState.objects.get().reason == "transient"
    retried = await api.message(stream=True)
    assert sse_events(await read_stream(retried))[-1][0] == "message_stop"
    fallback = await api.message()
    assert fallback.status_code == 200


async def test_it_bounds_a_requests_whole_wait_by_max_retry_interval(api, upstream):
    """Each round used to wait up to max_retry_interval anew: 3 rounds of retry-after 1 with a
    1.5 s budget waited 3 s. Now the wait stops when the budget is spent."""
    set_proxy_settings(request_retry=3, max_retry_interval=1.5)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.default = lambda request: Respond.error(
        429, "rate_limit_error", "wait", headers={"retry-after": "1"}
    )
    started = time.monotonic()
    response = await api.message()
    elapsed = time.monotonic() - started
    assert response.status_code == 429  # the upstream's error, as it was
    assert response["retry-after"] == "1"
    assert json.loads(response.content)["error"]["message"] == "wait"
    assert served_by(upstream) == ["only", "only"]
    assert 0.9 <= elapsed < 1.9


async def test_it_bounds_a_streams_wait_across_its_bootstrap_passes(api, upstream):
    set_proxy_settings(request_retry=3, max_retry_interval=1.5, bootstrap_retries=2)
    make_credential("only", base_url=f"{upstream.url}/only")
    upstream.default = lambda request: Respond.error(
        429, "rate_limit_error", "wait", headers={"retry-after": "1"}
    )
    started = time.monotonic()
    response = await api.message(stream=True)
    assert response.status_code == 429
    assert time.monotonic() - started < 1.9
