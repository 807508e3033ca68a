from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from claude_api.translate.common import RESPONSES_SIGNATURE_TAG, TranslatedStreamError
from claude_api.translate.openai_responses import (
    ResponsesOptions,
    StreamTranslator,
    assemble,
    build_request,
    call_ids,
    parse_error,
    stop_sequences,
    tool_names,
    translate_response,
)
from claude_api.translate.openai_responses.names import (
    read_signature,
    reasoning_signature,
    short_call_id,
)
from tests.unit.test_translate_openai import assert_grammar

FIXTURES = sorted(Path(__file__).parent.parent.joinpath("fixtures", "claude-code").glob("*.json"))
API = ResponsesOptions()
CODEX = ResponsesOptions(codex=True)
NOW = 1_800_000_000.0
LONG_ID = "toolu_" + "x" * 74  # 80 characters


def translate(body: dict[str, Any], options: ResponsesOptions = API) -> dict[str, Any]:
    return build_request(
        body,
        upstream_model="gpt-5-codex",
        options=options,
        names=tool_names(body),
        ids=call_ids(body),
    )


def assert_calls_paired(items: list[dict[str, Any]]) -> None:
    """Every function_call_output answers an earlier function_call, and every call is answered
    exactly once (the backend refuses anything else)."""
    calls: list[str] = []
    answered: list[str] = []
    for item in items:
        if item["type"] == "function_call":
            assert len(item["call_id"]) <= 64
            assert item["call_id"] not in calls
            calls.append(item["call_id"])
        elif item["type"] == "function_call_output":
            assert item["call_id"] in calls and item["call_id"] not in answered
            answered.append(item["call_id"])
    assert sorted(calls) == sorted(answered)


# --------------------------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------------------------


def test_it_sends_the_system_prompt_as_instructions_to_an_api_key():
    body = {
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {"type": "text", "text": "Be brief."},
        ],
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 1000,
    }
    request = translate(body)
    assert request["instructions"] == "Be brief."
    assert request["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    ]
    assert request["max_output_tokens"] == 1000
    assert request["store"] is False and request["stream"] is True
    assert "reasoning" not in request and "include" not in request


def test_it_sends_the_system_prompt_as_a_developer_message_to_codex():
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9}
    request = translate(body, CODEX)
    assert request["instructions"] == ""
    assert request["input"][0] == {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Be brief."}],
    }
    # Codex refuses max_output_tokens and sampling parameters.
    assert "max_output_tokens" not in request and "temperature" not in request
    assert request["include"] == ["reasoning.encrypted_content"]
    assert request["store"] is False and request["stream"] is True


def test_it_keeps_a_mid_conversation_system_message_in_place_as_developer_text():
    body = {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "system", "content": "Now be formal."},
            {"role": "user", "content": "three"},
        ]
    }
    items = translate(body)["input"]
    assert [(i["role"], i["content"][0]["type"]) for i in items] == [
        ("user", "input_text"),
        ("assistant", "output_text"),
        ("developer", "input_text"),
        ("user", "input_text"),
    ]
    assert "Now be formal." in items[2]["content"][0]["text"]


def test_it_translates_images_and_pdfs_including_urls():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVB",
                        },
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x/b.pdf"}},
                    {"type": "document", "source": {"type": "text", "data": "plain words"}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ]
    }
    parts = translate(body)["input"][0]["content"]
    assert parts == [
        {"type": "input_image", "image_url": "data:image/jpeg;base64,AAA", "detail": "auto"},
        {"type": "input_image", "image_url": "https://x/a.png", "detail": "auto"},
        {
            "type": "input_file",
            "filename": "spec.pdf",
            "file_data": "data:application/pdf;base64,JVB",
        },
        {"type": "input_file", "file_url": "https://x/b.pdf"},
        {"type": "input_text", "text": "plain words"},
        {"type": "input_text", "text": "What is this?"},
    ]


def tool_history(tool_id: str = "toolu_1", *, is_error: bool = False) -> dict[str, Any]:
    return {
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                },
            }
        ],
        "messages": [
            {"role": "user", "content": "List files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Listing."},
                    {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": "no such dir",
                        "is_error": is_error,
                    },
                    {"type": "text", "text": "and?"},
                ],
            },
        ],
    }


def test_it_pairs_tool_calls_with_their_outputs():
    request = translate(tool_history())
    items = request["input"]
    assert [i["type"] for i in items] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert items[2] == {
        "type": "function_call",
        "call_id": "toolu_1",
        "name": "Bash",
        "arguments": '{"command":"ls"}',
    }
    assert items[3] == {
        "type": "function_call_output",
        "call_id": "toolu_1",
        "output": "no such dir",
    }
    assert request["tools"] == [
        {
            "type": "function",
            "name": "Bash",
            "description": "Run a command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
            "strict": False,
        }
    ]
    assert request["tool_choice"] == "auto" and request["parallel_tool_calls"] is True


def test_it_keeps_error_tool_results_visible_to_the_model():
    items = translate(tool_history(is_error=True))["input"]
    assert items[3]["output"] == "Error: no such dir"


def test_it_shortens_long_tool_ids_deterministically():
    items = translate(tool_history(LONG_ID))["input"]
    short = short_call_id(LONG_ID)
    assert len(LONG_ID) == 80 and len(short) == 64 and short.startswith(LONG_ID[:47])
    assert items[2]["call_id"] == items[3]["call_id"] == short
    assert translate(tool_history(LONG_ID))["input"][2]["call_id"] == short
    assert call_ids(tool_history(LONG_ID)).to_client(short) == LONG_ID


def test_it_answers_a_call_without_result_and_keeps_an_orphan_result_as_text():
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "a", "name": "Read", "input": {}},
                    {"type": "tool_use", "id": "b", "name": "Read", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "b", "content": "B"},
                    {"type": "tool_result", "tool_use_id": "zzz", "content": "lost"},
                ],
            },
        ]
    }
    items = translate(body)["input"]
    assert_calls_paired(items)
    outputs = {i["call_id"]: i["output"] for i in items if i["type"] == "function_call_output"}
    assert outputs["b"] == "B" and outputs["a"].startswith("Error: no result")
    assert items[-1]["role"] == "user"
    assert "[tool result zzz]\nlost" in items[-1]["content"][0]["text"]


def test_it_sends_tool_result_images_as_output_parts():
    body = tool_history()
    body["messages"][2]["content"][0]["content"] = [
        {"type": "text", "text": "screenshot"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "PNG"}},
    ]
    output = translate(body)["input"][3]["output"]
    assert output == [
        {"type": "input_text", "text": "screenshot"},
        {"type": "input_image", "image_url": "data:image/png;base64,PNG", "detail": "auto"},
    ]


def test_it_sends_back_only_its_own_encrypted_reasoning():
    body = {
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "mine",
                        "signature": RESPONSES_SIGNATURE_TAG + "ENC",
                    },
                    {"type": "thinking", "thinking": "claude's", "signature": "EqQBCkYIBxgCKkD"},
                    {"type": "thinking", "thinking": "gemini's", "signature": "gemini.abc"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "user", "content": "more"},
        ]
    }
    items = translate(body)["input"]
    assert items[1] == {"type": "reasoning", "summary": [], "encrypted_content": "ENC"}
    assert [i["type"] for i in items] == ["message", "reasoning", "message", "message"]


def test_it_sends_a_credential_only_the_reasoning_that_credential_issued():
    mine, theirs = "0123456789abcdef", "fedcba9876543210"

    def thinking(signature: str) -> dict[str, Any]:
        return {"type": "thinking", "thinking": "", "signature": signature}

    body = {
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    thinking(reasoning_signature("THEIRS", theirs)),
                    thinking(reasoning_signature("MINE", mine)),
                    thinking(RESPONSES_SIGNATURE_TAG + "UNTAGGED"),
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "user", "content": "more"},
        ]
    }
    items = translate(body, ResponsesOptions(origin=mine))["input"]
    sent = [i["encrypted_content"] for i in items if i["type"] == "reasoning"]
    # Another credential's cannot be verified here; one from before origins were recorded
    # might be, and the provider retries without it if not.
    assert sent == ["MINE", "UNTAGGED"]
    everything = translate(body)["input"]  # no origin known: all of ours
    assert [i["encrypted_content"] for i in everything if i["type"] == "reasoning"] == [
        "THEIRS",
        "MINE",
        "UNTAGGED",
    ]


@pytest.mark.parametrize(
    "signature",
    [
        reasoning_signature("gAAAA-enc", "0123456789abcdef"),
        reasoning_signature("gAAAA-enc"),
    ],
)
def test_a_reasoning_signature_reads_back_what_it_carries(signature):
    read = read_signature(signature)
    assert read is not None
    origin, encrypted = read
    assert reasoning_signature(encrypted, origin) == signature


def test_it_names_the_answering_credential_in_each_reasoning_signature():
    translator = StreamTranslator(
        model="claude-x",
        names=tool_names({"messages": []}),
        ids=call_ids({"messages": []}),
        now=NOW,
        origin="0123456789abcdef",
    )
    events = []
    for event in [created(), *reasoning_events("rs", [["hm"]], "gAAAA-enc"), completed()]:
        events += translator.feed(event)
    signature = assemble(events)["content"][0]["signature"]
    assert signature == RESPONSES_SIGNATURE_TAG + "0123456789abcdef:gAAAA-enc"
    assert read_signature(signature) == ("0123456789abcdef", "gAAAA-enc")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "name": "Bash"}),
    ],
)
def test_it_maps_tool_choice(choice, expected):
    body = tool_history()
    body["tool_choice"] = {**choice, "disable_parallel_tool_use": True}
    request = translate(body)
    assert request["tool_choice"] == expected
    assert request["parallel_tool_calls"] is False


def test_it_aliases_long_tool_names_reversibly():
    name = "mcp__" + "very_long_server_name__" * 3 + "tool"
    body = {
        "tools": [{"name": name, "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "x"}],
    }
    names = tool_names(body)
    sent = translate(body)["tools"][0]["name"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", sent) and sent != name
    assert names.to_client(sent) == name


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2000}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, "high"),
        ({"type": "adaptive"}, "medium"),
    ],
)
def test_it_maps_thinking_to_reasoning_effort_with_summaries(thinking, expected):
    body = {"messages": [{"role": "user", "content": "x"}], "thinking": thinking, "temperature": 1}
    request = translate(body)
    assert request["reasoning"] == {"effort": expected, "summary": "auto"}
    assert request["include"] == ["reasoning.encrypted_content"]
    assert "temperature" not in request  # reasoning models refuse sampling parameters


def test_it_passes_sampling_parameters_without_thinking_to_an_api_key():
    body = {"messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "top_p": 0.9}
    request = translate(body)
    assert request["temperature"] == 0.2 and request["top_p"] == 0.9


def test_it_reads_stop_sequences_for_the_stream():
    assert stop_sequences({"stop_sequences": ["END", "", "END", 3, "STOP"]}) == ("END", "STOP")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
@pytest.mark.parametrize("options", [API, CODEX], ids=["api", "codex"])
def test_it_translates_every_claude_code_fixture(fixture, options):
    body = json.loads(fixture.read_text())["body"]
    before = copy.deepcopy(body)
    request = translate(body, options)
    text = json.dumps(request)
    assert body == before  # the client's body is left alone
    assert "x-anthropic-billing-header" not in text
    assert request["store"] is False and request["input"]
    assert_calls_paired(request["input"])
    for item in request["input"]:
        assert item["type"] in ("message", "function_call", "function_call_output", "reasoning")
        if item["type"] == "message":
            assert item["role"] in ("user", "assistant", "developer") and item["content"]
    for tool in request.get("tools", []):
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool["name"])
        assert "$schema" not in tool["parameters"]
    if options.codex:
        if body.get("system"):
            assert request["input"][0]["role"] == "developer"
        assert "max_output_tokens" not in request


# --------------------------------------------------------------------------------------------
# Stream
# --------------------------------------------------------------------------------------------


def created(response_id: str = "resp_1") -> dict[str, Any]:
    return {
        "type": "response.created",
        "sequence_number": 0,
        "response": {
            "id": response_id,
            "object": "response",
            "status": "in_progress",
            "output": [],
        },
    }


def reasoning_events(item_id: str, summaries: list[list[str]], encrypted: str) -> list[dict]:
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": item_id, "type": "reasoning", "summary": []},
        }
    ]
    for number, pieces in enumerate(summaries):
        events.append(
            {
                "type": "response.reasoning_summary_part.added",
                "item_id": item_id,
                "output_index": 0,
                "summary_index": number,
                "part": {"type": "summary_text", "text": ""},
            }
        )
        for piece in pieces:
            events.append(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": item_id,
                    "output_index": 0,
                    "summary_index": number,
                    "delta": piece,
                }
            )
        events.append(
            {
                "type": "response.reasoning_summary_text.done",
                "item_id": item_id,
                "output_index": 0,
                "summary_index": number,
                "text": "".join(pieces),
            }
        )
    events.append(
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "id": item_id,
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "".join(p)} for p in summaries],
                "encrypted_content": encrypted,
            },
        }
    )
    return events


def message_events(item_id: str, pieces: list[str], index: int = 1) -> list[dict[str, Any]]:
    base = {"item_id": item_id, "output_index": index, "content_index": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {"id": item_id, "type": "message", "role": "assistant", "content": []},
        },
        {
            **base,
            "type": "response.content_part.added",
            "part": {"type": "output_text", "text": ""},
        },
    ]
    events += [{**base, "type": "response.output_text.delta", "delta": p} for p in pieces]
    text = "".join(pieces)
    events += [
        {**base, "type": "response.output_text.done", "text": text},
        {
            **base,
            "type": "response.content_part.done",
            "part": {"type": "output_text", "text": text},
        },
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": {
                "id": item_id,
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            },
        },
    ]
    return events


def call_events(
    item_id: str, call_id: str, name: str, pieces: list[str], index: int = 2
) -> list[dict[str, Any]]:
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": "",
    }
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": index, "item": item}
    ]
    events += [
        {
            "type": "response.function_call_arguments.delta",
            "item_id": item_id,
            "output_index": index,
            "delta": p,
        }
        for p in pieces
    ]
    arguments = "".join(pieces)
    events += [
        {
            "type": "response.function_call_arguments.done",
            "item_id": item_id,
            "output_index": index,
            "arguments": arguments,
        },
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": {**item, "arguments": arguments, "status": "completed"},
        },
    ]
    return events


def completed(
    input_tokens: int = 1000,
    cached: int = 800,
    output_tokens: int = 50,
    *,
    status: str = "completed",
    reason: str | None = None,
    output: list[Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": "resp_1",
        "status": status,
        "output": output or [],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 10},
            "total_tokens": input_tokens + output_tokens,
        },
    }
    if reason:
        response["incomplete_details"] = {"reason": reason}
    kind = "response.completed" if status == "completed" else "response.incomplete"
    return {"type": kind, "response": response}


def run(
    events: list[dict[str, Any]],
    *,
    body: dict[str, Any] | None = None,
    stops: tuple[str, ...] = (),
) -> list[tuple[str, dict[str, Any]]]:
    body = body or {"messages": []}
    translator = StreamTranslator(
        model="claude-x",
        names=tool_names(body),
        ids=call_ids(body),
        now=NOW,
        input_tokens_estimate=7,
        stop_sequences=stops,
    )
    out: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        out += translator.feed(event)
        if translator.stopped:
            out += translator.end_at_stop_sequence()
            break
    out += translator.finish()
    assert_grammar(out)
    return out


def test_it_streams_reasoning_text_and_a_tool_call_in_order():
    events = run(
        [created()]
        + reasoning_events("rs_1", [["Let me ", "think."], ["Then act."]], "gAAAA-enc")
        + message_events("msg_1", ["I'll ", "list files."])
        + call_events("fc_1", "call_abc", "Bash", ['{"comm', 'and":"ls"}'])
        + [completed()]
    )
    shapes = [
        (name, data.get("delta", data.get("content_block", {})).get("type"))
        for name, data in events
    ]
    assert shapes == [
        ("message_start", None),
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", "text"),
        ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("content_block_start", "tool_use"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
        ("message_delta", None),
        ("message_stop", None),
    ]
    message = assemble(events)
    thinking, text, tool = message["content"]
    assert thinking == {
        "type": "thinking",
        "thinking": "Let me think.\n\nThen act.",
        "signature": RESPONSES_SIGNATURE_TAG + "gAAAA-enc",
    }
    assert text == {"type": "text", "text": "I'll list files."}
    assert tool == {
        "type": "tool_use",
        "id": "call_abc",
        "name": "Bash",
        "input": {"command": "ls"},
    }
    assert message["stop_reason"] == "tool_use" and message["model"] == "claude-x"


def test_it_reports_cached_tokens_as_cache_reads():
    events = run([created()] + message_events("m", ["hi"]) + [completed(1000, 800, 42)])
    usage = events[-2][1]["usage"]
    assert usage["input_tokens"] == 200
    assert usage["cache_read_input_tokens"] == 800
    assert usage["output_tokens"] == 42


def test_it_maps_an_incomplete_response_to_max_tokens():
    events = run(
        [created()]
        + call_events("fc", "call_1", "Write", ['{"path":"a","text":"ab'])[:2]
        + [completed(status="incomplete", reason="max_output_tokens")]
    )
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    # The truncated arguments were closed into valid JSON.
    assert assemble(events)["content"][0]["input"] == {"path": "a", "text": "ab"}


def test_it_restores_a_long_tool_id_in_the_response():
    body = tool_history(LONG_ID)
    short = short_call_id(LONG_ID)
    events = run([created()] + call_events("fc", short, "Bash", ["{}"]) + [completed()], body=body)
    assert assemble(events)["content"][0]["id"] == LONG_ID


def test_it_maps_an_aliased_tool_name_back():
    name = "mcp__" + "very_long_server_name__" * 3 + "tool"
    body = {"tools": [{"name": name, "input_schema": {"type": "object"}}], "messages": []}
    alias = tool_names(body).to_upstream(name)
    events = run(
        [created()] + call_events("fc", "call_1", alias, ["{}"]) + [completed()], body=body
    )
    assert assemble(events)["content"][0]["name"] == name


def test_it_raises_for_a_failure_before_any_output_with_nothing_sent():
    translator = StreamTranslator(
        model="m", names=tool_names({}), ids=call_ids({}), now=NOW, input_tokens_estimate=0
    )
    assert translator.feed(created()) == []
    failed = {
        "type": "response.failed",
        "response": {
            "id": "resp_1",
            "status": "failed",
            "error": {
                "code": "rate_limit_exceeded",
                "message": "Rate limit reached. Try again in 20s.",
            },
        },
    }
    with pytest.raises(TranslatedStreamError) as caught:
        translator.feed(failed)
    assert caught.value.info.status == 429
    assert caught.value.info.retry_after == 20


def test_it_raises_for_an_error_event_mid_stream():
    translator = StreamTranslator(model="m", names=tool_names({}), ids=call_ids({}), now=NOW)
    out = translator.feed(created())
    for event in message_events("m", ["partial"])[:3]:
        out += translator.feed(event)
    assert [name for name, _ in out][:2] == ["message_start", "content_block_start"]
    with pytest.raises(TranslatedStreamError) as caught:
        translator.feed({"type": "error", "code": "server_error", "message": "boom"})
    assert caught.value.info.status == 502 and caught.value.info.message == "boom"


def test_it_refuses_a_stream_that_ends_before_completion():
    translator = StreamTranslator(model="m", names=tool_names({}), ids=call_ids({}), now=NOW)
    for event in [created()] + message_events("m", ["partial"])[:3]:
        translator.feed(event)
    with pytest.raises(TranslatedStreamError):
        translator.finish()


def test_it_applies_stop_sequences_across_deltas():
    events = run(
        [created()] + message_events("m", ["Hello wor", "ld END", "ING more"]) + [completed()],
        stops=("END",),
    )
    message = assemble(events)
    assert message["content"] == [{"type": "text", "text": "Hello world "}]
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "END"


def test_it_emits_a_message_sent_whole_and_calls_only_in_the_final_output():
    message_item = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Whole."}],
    }
    call_item = {
        "type": "function_call",
        "call_id": "call_9",
        "name": "Read",
        "arguments": '{"a":1}',
    }
    events = run(
        [created(), {"type": "response.output_item.done", "output_index": 0, "item": message_item}]
        + [completed(output=[message_item, call_item])]
    )
    content = assemble(events)["content"]
    assert content == [
        {"type": "text", "text": "Whole."},
        {"type": "tool_use", "id": "call_9", "name": "Read", "input": {"a": 1}},
    ]


def test_it_keeps_a_signature_only_block_for_reasoning_without_summary():
    events = run(
        [created()]
        + reasoning_events("rs", [], "ENC")
        + message_events("m", ["ok"])
        + [completed()]
    )
    thinking = assemble(events)["content"][0]
    assert thinking == {
        "type": "thinking",
        "thinking": "",
        "signature": RESPONSES_SIGNATURE_TAG + "ENC",
    }


def test_it_round_trips_reasoning_into_the_next_request():
    events = run(
        [created()]
        + reasoning_events("rs", [["plan"]], "ENCRYPTED")
        + call_events("fc", "call_1", "Bash", ['{"command":"ls"}'])
        + [completed()]
    )
    message = assemble(events)
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": message["content"]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a b"}],
            },
        ]
    }
    items = translate(body, CODEX)["input"]
    assert [i["type"] for i in items] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert items[1]["encrypted_content"] == "ENCRYPTED"


def test_it_translates_a_whole_response_object():
    response = completed(
        output=[
            {
                "type": "reasoning",
                "id": "rs",
                "summary": [{"type": "summary_text", "text": "hm"}],
                "encrypted_content": "E",
            },
            {
                "type": "message",
                "id": "m",
                "content": [{"type": "output_text", "text": "Done."}],
            },
        ]
    )["response"]
    message = translate_response(
        response, model="claude-x", names=tool_names({}), ids=call_ids({}), now=NOW
    )
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["stop_reason"] == "end_turn" and message["usage"]["input_tokens"] == 200


def test_it_marks_a_refusal():
    events = run(
        [
            created(),
            {"type": "response.refusal.delta", "item_id": "m", "output_index": 0, "delta": "No."},
            completed(),
        ]
    )
    assert assemble(events)["stop_reason"] == "refusal"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_it_reads_a_usage_limit_reset_in_seconds_or_at_a_time():
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_in_seconds": 3600,
        }
    }
    info = parse_error(429, json.dumps(body).encode(), now=NOW)
    assert (info.status, info.error_type, info.code) == (
        429,
        "rate_limit_error",
        "usage_limit_reached",
    )
    assert info.retry_after == 3600 and "plus" in info.message
    body["error"] = {"type": "usage_limit_reached", "resets_at": NOW + 120}
    assert parse_error(429, json.dumps(body), now=NOW).retry_after == 120


def test_it_backs_off_on_capacity_without_a_reset():
    body = {"error": {"message": "Selected model is at capacity. Please try a different model."}}
    info = parse_error(429, json.dumps(body), now=NOW)
    assert (info.status, info.retry_after, info.code) == (429, None, "capacity")


def test_it_turns_context_overflow_into_prompt_is_too_long():
    body = {
        "error": {
            "code": "context_length_exceeded",
            "message": "Your input exceeds the context window of this model.",
        }
    }
    info = parse_error(400, json.dumps(body), now=NOW)
    assert (info.status, info.error_type) == (400, "invalid_request_error")
    assert info.message.startswith("prompt is too long")
    failed = {"type": "response.failed", "response": {"error": body["error"]}}
    assert parse_error(200, failed, now=NOW).message.startswith("prompt is too long")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ({"code": "invalid_prompt", "message": "bad"}, 400),
        ({"type": "authentication_error", "message": "expired"}, 401),
        ({"code": "token_invalidated", "message": "gone"}, 401),
        ({"code": "rate_limit_exceeded", "message": "slow"}, 429),
        ({"code": "server_error", "message": "oops"}, 502),
        ({"status_code": 503, "message": "later"}, 503),
    ],
)
def test_it_gives_in_stream_errors_a_status(error, status):
    assert parse_error(200, {"type": "error", **error}, now=NOW).status == status


def test_it_reads_the_chatgpt_backends_detail_errors():
    info = parse_error(400, b'{"detail":"Unsupported parameter: max_output_tokens"}', now=NOW)
    assert info.status == 400 and "max_output_tokens" in info.message


def test_it_streams_parallel_tool_calls_as_separate_blocks():
    events = run(
        [created()]
        + call_events("fc_1", "call_1", "Read", ['{"path":', '"a"}'], index=0)
        + call_events("fc_2", "call_2", "Read", ['{"path":"b"}'], index=1)
        + [completed()]
    )
    content = assemble(events)["content"]
    assert content == [
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a"}},
        {"type": "tool_use", "id": "call_2", "name": "Read", "input": {"path": "b"}},
    ]
    body = {
        "messages": [
            {"role": "user", "content": "read both"},
            {"role": "assistant", "content": content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "B"},
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "A"},
                ],
            },
        ]
    }
    items = translate(body)["input"]
    assert_calls_paired(items)
    assert [(i["type"], i.get("call_id")) for i in items[1:]] == [
        ("function_call", "call_1"),
        ("function_call", "call_2"),
        ("function_call_output", "call_2"),
        ("function_call_output", "call_1"),
    ]


def test_it_releases_held_text_when_no_stop_sequence_matches():
    events = run(
        [created()] + message_events("m", ["Hello E", "N", "D-ish world"]) + [completed()],
        stops=("ENDING",),
    )
    message = assemble(events)
    assert message["content"] == [{"type": "text", "text": "Hello END-ish world"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None


def test_it_never_opens_a_blank_text_block():
    events = run([created()] + message_events("m", ["\n\n", "  "]) + [completed()])
    assert assemble(events)["content"] == []
    events = run([created()] + message_events("m", ["\n\n", "Hi"]) + [completed()])
    assert assemble(events)["content"] == [{"type": "text", "text": "\n\nHi"}]


def test_it_streams_raw_reasoning_text_and_ignores_unknown_events():
    events = run(
        [
            created(),
            {
                "type": "response.reasoning_text.delta",
                "item_id": "rs",
                "output_index": 0,
                "delta": "raw",
            },
            {"type": "response.something_new", "output_index": 0},
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": {"id": "rs", "type": "reasoning", "summary": [], "encrypted_content": "E2"},
            },
            completed(),
        ]
    )
    assert assemble(events)["content"] == [
        {"type": "thinking", "thinking": "raw", "signature": RESPONSES_SIGNATURE_TAG + "E2"}
    ]


def test_it_omits_summaries_when_the_client_hides_thinking():
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "thinking": {"type": "enabled", "budget_tokens": 20000, "display": "omitted"},
    }
    assert translate(body)["reasoning"] == {"effort": "high"}


def test_it_asks_codex_for_little_reasoning_when_thinking_is_disabled():
    body = {"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "disabled"}}
    assert translate(body, CODEX)["reasoning"] == {"effort": "low"}
    assert "reasoning" not in translate(body)  # an API key's model may not reason at all
    assert "reasoning" not in translate({"messages": body["messages"]}, CODEX)


def test_it_flushes_every_call_found_only_in_the_final_output():
    calls = [
        {"type": "function_call", "call_id": "call_a", "name": "Read", "arguments": '{"p":1}'},
        {"type": "function_call", "call_id": "call_b", "name": "Read", "arguments": '{"p":2}'},
    ]
    events = run([created(), completed(output=calls)])
    assert [block["input"] for block in assemble(events)["content"]] == [{"p": 1}, {"p": 2}]


def test_it_translates_claude_codes_tool_loop_exactly():
    """Golden: tool-loop-02 (Claude Code 2.1.197: system, a mid-conversation system message, a
    Bash call and its result, adaptive thinking) as the Codex backend receives it."""
    body = json.loads((FIXTURES[0].parent / "tool-loop-02.json").read_text())["body"]
    request = translate(body, CODEX)
    call_id = body["messages"][2]["content"][1]["id"]
    assert [(i["type"], i.get("role"), i.get("call_id")) for i in request["input"]] == [
        ("message", "developer", None),
        ("message", "user", None),
        ("message", "developer", None),
        ("message", "assistant", None),
        ("function_call", None, call_id),
        ("function_call_output", None, call_id),
    ]
    assert request["input"][0]["content"][0]["text"] == "\n\n".join(
        block["text"] for block in body["system"][1:]
    )
    assert request["input"][2]["content"][0]["text"].startswith("<system-reminder>")
    assert [tool["name"] for tool in request["tools"]] == [tool["name"] for tool in body["tools"]]
    assert {k: v for k, v in request.items() if k not in ("input", "tools")} == {
        "model": "gpt-5-codex",
        "instructions": "",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": True,
    }


def test_it_maps_the_web_search_server_tool_to_the_hosted_one():
    body = {
        "messages": [{"role": "user", "content": "news?"}],
        "tools": [
            {
                "type": "web_search_20250305",
                "name": "web_search",
                "max_uses": 8,
                "allowed_domains": ["example.com"],
                "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"},
            }
        ],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }
    request = translate(body, CODEX)
    assert request["tools"] == [
        {
            "type": "web_search",
            "filters": {"allowed_domains": ["example.com"]},
            "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"},
        }
    ]
    assert request["tool_choice"] == {"type": "web_search"}


def test_it_streams_a_hosted_web_search_as_server_tool_blocks():
    search = {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {
            "type": "search",
            "query": "proxy news",
            "sources": [{"type": "url", "url": "https://example.com/a", "title": "A"}],
        },
    }
    translator = StreamTranslator(model="m", names=tool_names({}), ids=call_ids({}), now=NOW)
    events = []
    for event in (
        [created()]
        + [
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**search, "status": "in_progress"},
            },
            {"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws_1"},
            {"type": "response.output_item.done", "output_index": 0, "item": search},
        ]
        + message_events("m", ["Found it."])
        + [completed()]
    ):
        events += translator.feed(event)
    assert [name for name, _ in events].count("content_block_start") == 3
    assert [e[1]["index"] for e in events if e[0] == "content_block_stop"] == [0, 1, 2]
    message = assemble(events)
    tool, result, text = message["content"]
    assert tool == {
        "type": "server_tool_use",
        "id": "srvtoolu_ws_1",
        "name": "web_search",
        "input": {"query": "proxy news"},
    }
    assert result["type"] == "web_search_tool_result" and result["tool_use_id"] == tool["id"]
    assert [r["url"] for r in result["content"]] == ["https://example.com/a"]
    assert text == {"type": "text", "text": "Found it."}
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1}
