"""POST /v1/messages against an Anthropic upstream: pass-through, mapping, errors."""

from __future__ import annotations

import json

import pytest

from accounts.models import QuotaState
from tests.conftest import (
    UPSTREAM_SECRET,
    make_credential,
    read_stream,
    set_proxy_settings,
    sse_events,
)
from tests.fakes.upstream import Respond, anthropic_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


async def test_it_forwards_the_body_byte_for_byte_and_returns_the_upstream_json(api, upstream):
    make_credential(base_url=upstream.url)
    raw = b'{"model": "claude-sonnet-4-6", "max_tokens": 64, "unknown_field": {"x": 1},\n "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "be brief"}]}'
    response = await api.post("/v1/messages?beta=true", raw)
    assert response.status_code == 200
    assert upstream.requests[-1].body == raw
    assert upstream.requests[-1].path == "/v1/messages"
    assert upstream.requests[-1].query == {"beta": ["true"]}
    assert json.loads(response.content)["content"][0]["text"] == "Hello from the fake upstream"
    assert response["request-id"].startswith("req_")
    assert response["x-proxy-attempts"] == "1"


async def test_it_authenticates_upstream_with_the_api_key_and_keeps_client_headers(api, upstream):
    make_credential(
        base_url=upstream.url, extra_headers={"anthropic-beta": "extra-beta-1", "x-team": "a"}
    )
    await api.post(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={
            "anthropic-version": "2026-10-21",
            "anthropic-beta": "claude-code-20250219,effort-2025-11-24",
        },
    )
    sent = upstream.requests[-1].headers
    assert sent["x-api-key"] == UPSTREAM_SECRET
    assert "authorization" not in sent
    assert sent["anthropic-version"] == "2026-10-21"
    assert sent["anthropic-beta"] == "claude-code-20250219,effort-2025-11-24,extra-beta-1"
    assert sent["x-team"] == "a"
    assert api.key not in json.dumps(sent)


async def test_it_uses_bearer_and_the_oauth_beta_for_oauth_tokens(api, upstream):
    make_credential(base_url=upstream.url, secret="sk-ant-oat01-abcdefghijklmnop")
    await api.message(headers=None)
    sent = upstream.requests[-1].headers
    assert sent["authorization"] == "Bearer sk-ant-oat01-abcdefghijklmnop"
    assert "x-api-key" not in sent
    assert "oauth-2025-04-20" in sent["anthropic-beta"].split(",")
    assert sent["anthropic-version"] == "2023-06-01"


async def test_it_maps_an_alias_to_the_upstream_name_and_back(api, upstream):
    make_credential(base_url=upstream.url, models=[("claude-opus-4-8", "smart")])
    response = await api.message(model="smart")
    assert upstream.requests[-1].json()["model"] == "claude-opus-4-8"
    assert json.loads(response.content)["model"] == "smart"


async def test_it_decodes_gzip_bodies_without_a_content_encoding_header(api, upstream):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages", Respond.gzipped_json(anthropic_message("zipped", "claude-sonnet-4-6"))
    )
    response = await api.message()
    assert json.loads(response.content)["content"][0]["text"] == "zipped"


async def test_it_reemits_upstream_errors_as_anthropic_envelopes(api, upstream):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages",
        Respond.json(
            {
                "error": {
                    "message": "Your input exceeds the context window",
                    "type": "invalid_request_error",
                    "code": "context_too_large",
                }
            },
            status=400,
        ),
    )
    response = await api.message()
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "Your input exceeds the context window",
    }


async def test_it_streams_events_in_order_with_sse_headers(api, upstream):
    make_credential(base_url=upstream.url)
    response = await api.message(stream=True)
    assert response.status_code == 200
    assert response["content-type"].startswith("text/event-stream")
    events = sse_events(await read_stream(response))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Hello from the fake upstream"


async def test_it_ends_a_stream_that_breaks_after_the_first_event_with_an_error_event(
    api, upstream
):
    make_credential(base_url=upstream.url)
    start = Respond.anthropic_stream("one two").chunks[:2]
    upstream.script(
        "/v1/messages",
        Respond(
            200,
            {"content-type": "text/event-stream"},
            chunks=[
                *start,
                b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
            ],
        ),
    )
    response = await api.message(stream=True)
    events = sse_events(await read_stream(response))
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"


async def test_it_needs_no_keepalive_to_pass_a_fast_error_status_through(api, upstream):
    make_credential(base_url=upstream.url)
    set_proxy_settings(nonstream_keepalive_interval=5, request_retry=0)
    upstream.script("/v1/messages", Respond.error(529, "overloaded_error", "Overloaded"))
    response = await api.message()
    assert response.status_code == 529
    assert json.loads(response.content)["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"max_tokens": 5, "messages": []}', "model: Field required"),
        (
            b'{"model": 5, "max_tokens": 5, "messages": []}',
            "model: Input should be a non-empty string",
        ),
        (b'{"model": "claude-sonnet-4-6", "messages": []}', "max_tokens: Field required"),
        (b'{"model": "claude-sonnet-4-6", "max_tokens": "5", "messages": []}', "max_tokens"),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}',
            "messages.0.role",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [], "stream": "yes"}',
            "stream",
        ),
    ],
)
async def test_it_rejects_bad_input_with_a_400_envelope_naming_the_field(
    api, upstream, payload, message
):
    make_credential(base_url=upstream.url)
    response = await api.post("/v1/messages", payload)
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]
    assert upstream.requests == []


async def test_it_answers_404_for_a_model_no_credential_serves(api, upstream):
    make_credential(base_url=upstream.url, models=["claude-sonnet-4-6"])
    response = await api.message(model="gpt-9")
    assert response.status_code == 404
    assert json.loads(response.content)["error"]["type"] == "not_found_error"


async def test_it_answers_413_for_a_body_over_the_limit(api, upstream):
    make_credential(base_url=upstream.url)
    set_proxy_settings(max_request_body_bytes=1000)
    response = await api.message(messages=[{"role": "user", "content": "x" * 2000}])
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["type"] == "request_too_large"


async def test_it_rejects_missing_and_unknown_keys_with_should_retry_false(api, upstream):
    make_credential(base_url=upstream.url)
    api.key = "sk-px-not-a-key"
    response = await api.message()
    assert response.status_code == 401
    assert response["x-should-retry"] == "false"
    assert json.loads(response.content)["error"]["type"] == "authentication_error"


async def test_it_accepts_a_bearer_key(api, upstream):
    make_credential(base_url=upstream.url)
    from django.test import AsyncClient

    response = await AsyncClient().post(
        "/v1/messages",
        json.dumps(
            {
                "model": "claude-sonnet-4-6",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            }
        ),
        content_type="application/json",
        headers={"authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 200


async def test_it_never_carries_an_upstream_cookie_to_another_request(api, upstream):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages",
        Respond.json(anthropic_message("a", "m"), headers={"set-cookie": "__cf_bm=abc; Path=/"}),
    )
    await api.message()
    await api.message()
    assert "cookie" not in upstream.requests[-1].headers


async def test_it_estimates_tokens_when_an_anthropic_compatible_upstream_lacks_count_tokens(
    api, upstream
):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages/count_tokens", Respond.error(404, "not_found_error", "no such route")
    )
    body = {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": "Count me, please."}],
    }
    response = await api.post("/v1/messages/count_tokens", body)
    assert response.status_code == 200
    assert json.loads(response.content)["input_tokens"] > 0
    assert response["x-proxy-token-count"] == "estimate"


async def test_it_does_not_cool_a_credential_down_for_a_count_tokens_rate_limit(api, upstream):
    make_credential(base_url=upstream.url)
    upstream.script(
        "/v1/messages/count_tokens",
        Respond.error(429, "rate_limit_error", "count limit", headers={"retry-after": "60"}),
    )
    set_proxy_settings(request_retry=0)
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "x"}]}
    assert (await api.post("/v1/messages/count_tokens", body)).status_code == 429
    assert (await api.message()).status_code == 200  # messages still flow on that credential
    assert not QuotaState.objects.exists()
