"""The official SDK's streaming helpers through the proxy to Gemini and OpenAI-compatible fakes."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import make_client_key, make_credential
from tests.fakes.upstream import Respond

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "path": {"type": "string", "format": "uri"},
                "limit": {"type": ["integer", "null"]},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    }
]


@pytest.fixture
def key():
    return make_client_key()


def test_it_streams_gemini_text_thinking_and_tool_use_to_the_sdk(daphne, upstream, key, sdk_client):
    make_credential("gemini", provider="gemini", base_url=upstream.url, secret="AIza-test-key-0002")
    chunks = [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Let me think", "thought": True}]}}
            ]
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": " about it.", "thought": True}]}}
            ]
        },
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "I'll read "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "the file."}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {
                                    "name": "read_file",
                                    "args": {"path": "/tmp/a.txt", "limit": 10},
                                },
                                "thoughtSignature": "c2lnbmF0dXJl",
                            }
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 120,
                "cachedContentTokenCount": 20,
                "candidatesTokenCount": 30,
                "thoughtsTokenCount": 12,
            },
        },
    ]
    # Google frames events with \r\n\r\n; cut every event into 9-byte pieces, inside the JSON.
    upstream.script(
        "/v1beta/", Respond.sse([(None, c) for c in chunks], terminator=b"\r\n\r\n", split=9)
    )
    client = sdk_client(daphne.url, key)
    with client.messages.stream(
        model="gemini-2.5-pro",
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=TOOLS,
        messages=[{"role": "user", "content": "Read /tmp/a.txt"}],
    ) as stream:
        message = stream.get_final_message()
    kinds = [block.type for block in message.content]
    assert kinds.count("thinking") >= 1 and "text" in kinds and kinds[-1] == "tool_use"
    thinking = "".join(b.thinking for b in message.content if b.type == "thinking")
    assert thinking == "Let me think about it."
    assert next(b.text for b in message.content if b.type == "text") == "I'll read the file."
    tool = message.content[-1]
    assert tool.name == "read_file" and tool.input == {"path": "/tmp/a.txt", "limit": 10}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 42
    sent = upstream.requests[-1].json()
    assert sent["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 2048,
        "includeThoughts": True,
    }
    assert sent["generationConfig"]["maxOutputTokens"] == 1024


def test_it_streams_openai_tool_arguments_to_the_sdk_as_they_arrive(
    daphne, upstream, key, sdk_client
):
    make_credential(
        "router",
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-or-test-000001",
        models=[("deepseek/deepseek-r1", "r1")],
    )
    base = {"id": "gen-1", "object": "chat.completion.chunk", "model": "deepseek/deepseek-r1"}

    def chunk(delta, finish=None, usage=None):
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            data["usage"] = usage
        return data

    fragments = ['{"pa', 'th": "/tm', 'p/a.txt"', ', "limit": 5}']
    events = [
        (None, chunk({"role": "assistant", "reasoning_content": "User wants a file."})),
        (None, chunk({"content": "Reading it now."})),
        (
            None,
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": ""},
                        }
                    ]
                }
            ),
        ),
    ]
    chunks = Respond.sse(events).chunks
    for fragment in fragments:
        chunks += Respond.sse(
            [(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))]
        ).chunks
        chunks.append(0.3)  # the upstream is slow between fragments
    chunks += Respond.sse(
        [
            (None, chunk({}, "tool_calls")),
            (
                None,
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 200,
                        "completion_tokens": 40,
                        "prompt_tokens_details": {"cached_tokens": 50},
                    },
                },
            ),
        ]
    ).chunks
    chunks.append(b": OPENROUTER PROCESSING\n\ndata: [DONE]\n\n")
    upstream.script(
        "/v1/chat/completions", Respond(200, {"content-type": "text/event-stream"}, chunks=chunks)
    )

    client = sdk_client(daphne.url, key)
    arrivals = []
    started = time.monotonic()
    with client.messages.stream(
        model="r1", max_tokens=512, tools=TOOLS, messages=[{"role": "user", "content": "Read it"}]
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                arrivals.append((time.monotonic() - started, event.delta.partial_json))
        message = stream.get_final_message()
    assert len(arrivals) >= 4
    assert json.loads("".join(p for _, p in arrivals)) == {"path": "/tmp/a.txt", "limit": 5}
    # The first fragment reached the client while the upstream was still sending the rest.
    assert arrivals[-1][0] - arrivals[0][0] > 0.6
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "User wants a file."
    assert message.content[1].text == "Reading it now."
    assert message.content[2].input == {"path": "/tmp/a.txt", "limit": 5}
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 150
    assert message.usage.cache_read_input_tokens == 50
    assert message.usage.output_tokens == 40
    assert message.model == "r1"
