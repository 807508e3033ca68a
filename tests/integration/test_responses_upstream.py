"""The Responses API upstream end to end, in-process: Codex accounts (fake OAuth provider and a
strict fake Codex backend) and OpenAI API keys (a strict fake /v1/responses), with the official
``anthropic`` SDK's decoding where a client would use it.

Scenarios 4–10 and 13 of subscription-accounts.md §4.10.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async

from accounts.models import Credential, CredentialModel, QuotaState
from accounts.oauth import store
from accounts.oauth.files import AccountData
from claude_api.translate.common import RESPONSES_SIGNATURE_TAG
from claude_api.translate.openai_responses.names import read_signature, short_call_id
from tests.conftest import (
    load_fixture,
    make_credential,
    read_stream,
    set_proxy_settings,
    sse_events,
)
from tests.fakes.oauth import FakeOAuth
from tests.fakes.responses_api import CODEX_PATH, FakeResponses, Turn
from tests.fakes.upstream import DROP, Respond
from tests.unit.test_translate_openai import assert_grammar

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

API_KEY = "sk-proj-responses-test-key"
LONG_ID = "toolu_" + "y" * 74


def make_codex_account(
    oauth: FakeOAuth,
    fake: FakeResponses,
    email: str = "dev@example.com",
    uuid: str = "ws-1",
    **fields,
) -> Credential:
    refresh = oauth.add_account(email, provider="codex", uuid=uuid)
    access = oauth.issue_access(refresh, expires_in=8 * 86400)
    result = store.save_account(
        AccountData(
            provider="codex",
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.fromtimestamp(time.time() + 8 * 86400, tz=UTC),
            email=email,
            account_id=uuid,
            plan="plus",
        )
    )
    credential = Credential.objects.get(pk=result.credential_id)
    credential.base_url = fake.codex_base
    for name, value in fields.items():
        setattr(credential, name, value)
    credential.save()
    return credential


@pytest.fixture
def codex(upstream, oauth) -> FakeResponses:
    return FakeResponses(upstream, oauth=oauth, api_key=API_KEY)


def tool_body(tool_id: str = "toolu_01", **extra) -> dict:
    return {
        "model": "gpt-5-codex",
        "max_tokens": 2048,
        "system": "You are terse.",
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "tools": [
            {
                "name": "Bash",
                "description": "Run a shell command",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ],
        "messages": [
            {"role": "user", "content": "List the files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a.txt"}],
            },
        ],
        **extra,
    }


# Scenario 4 --------------------------------------------------------------------------------


async def test_it_calls_the_codex_backend_with_the_accounts_token_and_workspace(api, oauth, codex):
    credential = make_codex_account(oauth, codex)
    response = await api.post(
        "/v1/messages",
        {"model": "gpt-5-codex", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"user-agent": "claude-cli/2.1.197 (external, cli)"},
    )
    assert response.status_code == 200, response.content
    message = response.json()
    # No thinking asked for: no summary, but the encrypted reasoning still rides along.
    thinking, text = message["content"]
    assert thinking["thinking"] == "" and thinking["signature"].startswith(RESPONSES_SIGNATURE_TAG)
    assert text == {"type": "text", "text": "Hello from Responses."}
    assert message["model"] == "gpt-5-codex" and message["stop_reason"] == "end_turn"
    sent = codex.calls()[-1]
    token = store.load_token(credential.pk)
    assert sent.path == CODEX_PATH
    assert sent.headers["authorization"] == f"Bearer {token.access.reveal()}"
    assert sent.headers["chatgpt-account-id"] == "ws-1"
    assert sent.headers["accept"] == "text/event-stream"
    # The client's own identity, not an invented one.
    assert sent.headers["user-agent"] == "claude-cli/2.1.197 (external, cli)"
    assert "originator" not in sent.headers
    body = sent.json()
    assert body["store"] is False and body["stream"] is True
    assert body["include"] == ["reasoning.encrypted_content"]
    assert "max_output_tokens" not in body


# Scenario 5 and 6 --------------------------------------------------------------------------


async def test_it_streams_reasoning_text_and_a_tool_call_from_a_tool_history(api, oauth, codex):
    make_codex_account(oauth, codex)
    codex.turns.append(
        Turn(
            reasoning="Plan: read it.", text="Reading.", calls=[("Bash", {"command": "cat a.txt"})]
        )
    )
    response = await api.post("/v1/messages", tool_body(LONG_ID, stream=True))
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    assert_grammar(events)
    blocks = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in blocks] == ["thinking", "text", "tool_use"]
    signatures = [
        data["delta"]["signature"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "signature_delta"
    ]
    origin, encrypted = read_signature(signatures[0])
    assert encrypted.startswith("enc-ws-1-") and len(origin) == 16
    json_deltas = [
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    ]
    assert len(json_deltas) > 1 and json.loads("".join(json_deltas)) == {"command": "cat a.txt"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    sent = codex.calls()[-1].json()
    short = short_call_id(LONG_ID)
    assert sent["input"][0]["role"] == "developer"
    kinds = [(i["type"], i.get("call_id")) for i in sent["input"]]
    assert ("function_call", short) in kinds and ("function_call_output", short) in kinds
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}


async def test_it_restores_a_long_tool_id_the_backend_echoes(api, oauth, codex):
    make_codex_account(oauth, codex)
    short = short_call_id(LONG_ID)

    def echo_call(request):
        return Respond.sse(
            [
                ("response.created", {"type": "response.created", "response": {"id": "r"}}),
                (
                    "response.output_item.done",
                    {
                        "type": "response.output_item.done",
                        "output_index": 0,
                        "item": {
                            "type": "function_call",
                            "call_id": short,
                            "name": "Bash",
                            "arguments": "{}",
                        },
                    },
                ),
                (
                    "response.completed",
                    {"type": "response.completed", "response": {"id": "r", "output": []}},
                ),
            ]
        )

    codex.server.script(CODEX_PATH, echo_call)
    response = await api.post("/v1/messages", tool_body(LONG_ID))
    assert response.status_code == 200, response.content
    assert response.json()["content"][0]["id"] == LONG_ID


async def test_it_carries_encrypted_reasoning_into_the_next_turn(api, oauth, codex):
    make_codex_account(oauth, codex)
    codex.turns.append(Turn(reasoning="Need ls.", text=None, calls=[("Bash", {"command": "ls"})]))
    first = await api.post(
        "/v1/messages",
        {
            "model": "gpt-5-codex",
            "max_tokens": 512,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "tools": tool_body()["tools"],
            "messages": [{"role": "user", "content": "List files"}],
        },
    )
    assert first.status_code == 200, first.content
    turn = first.json()
    assert [b["type"] for b in turn["content"]] == ["thinking", "tool_use"]
    tool_id = turn["content"][1]["id"]
    second_body = {
        "model": "gpt-5-codex",
        "max_tokens": 512,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": tool_body()["tools"],
        "messages": [
            {"role": "user", "content": "List files"},
            {"role": "assistant", "content": turn["content"]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a.txt"}],
            },
        ],
    }
    second = await api.post("/v1/messages", second_body)
    assert second.status_code == 200, (second.content, codex.refusals)
    # Without the reasoning item the strict backend refuses the function_call.
    without = json.loads(json.dumps(second_body))
    without["messages"][1]["content"] = turn["content"][1:]
    refused = await api.post("/v1/messages", without)
    assert refused.status_code == 400
    assert "required 'reasoning' item" in refused.json()["error"]["message"]


async def test_it_retries_once_without_reasoning_whose_signature_names_no_account(
    api, oauth, codex
):
    """Signatures issued before they named their credential: the backend's refusal is the only
    sign that the reasoning came from another account."""
    set_proxy_settings(routing_strategy="fill-first")
    first_account = make_codex_account(oauth, codex, "a@example.com", "ws-a", priority=2)
    codex.turns.append(Turn(reasoning="r", text=None, calls=[("Bash", {"command": "ls"})]))
    turn = (
        await api.post("/v1/messages", {**tool_body(), "messages": tool_body()["messages"][:1]})
    ).json()
    first_account.enabled = False
    first_account.save()
    make_codex_account(oauth, codex, "b@example.com", "ws-b")
    tool_id = turn["content"][-1]["id"]
    thinking = turn["content"][0]
    thinking["signature"] = RESPONSES_SIGNATURE_TAG + read_signature(thinking["signature"])[1]
    body = tool_body()
    body["messages"] = [
        body["messages"][0],
        {"role": "assistant", "content": turn["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "x"}],
        },
    ]
    response = await api.post("/v1/messages", body)
    assert response.status_code == 200, response.content
    assert "could not be verified" in codex.refusals[-1]["error"]["message"]
    assert all(item["type"] != "reasoning" for item in codex.calls()[-1].json()["input"])


async def test_a_conversation_that_moved_accounts_keeps_the_serving_accounts_own_reasoning(
    api, oauth, codex
):
    """A tool loop that moved from account A to account B (A hit its limit): B cannot verify
    A's encrypted reasoning, but requires its own back with the calls it issued. Leaving out
    every reasoning item would make B refuse its own function_call."""
    set_proxy_settings(routing_strategy="fill-first")
    first_account = make_codex_account(oauth, codex, "a@example.com", "ws-a", priority=2)
    body = tool_body()
    messages = body["messages"][:1]

    async def turn(command: str) -> None:
        codex.turns.append(Turn(reasoning="r", text=None, calls=[("Bash", {"command": command})]))
        response = await api.post("/v1/messages", {**body, "messages": messages})
        assert response.status_code == 200, (response.content, codex.refusals)
        content = response.json()["content"]
        messages.append({"role": "assistant", "content": content})
        result = {"type": "tool_result", "tool_use_id": content[-1]["id"], "content": "ok"}
        messages.append({"role": "user", "content": [result]})

    await turn("ls")
    first_account.enabled = False
    first_account.save()
    make_codex_account(oauth, codex, "b@example.com", "ws-b")
    await turn("pwd")
    await turn("date")
    # A's reasoning was left out before sending: no refused round trip.
    assert codex.refusals == []
    sent = codex.calls()[-1].json()["input"]
    reasoning = [item["encrypted_content"] for item in sent if item["type"] == "reasoning"]
    assert len(reasoning) == 1 and reasoning[0].startswith("enc-ws-b-")
    assert [i["call_id"] for i in sent if i["type"] == "function_call"] == [
        i["call_id"] for i in sent if i["type"] == "function_call_output"
    ]


# Scenario 7 and 8 --------------------------------------------------------------------------


async def test_it_reports_cached_tokens_and_maps_an_incomplete_response(api, oauth, codex):
    make_codex_account(oauth, codex)
    usage = {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 800},
        "output_tokens": 64,
    }
    codex.turns.append(Turn(usage=usage))
    codex.turns.append(
        Turn(usage=usage, status="incomplete", incomplete_reason="max_output_tokens")
    )
    done = (await api.message(model="gpt-5-codex")).json()
    assert done["usage"]["input_tokens"] == 200
    assert done["usage"]["cache_read_input_tokens"] == 800
    assert done["usage"]["output_tokens"] == 64
    cut = await api.post(
        "/v1/messages",
        {
            "model": "gpt-5-codex",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    events = sse_events(await read_stream(cut))
    assert_grammar(events)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["cache_read_input_tokens"] == 800


# Scenario 9 --------------------------------------------------------------------------------


async def test_it_cools_an_account_at_its_usage_limit_and_serves_from_the_next(api, oauth, codex):
    set_proxy_settings(routing_strategy="fill-first")
    limited = make_codex_account(oauth, codex, "a@example.com", "ws-a", priority=2)
    make_codex_account(oauth, codex, "b@example.com", "ws-b", priority=1)
    codex.server.script(
        CODEX_PATH,
        Respond.json(
            {
                "error": {
                    "type": "usage_limit_reached",
                    "message": "The usage limit has been reached",
                    "plan_type": "plus",
                    "resets_in_seconds": 3600,
                }
            },
            429,
        ),
    )
    response = await api.message(model="gpt-5-codex")
    assert response.status_code == 200, response.content
    assert [r.headers["chatgpt-account-id"] for r in codex.calls()] == ["ws-a", "ws-b"]
    state = await QuotaState.objects.aget(credential=limited)
    assert state.model == ""  # the whole account: the limit is the plan's, not one model's
    assert state.reason == "credential_quota"
    remaining = state.next_retry_at.timestamp() - time.time()
    assert 3500 < remaining <= 3600
    again = await api.message(model="gpt-5.1-codex")
    assert again.status_code == 200
    assert codex.calls()[-1].headers["chatgpt-account-id"] == "ws-b"


# Scenario 10 -------------------------------------------------------------------------------


async def test_it_fails_over_when_the_stream_fails_before_any_output(api, oauth, codex):
    set_proxy_settings(routing_strategy="fill-first")
    make_codex_account(oauth, codex, "a@example.com", "ws-a", priority=2)
    make_codex_account(oauth, codex, "b@example.com", "ws-b", priority=1)
    codex.turns.append(
        Turn(
            fail_before_output=True,
            error={"code": "rate_limit_exceeded", "message": "Slow down. Try again in 30s."},
        )
    )
    response = await api.post(
        "/v1/messages",
        {
            "model": "gpt-5-codex",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    assert_grammar(events)
    assert [r.headers["chatgpt-account-id"] for r in codex.calls()] == ["ws-a", "ws-b"]


async def test_it_ends_a_stream_that_fails_mid_way_with_an_error_event(api, oauth, codex):
    make_codex_account(oauth, codex)
    codex.turns.append(Turn(status="failed", error={"code": "server_error", "message": "boom"}))
    response = await api.post(
        "/v1/messages",
        {
            "model": "gpt-5-codex",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    events = sse_events(await read_stream(response))
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error" and events[-1][1]["error"]["message"] == "boom"


CREATED = (
    "response.created",
    {"type": "response.created", "response": {"id": "r", "status": "in_progress", "output": []}},
)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
@pytest.mark.parametrize("cut", [[DROP], []], ids=["dropped", "closed-early"])
async def test_a_stream_cut_before_its_first_output_is_opened_again_on_the_same_account(
    api, oauth, codex, stream, cut
):
    """GPT models reason before their first output (hidden, for seconds): a cut in that window
    reached no byte of the client. With no other account to fail over to, the proxy opens the
    stream again instead of answering 502 and cooling the account."""
    credential = make_codex_account(oauth, codex)
    codex.server.script(CODEX_PATH, Respond.sse([CREATED], tail=cut))
    body = {
        "model": "gpt-5-codex",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
    }
    response = await api.post("/v1/messages", body)
    assert response.status_code == 200
    if stream:
        events = sse_events(await read_stream(response))
        assert_grammar(events)
        text = "".join(
            data["delta"].get("text", "") for name, data in events if name == "content_block_delta"
        )
    else:
        text = "".join(b.get("text", "") for b in response.json()["content"])
    assert text == "Hello from Responses."
    assert len(codex.calls()) == 2
    assert not await QuotaState.objects.filter(credential=credential).aexists()


async def test_a_stream_cut_after_its_first_output_is_not_opened_again(api, oauth, codex):
    make_codex_account(oauth, codex)
    text = (
        "response.output_text.delta",
        {"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "delta": "Hi"},
    )
    codex.server.script(CODEX_PATH, Respond.sse([CREATED, text], tail=[DROP]))
    response = await api.post(
        "/v1/messages",
        {
            "model": "gpt-5-codex",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    events = sse_events(await read_stream(response))
    # The client already has "Hi": a second answer would repeat it.
    assert events[-1][0] == "error"
    assert len(codex.calls()) == 1


async def test_it_turns_a_context_overflow_into_prompt_is_too_long(api, oauth, codex):
    make_codex_account(oauth, codex)
    codex.turns.append(
        Turn(
            fail_before_output=True,
            error={
                "code": "context_length_exceeded",
                "message": "Your input exceeds the context window of this model.",
            },
        )
    )
    response = await api.message(model="gpt-5-codex")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("prompt is too long")


# Scenario 13 -------------------------------------------------------------------------------


async def test_it_refreshes_after_a_401_and_retries_on_the_same_account(api, oauth, codex):
    credential = make_codex_account(oauth, codex)
    oauth.access_expiry.clear()  # the backend revoked the access token early
    response = await api.message(model="gpt-5-codex")
    assert response.status_code == 200, response.content
    assert len(oauth.token_calls) == 1
    token = store.load_token(credential.pk)
    assert codex.calls()[-1].headers["authorization"] == f"Bearer {token.access.reveal()}"


# Quota windows, models, count_tokens -------------------------------------------------------


async def test_it_keeps_the_codex_quota_windows_the_backend_reports(api, oauth, codex):
    credential = make_codex_account(oauth, codex)
    codex.turns.append(
        Turn(
            headers={
                "x-codex-primary-used-percent": "25",
                "x-codex-primary-reset-after-seconds": "1200",
                "x-codex-secondary-used-percent": "60",
                "x-codex-secondary-reset-after-seconds": "86400",
            }
        )
    )
    response = await api.message(model="gpt-5-codex")
    assert response.status_code == 200
    from accounts import windows

    board = windows.board.windows[credential.pk]
    assert [(w.name, w.utilization) for w in board] == [("5h", 0.25), ("7d", 0.6)]


async def test_it_lists_the_codex_catalogue_and_serves_a_claude_alias(api, oauth, codex):
    credential = make_codex_account(oauth, codex)
    listed = (await api.get("/v1/models")).json()
    ids = {model["id"] for model in listed["data"]}
    assert {"gpt-5-codex", "gpt-5.1-codex", "gpt-5"} <= ids
    CredentialModel.objects.create(
        credential=credential, name="gpt-5-codex", alias="claude-sonnet-4-6"
    )
    response = await api.message(model="claude-sonnet-4-6")
    assert response.status_code == 200, response.content
    assert response.json()["model"] == "claude-sonnet-4-6"
    assert codex.calls()[-1].json()["model"] == "gpt-5-codex"


async def test_it_estimates_count_tokens_locally(api, oauth, codex):
    make_codex_account(oauth, codex)
    response = await api.post(
        "/v1/messages/count_tokens",
        {"model": "gpt-5-codex", "messages": [{"role": "user", "content": "Hello there"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-proxy-token-count"] == "estimate"
    assert response.json()["input_tokens"] > 0
    assert codex.calls() == []


# OpenAI API keys ---------------------------------------------------------------------------


async def test_it_serves_an_openai_responses_key_with_max_output_tokens(api, upstream, codex):
    make_credential(
        "responses",
        provider="openai-responses",
        base_url=codex.api_base,
        secret=API_KEY,
        models=[("gpt-5.2", "claude-opus-4-8")],
    )
    body = tool_body(stream=True, model="claude-opus-4-8", stop_sequences=["STOP"])
    codex.turns.append(Turn(text="Fine STOP and beyond"))
    response = await api.post("/v1/messages", body)
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    assert_grammar(events)
    texts = "".join(
        data["delta"]["text"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta"
    )
    assert texts == "Fine "
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    sent = codex.calls()[-1]
    assert sent.path == "/v1/responses" and sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert "chatgpt-account-id" not in sent.headers
    payload = sent.json()
    assert payload["model"] == "gpt-5.2" and payload["instructions"] == "You are terse."
    assert payload["max_output_tokens"] == 2048 and payload["store"] is False


async def test_it_rejects_a_bad_key_as_an_anthropic_envelope(api, upstream, codex):
    set_proxy_settings(request_retry=0)
    make_credential(
        "responses",
        provider="openai-responses",
        base_url=codex.api_base,
        secret="sk-wrong",
        models=["gpt-5.2"],
    )
    response = await api.message(model="gpt-5.2")
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("fixture", ["tool-loop-02", "haiku-thinking-enabled-01"])
async def test_it_passes_claude_code_requests_through_the_strict_backend(
    api, oauth, codex, fixture
):
    make_codex_account(oauth, codex)
    body = load_fixture(f"{fixture}.json")["body"]
    body["model"] = "gpt-5-codex"
    response = await api.post("/v1/messages", body)
    assert response.status_code == 200, (response.content, codex.refusals)
    if body.get("stream"):
        assert_grammar(sse_events(await read_stream(response)))


async def test_it_adds_a_responses_key_from_the_command_line(api, upstream, codex, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("OPENAI_KEY", API_KEY)
    await database_sync_to_async(call_command)(
        "add_credential",
        "--provider",
        "openai-responses",
        "--label",
        "openai",
        "--secret-env",
        "OPENAI_KEY",
        "--base-url",
        codex.api_base,
        "--model",
        "gpt-5.2=claude-opus-4-8",
    )
    response = await api.message(model="claude-opus-4-8")
    assert response.status_code == 200, response.content
    assert response.json()["model"] == "claude-opus-4-8"
    assert codex.calls()[-1].json()["model"] == "gpt-5.2"


async def test_it_counts_tokens_with_openais_counter_for_a_key(api, upstream, codex):
    make_credential(
        "responses",
        provider="openai-responses",
        base_url=codex.api_base,
        secret=API_KEY,
        models=["gpt-5.2"],
    )
    body = {
        "model": "gpt-5.2",
        "system": "one two",
        "messages": [{"role": "user", "content": "three four"}],
    }
    response = await api.post("/v1/messages/count_tokens", body)
    assert response.status_code == 200, response.content
    assert "x-proxy-token-count" not in response.headers
    sent = upstream.requests[-1]
    assert sent.path == "/v1/responses/input_tokens"
    assert set(sent.json()) == {"model", "instructions", "input"}
    assert response.json()["input_tokens"] == len(
        json.dumps([sent.json()["instructions"], sent.json()["input"]]).split()
    )
    # A server without the counter: the estimate, marked.
    upstream.script("/v1/responses/input_tokens", Respond.json({"error": {"message": "no"}}, 404))
    fallback = await api.post("/v1/messages/count_tokens", body)
    assert fallback.status_code == 200
    assert fallback.headers["x-proxy-token-count"] == "estimate"


async def test_it_answers_claude_codes_web_search_through_the_hosted_search(api, oauth, codex):
    make_codex_account(oauth, codex)
    codex.turns.append(Turn(reasoning=None, search="django 6 release", text="Django 6 is out."))
    body = {
        "model": "gpt-5-codex",
        "max_tokens": 1024,
        "stream": True,
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        "messages": [{"role": "user", "content": "Perform a web search for: django 6 release"}],
    }
    response = await api.post("/v1/messages", body)
    assert response.status_code == 200, (response.content, codex.refusals)
    events = sse_events(await read_stream(response))
    blocks = [
        data["content_block"]["type"] for name, data in events if name == "content_block_start"
    ]
    assert blocks == ["server_tool_use", "web_search_tool_result", "text"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert codex.calls()[-1].json()["tools"] == [{"type": "web_search"}]
