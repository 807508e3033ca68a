"""What only a real server shows: incremental delivery, keep-alives, disconnects, drops."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from accounts.models import QuotaState
from tests.conftest import make_client_key, make_credential, set_proxy_settings, sse_events
from tests.fakes.upstream import DROP, Respond, anthropic_events, anthropic_message

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture
def key():
    return make_client_key()


def post(daphne, key, body, timeout=30.0, **kw):
    return httpx.post(
        daphne.url + "/v1/messages",
        json=body,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=timeout,
        **kw,
    )


def test_it_relays_each_event_as_soon_as_the_upstream_sends_it(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    events = anthropic_events("one two three", "claude-sonnet-4-6")
    # One event, then a 1.5 s pause before the rest: the first must reach the client long before.
    chunks = Respond.sse(events).chunks
    upstream.script(
        "/v1/messages",
        Respond(200, {"content-type": "text/event-stream"}, chunks=[chunks[0], 1.5, *chunks[1:]]),
    )
    arrivals = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        daphne.url + "/v1/messages",
        json={**BODY, "stream": True},
        headers={"x-api-key": key},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    assert b"message_start" in arrivals[0][1]
    assert arrivals[0][0] < 1.0  # not held back until the stream ends
    assert arrivals[-1][0] >= 1.5
    names = [n for n, _ in sse_events(b"".join(c for _, c in arrivals))]
    assert names[0] == "message_start" and names[-1] == "message_stop"


def test_non_stream_answers_and_errors_carry_their_content_length(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    upstream.script("/v1/messages", Respond.anthropic_message("sized", "claude-sonnet-4-6"))
    responses = [
        post(daphne, key, BODY),
        post(daphne, "sk-px-not-a-key", BODY),
        post(daphne, key, {**BODY, "max_tokens": "many"}),
    ]
    assert [response.status_code for response in responses] == [200, 401, 400]
    for response in responses:
        assert response.headers["content-length"] == str(len(response.content))
        assert "transfer-encoding" not in response.headers


def test_it_reassembles_sse_split_at_odd_byte_boundaries(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages", Respond.anthropic_stream("split me please", "claude-sonnet-4-6", split=3)
    )
    response = post(daphne, key, {**BODY, "stream": True})
    text = "".join(
        d["delta"]["text"] for n, d in sse_events(response.content) if n == "content_block_delta"
    )
    assert text == "split me please"


def test_it_writes_newlines_while_a_slow_non_stream_upstream_works(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    set_proxy_settings(nonstream_keepalive_interval=1)
    upstream.script(
        "/v1/messages", Respond.anthropic_message("slow", "claude-sonnet-4-6", delay=2.5)
    )
    response = post(daphne, key, BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content.startswith(b"\n\n")
    assert json.loads(response.content)["content"][0]["text"] == "slow"


def test_it_keeps_failing_over_after_a_keepalive_committed_200(daphne, upstream, key):
    set_proxy_settings(
        nonstream_keepalive_interval=0.5, routing_strategy="fill-first", request_retry=0
    )
    make_credential("first", base_url=upstream.url + "/first")
    make_credential("second", base_url=upstream.url + "/second")
    upstream.script("/first/", Respond.error(503, "api_error", "down", delay=1.2))
    upstream.script(
        "/second/", Respond.anthropic_message("rescued", "claude-sonnet-4-6", delay=0.3)
    )
    response = post(daphne, key, BODY)
    assert response.status_code == 200
    assert response.content.startswith(b"\n")
    assert json.loads(response.content)["content"][0]["text"] == "rescued"


def test_it_writes_an_error_envelope_when_nothing_is_left_after_commit(daphne, upstream, key):
    set_proxy_settings(nonstream_keepalive_interval=0.5, request_retry=0)
    make_credential("only", base_url=upstream.url + "/only")
    upstream.script("/only/", Respond.error(503, "api_error", "down", delay=1.2))
    response = post(daphne, key, BODY)
    assert response.status_code == 200  # committed by the keep-alive
    body = json.loads(response.content)
    assert body["type"] == "error" and body["error"]["message"] == "down"


def test_it_keeps_a_quiet_stream_alive_with_comments(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    set_proxy_settings(stream_keepalive_seconds=1)
    chunks = Respond.anthropic_stream("a b", "claude-sonnet-4-6").chunks
    upstream.script(
        "/v1/messages",
        Respond(200, {"content-type": "text/event-stream"}, chunks=[chunks[0], 2.5, *chunks[1:]]),
    )
    response = post(daphne, key, {**BODY, "stream": True})
    body = response.content
    start = body.index(b"message_start")
    after = body[start:]
    assert after.count(b": keep-alive\n\n") == 2
    assert after.index(b": keep-alive") < after.index(b"content_block_start")


def test_it_cancels_the_upstream_when_the_client_disconnects(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    chunks = Respond.anthropic_stream("a b", "claude-sonnet-4-6").chunks
    upstream.script(
        "/v1/messages",
        Respond(200, {"content-type": "text/event-stream"}, chunks=[chunks[0], 30, *chunks[1:]]),
    )
    with httpx.stream(
        "POST",
        daphne.url + "/v1/messages",
        json={**BODY, "stream": True},
        headers={"x-api-key": key},
        timeout=30,
    ) as response:
        for chunk in response.iter_raw():
            if b"message_start" in chunk:
                break
    closed_at = time.monotonic()
    assert upstream.wait_for(
        lambda: upstream.requests and upstream.requests[-1].client_gone, timeout=3
    )
    assert time.monotonic() - closed_at < 1.0
    assert upstream.wait_for(lambda: upstream.open_connections == 0, timeout=3)
    assert not QuotaState.objects.exists()  # a client leaving never counts against a credential


def test_it_cancels_a_pending_non_stream_upstream_call_when_the_client_leaves(
    daphne, upstream, key
):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages",
        Respond(
            200,
            {"content-type": "application/json"},
            chunks=[30, json.dumps(anthropic_message("x", "m")).encode()],
        ),
    )
    with pytest.raises(httpx.ReadTimeout):
        post(daphne, key, BODY, timeout=0.5)
    assert upstream.wait_for(
        lambda: upstream.requests and upstream.requests[-1].client_gone, timeout=3
    )
    assert not QuotaState.objects.exists()


def test_it_ends_a_stream_with_an_error_event_when_the_upstream_drops(daphne, upstream, key):
    make_credential(base_url=upstream.url)
    chunks = Respond.anthropic_stream("a b", "claude-sonnet-4-6").chunks
    upstream.script(
        "/v1/messages",
        Respond(200, {"content-type": "text/event-stream"}, chunks=[*chunks[:3], DROP]),
    )
    response = post(daphne, key, {**BODY, "stream": True})
    events = sse_events(response.content)
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"


def test_it_answers_a_stream_that_fails_before_its_first_event_with_the_real_status(
    daphne, upstream, key
):
    make_credential(base_url=upstream.url)
    set_proxy_settings(request_retry=0)
    upstream.script(
        "/v1/messages", Respond.error(429, "rate_limit_error", "slow", headers={"retry-after": "3"})
    )
    response = post(daphne, key, {**BODY, "stream": True})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_it_answers_head_and_healthz_without_auth(daphne):
    assert httpx.head(daphne.url + "/").status_code == 200
    assert httpx.get(daphne.url + "/healthz").json() == {"status": "ok"}
