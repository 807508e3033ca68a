from __future__ import annotations

import copy
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from claude_api.translate.common import (
    OPENAI_SIGNATURE_TAG,
    ErrorInfo,
    Event,
    TranslatedStreamError,
)
from claude_api.translate.openai_chat import (
    OpenAIOptions,
    StreamTranslator,
    ToolNames,
    build_request,
    parse_error,
    tool_names,
    translate_response,
)

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "claude-code").glob("*.json"))
NO_NAMES = ToolNames()
OPTIONS = OpenAIOptions()
LONG_NAME = (
    "mcp__claude_ai_Some_Really_Long_Server_Name__" + "fetch_the_documentation_page_" + "x" * 16
)
PIXEL = "iVBORw0KGgo="


def translate(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, **body}
    options = kwargs.pop("options", OPTIONS)
    return build_request(
        body,
        upstream_model="gpt-x",
        stream=kwargs.pop("stream", False),
        options=options,
        names=tool_names(body),
    )


def messages_of(body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    return translate(body, **kwargs)["messages"]


def tool_use(call_id: str, name: str = "Bash", tool_input: dict[str, Any] | None = None) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input or {}}


def tool_call(call_id: str, name: str = "Bash", arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assert_tool_order(messages: list[dict[str, Any]]) -> None:
    """Chat Completions' rule: tool_calls are answered by one tool message per id, at once."""
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            assert i > 0 and messages[i - 1]["role"] in ("assistant", "tool")
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [call["id"] for call in message["tool_calls"]]
            answers = messages[i + 1 : i + 1 + len(ids)]
            assert [m["role"] for m in answers] == ["tool"] * len(ids)
            assert [m["tool_call_id"] for m in answers] == ids


# --------------------------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------------------------


def test_it_translates_a_plain_text_request():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    request = build_request(
        body, upstream_model="gpt-x", stream=False, options=OPTIONS, names=tool_names(body)
    )
    assert request == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 100,
    }


def test_it_streams_with_usage_and_honours_the_max_tokens_field():
    options = OpenAIOptions(max_tokens_field="max_completion_tokens")
    request = translate(
        {"messages": [{"role": "user", "content": "Hi"}]}, stream=True, options=options
    )
    assert request == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 1024,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    no_usage = translate(
        {"messages": [{"role": "user", "content": "Hi"}]},
        stream=True,
        options=OpenAIOptions(include_usage=False),
    )
    assert no_usage["stream"] is True and "stream_options" not in no_usage


def test_it_sends_a_system_string_as_the_first_message():
    messages = messages_of({"system": "Be terse.", "messages": [{"role": "user", "content": "Hi"}]})
    assert messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
    ]


def test_it_joins_system_blocks_and_drops_the_billing_header():
    system = [
        {
            "type": "text",
            "text": "x-anthropic-billing-header: cc_version=2.1.197.1c0; cc_entrypoint=cli;",
        },
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be careful."},
    ]
    messages = messages_of({"system": system, "messages": [{"role": "user", "content": "Hi"}]})
    assert messages[0] == {"role": "system", "content": "You are Claude Code.\n\nBe careful."}


def test_it_turns_a_mid_conversation_system_message_into_user_text():
    body = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "system", "content": "Keep answers short."},
            {"role": "user", "content": "What is 2+2?"},
        ]
    }
    assert messages_of(body) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\nKeep answers short.\n</system-reminder>",
                },
                {"type": "text", "text": "What is 2+2?"},
            ],
        },
    ]


def test_it_keeps_a_system_message_behind_the_tool_results_it_interrupts():
    body = {
        "messages": [
            {"role": "user", "content": "Run it"},
            {"role": "assistant", "content": [tool_use("call_1")]},
            {"role": "system", "content": "Note."},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
            },
        ]
    }
    assert messages_of(body) == [
        {"role": "user", "content": "Run it"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call("call_1")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        {"role": "user", "content": "<system-reminder>\nNote.\n</system-reminder>"},
    ]


def test_it_translates_images():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                ],
            }
        ]
    }
    assert messages_of(body) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        }
    ]


def test_it_translates_documents():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0=",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "plain words",
                        },
                    },
                    {"type": "text", "text": "Summarise"},
                ],
            }
        ]
    }
    assert messages_of(body)[0]["content"] == [
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "report.pdf"},
        },
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "document.pdf"},
        },
        {"type": "text", "text": "plain words"},
        {"type": "text", "text": "Summarise"},
    ]


def test_it_translates_tool_use_to_tool_calls():
    body = {
        "messages": [
            {"role": "user", "content": "List files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    tool_use("toolu_01", "Bash", {"command": "ls -la", "note": "ünïcode"}),
                    tool_use("toolu_02", "Read", {"file_path": "/tmp/x"}),
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "file body"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "a\nb"}],
                    },
                ],
            },
        ]
    }
    assert messages_of(body) == [
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                tool_call("toolu_01", "Bash", '{"command":"ls -la","note":"ünïcode"}'),
                tool_call("toolu_02", "Read", '{"file_path":"/tmp/x"}'),
            ],
        },
        # In tool_use order, not tool_result order.
        {"role": "tool", "tool_call_id": "toolu_01", "content": "a\nb"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "file body"},
    ]


def test_it_places_tool_results_before_the_rest_of_the_user_turn():
    # reference-behaviour.md §8 scenario 24
    body = {
        "stop_sequences": ["</block>"],
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [tool_use("call_1", "do_it")]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "before"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "tool ok"}],
                    },
                    {"type": "text", "text": "after"},
                ],
            },
        ],
    }
    request = translate(body)
    assert request["messages"] == [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call("call_1", "do_it")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "tool ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "before"}, {"type": "text", "text": "after"}],
        },
    ]
    assert request["stop"] == ["</block>"]


def test_it_moves_tool_result_images_into_a_following_user_message():
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    body = {
        "messages": [
            {"role": "user", "content": "Screenshot both"},
            {
                "role": "assistant",
                "content": [tool_use("call_1", "Shot"), tool_use("call_2", "Shot")],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [image]},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": "here"}, image],
                    },
                    {"type": "text", "text": "What do you see?"},
                ],
            },
        ]
    }
    image_part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    assert messages_of(body)[2:] == [
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "[image attached in the next message]",
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "here"},
        {
            "role": "user",
            "content": [image_part, image_part, {"type": "text", "text": "What do you see?"}],
        },
    ]


def test_it_prefixes_error_tool_results():
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [tool_use("call_1")]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": "exit 1",
                        "is_error": True,
                    }
                ],
            },
        ]
    }
    assert messages_of(body)[2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Error: exit 1",
    }


def test_it_fills_in_missing_tool_results_and_keeps_orphans_as_text():
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [tool_use("call_1"), tool_use("call_2")]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "two"},
                    {"type": "tool_result", "tool_use_id": "call_9", "content": "stray"},
                ],
            },
        ]
    }
    messages = messages_of(body)
    assert messages[2:] == [
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "Error: no result was provided for this tool call.",
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "two"},
        {"role": "user", "content": "[tool result call_9]\nstray"},
    ]
    assert_tool_order(messages)


def test_it_merges_consecutive_turns_of_the_same_role():
    body = {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": [tool_use("call_1")]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
            },
        ]
    }
    assert messages_of(body) == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": "three", "tool_calls": [tool_call("call_1")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]


def test_it_echoes_only_its_own_reasoning_on_tool_call_turns_when_asked_to():
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "I should run ls.",
                        "signature": OPENAI_SIGNATURE_TAG,
                    },
                    {
                        "type": "thinking",
                        "thinking": "anthropic thought",
                        "signature": "EqQBCkYIBxgCKkB",
                    },
                    {"type": "redacted_thinking", "data": "opaque"},
                    tool_use("call_1"),
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Done.", "signature": OPENAI_SIGNATURE_TAG},
                    {"type": "text", "text": "All good."},
                ],
            },
            {"role": "user", "content": "Thanks"},
        ]
    }
    messages = messages_of(body, options=OpenAIOptions(reasoning_field="reasoning_content"))
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call("call_1")],
        "reasoning_content": "I should run ls.",
    }
    assert messages[3] == {"role": "assistant", "content": "All good."}

    openrouter = messages_of(body, options=OpenAIOptions(reasoning_field="reasoning"))
    assert openrouter[1]["reasoning"] == "I should run ls."
    never = messages_of(body, options=OpenAIOptions(reasoning_field=""))
    assert never[1] == {"role": "assistant", "content": None, "tool_calls": [tool_call("call_1")]}
    # Configured, but the server was seen refusing it: not sent.
    learned = OpenAIOptions(
        reasoning_field="reasoning_content", omit=frozenset({"reasoning_content"})
    )
    assert messages_of(body, options=learned)[1] == never[1]


def test_it_sends_no_reasoning_in_history_by_default():
    # Strict servers (OpenAI, DeepSeek's older reasoner) answer 400 to an unknown message field;
    # protocol.md §8.1: drop it unless the server needs it.
    body = {
        "messages": [
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Run ls.", "signature": OPENAI_SIGNATURE_TAG},
                    tool_use("call_1"),
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
            },
        ]
    }
    assistant = messages_of(body)[1]
    assert "reasoning_content" not in assistant and "reasoning" not in assistant
    assert assistant["tool_calls"] == [tool_call("call_1")]


def test_it_drops_server_tool_blocks_from_history():
    body = {
        "messages": [
            {"role": "user", "content": "Search"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"query": "x"},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "text", "text": "Found it."},
                ],
            },
        ]
    }
    assert messages_of(body)[1] == {"role": "assistant", "content": "Found it."}


def test_it_translates_tools_and_drops_server_tools():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    }
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": schema,
                "cache_control": {"type": "ephemeral"},
            },
            {"name": "Ping", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
    }
    assert translate(body)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "Run a command",
                "parameters": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                },
            },
        },
        {
            "type": "function",
            "function": {"name": "Ping", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert "$schema" in schema  # the client's body is not modified


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
    ],
)
def test_it_maps_tool_choice(choice, expected):
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": choice,
    }
    request = translate(body)
    assert request["tool_choice"] == expected
    assert "parallel_tool_calls" not in request


def test_it_disables_parallel_tool_calls_only_when_tools_are_present():
    tools = [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}]
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    with_tools = translate(
        {"messages": [{"role": "user", "content": "Hi"}], "tools": tools, "tool_choice": choice}
    )
    assert with_tools["parallel_tool_calls"] is False
    without = translate({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": choice})
    assert "tool_choice" not in without and "parallel_tool_calls" not in without


def test_it_aliases_long_tool_names_reversibly():
    assert len(LONG_NAME) == 90
    body = {
        "messages": [
            {"role": "user", "content": "Fetch"},
            {"role": "assistant", "content": [tool_use("call_1", LONG_NAME, {"url": "u"})]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
            },
        ],
        "tools": [
            {"name": LONG_NAME, "input_schema": {"type": "object", "properties": {}}},
            {"name": "weird name.v2", "input_schema": {"type": "object", "properties": {}}},
            {"name": "Bash", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "tool", "name": LONG_NAME},
    }
    names = tool_names(body)
    alias = names.to_upstream(LONG_NAME)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", alias)
    assert alias.startswith("mcp__claude_ai_Some_")
    assert names.to_client(alias) == LONG_NAME
    assert re.fullmatch(r"weird_name_v2_[0-9a-f]{8}", names.to_upstream("weird name.v2"))
    assert names.to_upstream("Bash") == "Bash" and names.to_client("Bash") == "Bash"
    assert names.to_client("unknown") == "unknown"
    assert tool_names(body).to_upstream(LONG_NAME) == alias  # deterministic

    request = translate(body)
    assert [t["function"]["name"] for t in request["tools"]] == [
        alias,
        names.to_upstream("weird name.v2"),
        "Bash",
    ]
    assert request["tool_choice"] == {"type": "function", "function": {"name": alias}}
    assert request["messages"][1]["tool_calls"][0]["function"]["name"] == alias


def test_it_maps_sampling_fields_and_drops_the_rest():
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e"],
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
        "service_tier": "auto",
        "mcp_servers": [],
        "container": "c1",
        "betas": ["x"],
        "cache_control": {"type": "ephemeral"},
    }
    assert translate(body) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 1024,
        "stop": ["a", "b", "c", "d"],
        "temperature": 0.2,
        "top_p": 0.9,
    }


@pytest.mark.parametrize(
    ("thinking", "output_config", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16383}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "xhigh"}, "high"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "adaptive"}, None, "medium"),
        ({"type": "disabled"}, None, None),
        (None, None, None),
    ],
)
def test_it_maps_thinking_to_reasoning_effort(thinking, output_config, expected):
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}
    if thinking:
        body["thinking"] = thinking
    if output_config:
        body["output_config"] = output_config
    assert translate(body).get("reasoning_effort") == expected
    off = translate(body, options=OpenAIOptions(send_reasoning_effort=False))
    assert "reasoning_effort" not in off


def test_it_hashes_claude_codes_json_user_id():
    user_id = '{"device_id":"abc","account_uuid":"","session_id":"s-1"}'
    body = {"messages": [{"role": "user", "content": "Hi"}], "metadata": {"user_id": user_id}}
    assert translate(body)["user"] == hashlib.sha256(user_id.encode()).hexdigest()
    plain = {"messages": [{"role": "user", "content": "Hi"}], "metadata": {"user_id": "user-42"}}
    assert translate(plain)["user"] == "user-42"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_it_translates_every_claude_code_fixture(fixture):
    body = json.loads(fixture.read_text())["body"]
    before = copy.deepcopy(body)
    request = build_request(
        body, upstream_model="gpt-x", stream=True, options=OPTIONS, names=tool_names(body)
    )
    json.dumps(request)  # serialisable
    assert body == before  # the client's body is left alone
    messages = request["messages"]
    assert messages and messages[0]["role"] in ("system", "user")
    assert all(m["role"] != "system" for m in messages[1:])
    assert_tool_order(messages)
    for tool in request.get("tools", []):
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool["function"]["name"])
        assert "$schema" not in tool["function"]["parameters"]
    for message in messages:
        if message.get("role") == "system":
            assert "x-anthropic-billing-header" not in message["content"]


# --------------------------------------------------------------------------------------------
# Non-streaming response
# --------------------------------------------------------------------------------------------


def completion(
    message: dict[str, Any], finish: str | None = "stop", usage: Any = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": usage
        if usage is not None
        else {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


ZERO_CACHE = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


def test_it_translates_a_text_response():
    message = translate_response(
        completion({"content": "Hello!"}), model="claude-x", names=NO_NAMES
    )
    assert message["id"].startswith("msg_")
    del message["id"]
    assert message == {
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_creation": ZERO_CACHE,
        },
    }


def test_it_puts_reasoning_first_and_maps_tool_calls_back():
    names = tool_names({"tools": [{"name": LONG_NAME}]})
    data = completion(
        {
            "content": "Fetching.",
            "reasoning_content": "Need the docs.",
            "tool_calls": [
                tool_call("call:abc/1", names.to_upstream(LONG_NAME), '{"url":"https://x"}'),
                tool_call("call_2", "Bash", "{not json"),
            ],
        },
        finish="tool_calls",
    )
    message = translate_response(data, model="claude-x", names=names)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Need the docs.", "signature": OPENAI_SIGNATURE_TAG},
        {"type": "text", "text": "Fetching."},
        {"type": "tool_use", "id": "call_abc_1", "name": LONG_NAME, "input": {"url": "https://x"}},
        {"type": "tool_use", "id": "call_2", "name": "Bash", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_it_reads_the_reasoning_field_too():
    data = completion({"content": "4", "reasoning": "2+2"})
    assert translate_response(data, model="m", names=NO_NAMES)["content"] == [
        {"type": "thinking", "thinking": "2+2", "signature": OPENAI_SIGNATURE_TAG},
        {"type": "text", "text": "4"},
    ]


@pytest.mark.parametrize(
    ("finish", "has_tool", "expected"),
    [
        ("stop", False, "end_turn"),
        ("stop", True, "tool_use"),
        ("length", False, "max_tokens"),
        ("length", True, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("function_call", True, "tool_use"),
        ("tool_calls", False, "end_turn"),
        ("content_filter", False, "refusal"),
        (None, False, "end_turn"),
        ("something_new", False, "end_turn"),
    ],
)
def test_it_maps_finish_reasons(finish, has_tool, expected):
    message: dict[str, Any] = {"content": "x"}
    if has_tool:
        message["tool_calls"] = [tool_call("call_1")]
    assert (
        translate_response(completion(message, finish), model="m", names=NO_NAMES)["stop_reason"]
        == expected
    )


def test_it_explains_an_empty_filtered_response():
    message = translate_response(
        completion({"content": None}, "content_filter"), model="m", names=NO_NAMES
    )
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [
        {"type": "text", "text": "The upstream provider's content filter blocked this response."}
    ]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 1000,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 800},
            },
            (200, 50, 800, 0),
        ),
        (  # DeepSeek
            {
                "prompt_tokens": 1000,
                "completion_tokens": 7,
                "prompt_cache_hit_tokens": 600,
                "prompt_cache_miss_tokens": 400,
            },
            (400, 7, 600, 0),
        ),
        (  # OpenRouter on a caching provider
            {
                "prompt_tokens": 1000,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 300},
            },
            (600, 1, 100, 300),
        ),
        ({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None}, (5, 2, 0, 0)),
    ],
)
def test_it_does_the_usage_math(usage, expected):
    message = translate_response(
        completion({"content": "x"}, usage=usage), model="m", names=NO_NAMES
    )
    got = message["usage"]
    assert (
        got["input_tokens"],
        got["output_tokens"],
        got["cache_read_input_tokens"],
        got["cache_creation_input_tokens"],
    ) == expected


def test_it_raises_for_an_error_inside_a_200_body():
    with pytest.raises(TranslatedStreamError) as caught:
        translate_response(
            {"error": {"message": "Provider down", "code": 502}}, model="m", names=NO_NAMES
        )
    assert caught.value.info == ErrorInfo(502, "api_error", "Provider down")


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None
) -> dict:
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def usage_chunk(prompt: int = 20, completion: int = 12, cached: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def fragment(
    index: int | None, arguments: str = "", call_id: str | None = None, name: str | None = None
) -> dict:
    call: dict[str, Any] = {"function": {"arguments": arguments}}
    if index is not None:
        call["index"] = index
    if call_id:
        call["id"] = call_id
        call["type"] = "function"
    if name:
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


def run(
    chunks: list[dict[str, Any]], *, names: ToolNames = NO_NAMES, estimate: int = 0
) -> list[Event]:
    translator = StreamTranslator(model="claude-x", names=names, input_tokens_estimate=estimate)
    events: list[Event] = []
    for item in chunks:
        events += translator.feed(item)
    events += translator.finish()
    assert_grammar(events)
    return events


def assert_grammar(events: list[Event]) -> None:
    """Anthropic's SSE grammar, plus the invariants clients rely on."""
    names = [name for name, _ in events]
    for name, data in events:
        assert data["type"] == name
    assert names[0] == "message_start"
    assert names.count("message_start") == 1
    assert names.count("message_delta") == 1 and names.count("message_stop") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    expected_index = 0
    block: dict[str, Any] | None = None
    pieces: list[str] = []
    last_delta = ""
    allowed = {
        "text": {"text_delta"},
        "thinking": {"thinking_delta", "signature_delta"},
        "tool_use": {"input_json_delta"},
    }
    for name, data in events[1:-2]:
        if name == "ping":
            continue
        assert data["index"] == expected_index, (name, data)
        if name == "content_block_start":
            assert block is None
            block, pieces, last_delta = data["content_block"], [], ""
            if block["type"] == "tool_use":
                assert block["input"] == {}
                assert re.fullmatch(r"[a-zA-Z0-9_-]+", block["id"])
        elif name == "content_block_delta":
            assert block is not None
            delta = data["delta"]
            assert delta["type"] in allowed[block["type"]]
            last_delta = delta["type"]
            pieces.append(
                delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
            )
        elif name == "content_block_stop":
            assert block is not None
            if block["type"] == "tool_use":
                assert isinstance(json.loads("".join(pieces)), dict)
            elif block["type"] == "text":
                assert "".join(pieces).strip()
            elif block["type"] == "thinking":
                assert last_delta == "signature_delta"
            block = None
            expected_index += 1
        else:
            raise AssertionError(f"unexpected event {name}")
    assert block is None


def message_start(estimate: int = 0) -> Event:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_X",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": estimate,
                    "output_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cache_creation": ZERO_CACHE,
                },
            },
        },
    )


def normalised(events: list[Event]) -> list[Event]:
    out = []
    for name, data in events:
        if name == "message_start":
            assert data["message"]["id"].startswith("msg_")
            data = {**data, "message": {**data["message"], "id": "msg_X"}}
        out.append((name, data))
    return out


def start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, payload: dict[str, Any]) -> Event:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": payload},
    )


def stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def json_delta(index: int, partial: str) -> Event:
    return delta(index, {"type": "input_json_delta", "partial_json": partial})


def end(
    stop_reason: str, input_tokens: int = 20, output_tokens: int = 12, cached: int = 0
) -> list[Event]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cache_read_input_tokens": cached,
                    "cache_creation_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_it_streams_text():
    events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, finish="stop"),
            usage_chunk(),
        ],
        estimate=17,
    )
    assert normalised(events) == [
        message_start(17),
        start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Hel"}),
        delta(0, {"type": "text_delta", "text": "lo"}),
        stop(0),
        *end("end_turn"),
    ]


def test_it_streams_reasoning_as_a_signed_thinking_block():
    events = run(
        [
            chunk({"role": "assistant", "reasoning_content": "Let me "}),
            chunk({"reasoning_content": "think."}),
            chunk({"reasoning": "More.", "content": None}),
            chunk({"content": "\n\n"}),  # blank text is held, not a block of its own
            chunk({"content": "Answer."}),
            chunk({}, finish="stop", usage={"prompt_tokens": 20, "completion_tokens": 12}),
        ]
    )
    assert normalised(events) == [
        message_start(),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        delta(0, {"type": "thinking_delta", "thinking": "think."}),
        delta(0, {"type": "thinking_delta", "thinking": "More."}),
        delta(0, {"type": "signature_delta", "signature": OPENAI_SIGNATURE_TAG}),
        stop(0),
        start(1, {"type": "text", "text": ""}),
        delta(1, {"type": "text_delta", "text": "\n\nAnswer."}),
        stop(1),
        *end("end_turn"),
    ]


def test_it_streams_tool_arguments_as_they_arrive():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    first = translator.feed(fragment(0, "", "call_abc", "get_weather"))
    assert normalised(first) == [
        message_start(),
        start(0, {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {}}),
    ]
    pieces = ['{"ci', 'ty": "Par', "is, FR", '"}']
    for piece in pieces:
        # Each fragment comes straight back out of the feed() that carried it.
        assert translator.feed(fragment(0, piece)) == [json_delta(0, piece)]
    assert translator.feed(chunk({}, finish="tool_calls")) == [stop(0)]
    assert translator.feed(usage_chunk()) == end("tool_use")
    assert translator.finish() == []


def test_it_streams_two_sequential_tool_calls():
    events = run(
        [
            chunk({"content": "Checking both."}),
            fragment(0, "", "call_1", "Read"),
            fragment(0, '{"file_path":'),
            fragment(0, '"/a"}'),
            fragment(1, "", "call_2", "Read"),
            fragment(1, '{"file_path":"/b"}'),
            chunk({}, finish="tool_calls"),
            usage_chunk(),
        ]
    )
    assert normalised(events)[1:] == [
        start(0, {"type": "text", "text": ""}),
        delta(0, {"type": "text_delta", "text": "Checking both."}),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}),
        json_delta(1, '{"file_path":'),
        json_delta(1, '"/a"}'),
        stop(1),
        start(2, {"type": "tool_use", "id": "call_2", "name": "Read", "input": {}}),
        json_delta(2, '{"file_path":"/b"}'),
        stop(2),
        *end("tool_use"),
    ]


def test_it_handles_a_nameless_idless_call_with_late_usage():
    # reference-behaviour.md §8 scenario 25
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    events = translator.feed(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "do_it", "arguments": "{}"}}]})
    )
    events += translator.feed(chunk({}, finish="tool_calls"))
    events += translator.feed(usage_chunk())
    assert translator.feed(usage_chunk(99, 99)) == []
    assert translator.finish() == []
    assert_grammar(events)
    starts = [data for name, data in events if name == "content_block_start"]
    assert len(starts) == 1
    block = starts[0]["content_block"]
    assert block["id"].startswith("toolu_") and block["name"] == "do_it"
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    assert partial == "{}"
    assert events[-2:] == end("tool_use")


def test_it_ignores_chunks_after_message_stop():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    translator.feed(chunk({"content": "Hi"}, finish="stop"))
    assert translator.finish()[-1] == ("message_stop", {"type": "message_stop"})
    assert translator.feed(usage_chunk()) == []
    assert translator.feed(chunk({"content": "late"})) == []
    assert translator.finish() == []


def test_it_buffers_arguments_until_the_name_is_known():
    events = run(
        [
            fragment(0, "", "call_1"),
            fragment(0, '{"a":'),
            fragment(0, "1}", name="Edit"),
            chunk({}, finish="tool_calls"),
        ]
    )
    assert normalised(events)[1:4] == [
        start(0, {"type": "tool_use", "id": "call_1", "name": "Edit", "input": {}}),
        json_delta(0, '{"a":1}'),
        stop(0),
    ]


def test_it_sends_empty_arguments_as_an_empty_object():
    events = run([fragment(0, "", "call_1", "TaskList"), chunk({}, finish="tool_calls")])
    assert normalised(events)[1:4] == [
        start(0, {"type": "tool_use", "id": "call_1", "name": "TaskList", "input": {}}),
        json_delta(0, "{}"),
        stop(0),
    ]


def test_it_matches_index_less_fragments_by_id():
    events = run(
        [
            chunk(
                {"tool_calls": [{"id": "call_a", "function": {"name": "A", "arguments": '{"x":'}}]}
            ),
            chunk({"tool_calls": [{"function": {"arguments": "1}"}}]}),
            chunk({"tool_calls": [{"id": "call_b", "function": {"name": "B", "arguments": "{}"}}]}),
            chunk({"tool_calls": [{"id": "call_a", "function": {"arguments": "ignored"}}]}),
            chunk({}, finish="stop"),
        ]
    )
    assert normalised(events)[1:-2] == [
        start(0, {"type": "tool_use", "id": "call_a", "name": "A", "input": {}}),
        json_delta(0, '{"x":'),
        json_delta(0, "1}"),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_b", "name": "B", "input": {}}),
        json_delta(1, "{}"),
        stop(1),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_it_splits_calls_that_reuse_index_zero():
    events = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "function": {"name": "A", "arguments": "{}"}}
                    ]
                }
            ),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_b", "function": {"name": "B", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, finish="tool_calls"),
        ]
    )
    ids = [d["content_block"]["id"] for n, d in events if n == "content_block_start"]
    assert ids == ["call_a", "call_b"]


def test_it_keeps_interleaved_calls_contiguous():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    events = translator.feed(fragment(0, '{"p":', "call_1", "A"))
    # Call 1 starts while call 0's JSON is incomplete: it waits (nothing emitted for it yet).
    assert translator.feed(fragment(1, '{"q":', "call_2", "B")) == []
    assert translator.feed(fragment(1, "2}")) == []
    # Call 0 completes, so it closes and call 1 goes out with its buffered arguments.
    assert translator.feed(fragment(0, "1}")) == [
        json_delta(0, "1}"),
        stop(0),
        start(1, {"type": "tool_use", "id": "call_2", "name": "B", "input": {}}),
        json_delta(1, '{"q":2}'),
    ]
    events += translator.feed(fragment(0, "late"))  # block 0 is closed: dropped
    events += translator.feed(chunk({}, finish="tool_calls"))
    events += translator.finish()
    assert events[-3:] == [stop(1), *end("tool_use", input_tokens=0, output_tokens=4)]


def test_it_repairs_arguments_cut_off_by_max_tokens():
    events = run(
        [
            fragment(0, '{"file_path":"/a","content":"line one\\nline', "call_1", "Write"),
            chunk({}, finish="length"),
            usage_chunk(),
        ]
    )
    assert normalised(events)[1:4] == [
        start(0, {"type": "tool_use", "id": "call_1", "name": "Write", "input": {}}),
        json_delta(0, '{"file_path":"/a","content":"line one\\nline'),
        json_delta(0, '"}'),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_it_accepts_usage_on_the_finish_chunk():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    translator.feed(chunk({"content": "Hi"}))
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    # Usage on the finish chunk may still be followed by a usage chunk: wait for [DONE].
    assert translator.feed(chunk({}, finish="stop", usage=usage)) == [stop(0)]
    assert translator.finish() == end("end_turn", input_tokens=20, output_tokens=3, cached=10)


def test_it_finishes_without_done_or_usage():
    events = run([chunk({"content": "Hello there"}), chunk({}, finish="stop")], estimate=40)
    # No usage at all: the input estimate, and ~4 characters per output token.
    assert events[-2:] == end("end_turn", input_tokens=40, output_tokens=3)


def test_it_finishes_a_stream_that_never_sent_finish_reason():
    events = run([chunk({"content": "Hi"})])
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_it_maps_tool_names_back_in_streams():
    names = tool_names({"tools": [{"name": LONG_NAME}]})
    events = run(
        [fragment(0, "{}", "call_1", names.to_upstream(LONG_NAME)), chunk({}, finish="tool_calls")],
        names=names,
    )
    assert events[1][1]["content_block"]["name"] == LONG_NAME


def test_it_accepts_arguments_sent_as_an_object():
    events = run(
        [
            fragment(0, "", "call_1", "A"),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": {"x": 1}}}]}),
        ]
    )
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    assert json.loads(partial) == {"x": 1}


def test_it_explains_a_filtered_stream():
    events = run([chunk({}, finish="content_filter")])
    assert normalised(events)[1:4] == [
        start(0, {"type": "text", "text": ""}),
        delta(
            0,
            {
                "type": "text_delta",
                "text": "The upstream provider's content filter blocked this response.",
            },
        ),
        stop(0),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"


def test_it_raises_on_an_error_object_mid_stream():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    translator.feed(chunk({"content": "partial"}))
    with pytest.raises(TranslatedStreamError) as caught:
        translator.feed({"error": {"message": "Rate limit exceeded", "code": 429}})
    assert caught.value.info == ErrorInfo(429, "rate_limit_error", "Rate limit exceeded")


def test_it_raises_on_an_empty_stream():
    translator = StreamTranslator(model="claude-x", names=NO_NAMES)
    with pytest.raises(TranslatedStreamError) as caught:
        translator.finish()
    assert caught.value.info == ErrorInfo(502, "api_error", "upstream returned an empty stream")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

OPENAI_OVERFLOW = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130512 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            OPENAI_OVERFLOW,
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 130512 tokens > 128000 maximum"
            ),
        ),
        (
            400,
            json.dumps(OPENAI_OVERFLOW).encode(),
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 130512 tokens > 128000 maximum"
            ),
        ),
        (
            400,
            {"error": {"message": "Too long.", "code": "context_length_exceeded"}},
            ErrorInfo(400, "invalid_request_error", "prompt is too long"),
        ),
        (
            400,  # vLLM / DeepSeek: the messages fit, messages + max_tokens do not
            {
                "message": "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (30000 in the messages, 10000 in the completion). Please reduce the length of the messages or completion."
            },
            ErrorInfo(
                400,
                "invalid_request_error",
                "input length and `max_tokens` exceed context limit: 30000 + 10000 > 32768",
            ),
        ),
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 32768 tokens. However, you requested 36000 tokens (35000 in the messages, 1000 in the completion).",
                "code": 400,
            },
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 35000 tokens > 32768 maximum"
            ),
        ),
        (
            400,  # llama.cpp server
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 5000 tokens > 4096 maximum"
            ),
        ),
        (
            500,  # never a 5xx for an overflow: clients would retry forever
            "Error: too many tokens in the prompt",
            ErrorInfo(400, "invalid_request_error", "prompt is too long"),
        ),
        (
            400,  # vLLM: max_tokens alone does not fit
            {
                "message": "'max_tokens' or 'max_completion_tokens' is too large: 64000. This model's "
                "maximum context length is 32768 tokens and your request has 10000 input tokens "
                "(64000 > 32768 - 10000)."
            },
            ErrorInfo(
                400,
                "invalid_request_error",
                "input length and `max_tokens` exceed context limit: 10000 + 64000 > 32768",
            ),
        ),
        (
            400,  # Google's OpenAI-compatible endpoint
            {
                "error": {
                    "code": 400,
                    "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                    "status": "INVALID_ARGUMENT",
                }
            },
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 1200000 tokens > 1048576 maximum"
            ),
        ),
        (
            400,  # Mistral
            {
                "object": "error",
                "message": "Prompt contains 40,000 tokens and 0 draft tokens, too large for model with 32,768 maximum context length",
                "type": "invalid_request_invalid_args",
            },
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum"
            ),
        ),
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            ErrorInfo(
                429,
                "rate_limit_error",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
        ),
        (
            429,
            {
                "error": {
                    "message": "Billing hard limit has been reached.",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            ErrorInfo(
                429,
                "rate_limit_error",
                "upstream quota exhausted (insufficient_quota): Billing hard limit has been reached.",
            ),
        ),
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached for gpt-x on tokens per min (TPM). Please try again in 1.5s.",
                    "code": "rate_limit_exceeded",
                }
            },
            ErrorInfo(
                429,
                "rate_limit_error",
                "Rate limit reached for gpt-x on tokens per min (TPM). Please try again in 1.5s.",
                1.5,
            ),
        ),
        (
            429,
            {"error": {"message": "Slow down. Try again in 6m0s."}},
            ErrorInfo(429, "rate_limit_error", "Slow down. Try again in 6m0s.", 360.0),
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
            ErrorInfo(401, "authentication_error", "Incorrect API key provided"),
        ),
        (403, {"detail": "Forbidden"}, ErrorInfo(403, "permission_error", "Forbidden")),
        (
            404,
            {"error": {"message": "The model `x` does not exist"}},
            ErrorInfo(404, "not_found_error", "The model `x` does not exist"),
        ),
        (
            402,
            {"error": {"message": "Insufficient credits", "code": 402}},
            ErrorInfo(402, "billing_error", "Insufficient credits"),
        ),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
            ErrorInfo(422, "invalid_request_error", "field required"),
        ),
        (
            500,
            {"error": {"message": "Internal error"}},
            ErrorInfo(500, "api_error", "Internal error"),
        ),
        (502, "boom", ErrorInfo(502, "api_error", "boom")),
        (503, "Service Unavailable", ErrorInfo(503, "api_error", "Service Unavailable")),
        (
            503,
            {"error": {"message": "The engine is currently overloaded, please try again later"}},
            ErrorInfo(
                529,
                "overloaded_error",
                "The engine is currently overloaded, please try again later",
            ),
        ),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ErrorInfo(529, "overloaded_error", "Overloaded"),
        ),
        (
            200,  # an error object inside a stream: the status comes from its code
            {
                "error": {
                    "code": 502,
                    "message": "Provider returned error",
                    "metadata": {"raw": "upstream timeout", "provider_name": "X"},
                }
            },
            ErrorInfo(502, "api_error", "Provider returned error: upstream timeout"),
        ),
        (
            400,  # Google's OpenAI-compatible endpoint answers with a list
            [
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid.",
                        "status": "INVALID_ARGUMENT",
                    }
                }
            ],
            ErrorInfo(400, "invalid_request_error", "API key not valid."),
        ),
        (
            200,
            {"error": {"message": "quota", "status": "RESOURCE_EXHAUSTED"}},
            ErrorInfo(429, "rate_limit_error", "quota"),
        ),
        (500, None, ErrorInfo(500, "api_error", "upstream returned HTTP 500")),
        (500, b"\xff\xfe\x00garbage", ErrorInfo(500, "api_error", "\ufffd\ufffd\x00garbage")),
        (400, "{not json", ErrorInfo(400, "invalid_request_error", "{not json")),
        (418, 12345, ErrorInfo(418, "invalid_request_error", "upstream returned HTTP 418")),
    ],
)
def test_it_parses_upstream_errors(status, body, expected):
    assert parse_error(status, body) == expected


def test_it_keeps_the_grammar_under_random_fragmentation():
    # Seeded fuzz: random reasoning/text/tool mixes, argument splits, interleaving, missing
    # indexes, finish reasons and usage placement. Every stream must obey the grammar, and
    # unless truncated every call's arguments must arrive intact.
    rng = random.Random(7)
    for _ in range(300):
        chunks: list[dict[str, Any]] = []
        if rng.random() < 0.4:
            chunks += [chunk({"reasoning_content": piece}) for piece in ("Let ", "me ", "see")]
        if rng.random() < 0.6:
            chunks += [chunk({"content": piece}) for piece in ("\n", "Hello", " ", "there")]
        expected: dict[str, Any] = {}
        streams = []
        for i in range(rng.randint(0, 3)):
            tool_input = {"path": f"/tmp/{i}", "text": 'q"b\\s' * rng.randint(0, 3), "n": [1, None]}
            arguments = json.dumps(tool_input)
            cuts = sorted(rng.sample(range(1, len(arguments)), rng.randint(0, 6)))
            pieces = [
                arguments[a:b] for a, b in zip([0, *cuts], [*cuts, len(arguments)], strict=True)
            ]
            expected[f"tool{i}"] = tool_input
            head = {
                "index": i,
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": f"tool{i}", "arguments": ""},
            }
            if rng.random() < 0.2:  # id first, name with the first arguments
                head = {"index": i, "id": f"call_{i}", "function": {"arguments": ""}}
                calls = [
                    head,
                    {"index": i, "function": {"name": f"tool{i}", "arguments": pieces.pop(0)}},
                ]
            else:
                calls = [head]
            calls += [{"index": i, "function": {"arguments": piece}} for piece in pieces]
            streams.append(calls)
        if rng.random() < 0.3:  # interleave the calls' fragments
            while any(streams):
                chosen = rng.choice([s for s in streams if s])
                chunks.append(chunk({"tool_calls": [chosen.pop(0)]}))
        else:
            drop_index = rng.random() < 0.2
            for calls in streams:
                for call in calls:
                    if drop_index:
                        call = {k: v for k, v in call.items() if k != "index"}
                    chunks.append(chunk({"tool_calls": [call]}))
        finish = rng.choice(["stop", "tool_calls", "length", None])
        if finish:
            usage = {"prompt_tokens": 5, "completion_tokens": 3} if rng.random() < 0.3 else None
            chunks.append(chunk({}, finish=finish, usage=usage))
        if rng.random() < 0.5:
            chunks.append(usage_chunk())
        if not chunks:
            continue
        events = run(chunks)
        if finish == "length":
            continue
        inputs: dict[str, Any] = {}
        name, pieces = None, []
        for event, data in events:
            if event == "content_block_start" and data["content_block"]["type"] == "tool_use":
                name, pieces = data["content_block"]["name"], []
            elif event == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
                pieces.append(data["delta"]["partial_json"])
            elif event == "content_block_stop" and name:
                inputs[name], name = json.loads("".join(pieces)), None
        assert inputs == expected


def test_it_never_repeats_a_tool_use_id():
    data = completion({"tool_calls": [tool_call("call_1"), tool_call("call_1")]}, "tool_calls")
    first, second = translate_response(data, model="m", names=NO_NAMES)["content"]
    assert first["id"] == "call_1" and second["id"].startswith("toolu_")
    events = run(
        [
            fragment(0, "{}", "call_1", "A"),
            fragment(1, "{}", "call_1", "B"),
            chunk({}, finish="tool_calls"),
        ]
    )
    ids = [d["content_block"]["id"] for n, d in events if n == "content_block_start"]
    assert ids[0] == "call_1" and ids[1].startswith("toolu_")


def test_it_skips_blank_text_in_responses():
    message = translate_response(
        completion({"content": "\n\n", "tool_calls": [tool_call("c")]}), model="m", names=NO_NAMES
    )
    assert [block["type"] for block in message["content"]] == ["tool_use"]
