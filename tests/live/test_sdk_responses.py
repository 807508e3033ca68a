"""The official SDK through a daphne process to a Codex account and a Responses API key, against
the strict fake Responses backend: a two-turn tool loop whose second turn the backend refuses
unless the first turn's encrypted reasoning comes back."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from accounts.models import Credential
from accounts.oauth import store
from accounts.oauth.files import AccountData
from tests.conftest import make_client_key, make_credential
from tests.fakes.oauth import FakeOAuth
from tests.fakes.responses_api import FakeResponses, Turn

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
]


def tool_loop(client, model: str) -> tuple:
    question = {"role": "user", "content": "What is in /tmp/a.txt?"}
    with client.messages.stream(
        model=model,
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=TOOLS,
        messages=[question],
    ) as stream:
        first = stream.get_final_message()
    tool = first.content[-1]
    second = client.messages.create(
        model=model,
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "hello"}],
            },
        ],
    )
    return first, second


def test_it_runs_a_tool_loop_on_a_codex_account_through_the_sdk(daphne, upstream, sdk_client):
    oauth = FakeOAuth(upstream)
    fake = FakeResponses(upstream, oauth=oauth)
    refresh = oauth.add_account("dev@example.com", provider="codex", uuid="ws-live")
    access = oauth.issue_access(refresh, expires_in=8 * 86400)
    result = store.save_account(
        AccountData(
            provider="codex",
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.fromtimestamp(time.time() + 8 * 86400, tz=UTC),
            email="dev@example.com",
            account_id="ws-live",
        )
    )
    Credential.objects.filter(pk=result.credential_id).update(base_url=fake.codex_base)
    fake.turns.append(
        Turn(
            reasoning="Read the file first.",
            text="Reading.",
            calls=[("read_file", {"path": "/tmp/a.txt"})],
        )
    )
    fake.turns.append(Turn(reasoning="It says hello.", text="The file says hello."))
    client = sdk_client(daphne.url, make_client_key())

    first, second = tool_loop(client, "gpt-5-codex")

    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    assert first.content[0].thinking == "Read the file first."
    assert first.content[2].input == {"path": "/tmp/a.txt"}
    assert first.stop_reason == "tool_use"
    assert second.content[-1].text == "The file says hello."
    assert second.stop_reason == "end_turn"
    assert fake.refusals == []
    sent = fake.calls()[-1]
    assert sent.headers["chatgpt-account-id"] == "ws-live"
    kinds = [item["type"] for item in sent.json()["input"]]
    assert kinds == ["message", "reasoning", "message", "function_call", "function_call_output"]


def test_it_runs_a_tool_loop_on_a_responses_key_through_the_sdk(daphne, upstream, sdk_client):
    fake = FakeResponses(upstream, api_key="sk-proj-live-0001")
    make_credential(
        "responses",
        provider="openai-responses",
        base_url=fake.api_base,
        secret="sk-proj-live-0001",
        models=[("gpt-5.2", "claude-opus-4-8")],
    )
    fake.turns.append(
        Turn(reasoning="Need the file.", text=None, calls=[("read_file", {"path": "/tmp/a.txt"})])
    )
    fake.turns.append(Turn(reasoning=None, text="It says hello."))
    client = sdk_client(daphne.url, make_client_key())

    first, second = tool_loop(client, "claude-opus-4-8")

    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.model == "claude-opus-4-8"
    assert second.content[-1].text == "It says hello."
    assert fake.refusals == []
    assert fake.calls()[-1].json()["max_output_tokens"] == 1024


def test_it_streams_a_hosted_web_search_to_the_sdk(daphne, upstream, sdk_client):
    fake = FakeResponses(upstream, api_key="sk-proj-live-0002")
    make_credential(
        "responses",
        provider="openai-responses",
        base_url=fake.api_base,
        secret="sk-proj-live-0002",
        models=["gpt-5.2"],
    )
    fake.turns.append(Turn(reasoning=None, search="django 6", text="Django 6 is out."))
    client = sdk_client(daphne.url, make_client_key())
    with client.messages.stream(
        model="gpt-5.2",
        max_tokens=512,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        messages=[{"role": "user", "content": "Perform a web search for: django 6"}],
    ) as stream:
        message = stream.get_final_message()
    search, result, text = message.content
    assert search.type == "server_tool_use" and search.input == {"query": "django 6"}
    assert result.type == "web_search_tool_result"
    assert [r.url for r in result.content] == ["https://example.com/result"]
    assert text.text == "Django 6 is out."
    assert message.usage.server_tool_use.web_search_requests == 1
