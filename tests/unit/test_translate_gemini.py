"""Golden tests for the Anthropic Messages ⇄ Gemini generateContent translator."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claude_api.translate.common import ErrorInfo, Event, TranslatedStreamError
from claude_api.translate.gemini import (
    SKIP_SIGNATURE,
    StreamTranslator,
    build_count_tokens_request,
    build_request,
    gemini_tool_name,
    is_schema_rejection,
    parse_count_tokens_response,
    parse_error,
    tool_name_map,
    translate_response,
    uses_thinking_levels,
)
from claude_api.translate.gemini.schema import ALLOWED_KEYWORDS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code"
BILLING = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.1c0;"}
USAGE_ZERO_CACHE = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


def body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages, **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_use(id_: str, name: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": input_}


def tool_result(id_: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id_, "content": content, **extra}


def thinking(text: str, signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": signature}


# ---------------------------------------------------------------------------------------------
# A validator for what Gemini accepts (field names per proto message, roles, pairing)
# ---------------------------------------------------------------------------------------------

REQUEST_KEYS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
CONTENT_KEYS = {"role", "parts"}
PART_DATA_KEYS = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
PART_KEYS = PART_DATA_KEYS | {"thought", "thoughtSignature"}
GENERATION_CONFIG_KEYS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
}
THINKING_CONFIG_KEYS = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
TOOL_KEYS = {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}
FUNCTION_DECLARATION_KEYS = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
}
GEMINI_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")


def check_schema_subset(schema: Any, path: str) -> None:
    """A ``parameters`` schema may only use the OpenAPI subset, with Gemini's extra rules."""
    assert isinstance(schema, dict), path
    assert set(schema) <= ALLOWED_KEYWORDS, (path, set(schema) - ALLOWED_KEYWORDS)
    kind = schema.get("type")
    assert kind in (None, "string", "number", "integer", "boolean", "array", "object"), path
    if "anyOf" in schema:
        assert "type" not in schema, path
        for i, branch in enumerate(schema["anyOf"]):
            check_schema_subset(branch, f"{path}.anyOf[{i}]")
    else:
        assert kind is not None, f"{path}: untyped schema"
    if "properties" in schema:
        assert kind == "object" and schema["properties"], f"{path}: properties on {kind}"
        for name, sub in schema["properties"].items():
            check_schema_subset(sub, f"{path}.{name}")
    if "required" in schema:
        assert set(schema["required"]) <= set(schema.get("properties", {})), path
    if "items" in schema:
        assert kind == "array", path
        check_schema_subset(schema["items"], f"{path}[]")
    if kind == "array":
        assert "items" in schema, f"{path}: array without items"
    if "enum" in schema:
        assert kind == "string" and all(isinstance(v, str) for v in schema["enum"]), path
    if "format" in schema:
        assert kind == "string" and schema["format"] in ("enum", "date-time"), path


def validate_gemini_request(request: dict[str, Any], *, schema_mode: str = "json_schema") -> None:
    assert set(request) <= REQUEST_KEYS, set(request) - REQUEST_KEYS
    contents = request["contents"]
    assert contents, "contents must not be empty"
    previous_calls: list[str] | None = None
    for i, content in enumerate(contents):
        assert set(content) <= CONTENT_KEYS
        assert content["role"] == ("user" if i % 2 == 0 else "model"), f"contents[{i}] role"
        assert content["parts"], f"contents[{i}] has no parts"
        calls, responses = [], []
        for part in content["parts"]:
            assert set(part) <= PART_KEYS, set(part) - PART_KEYS
            assert len(set(part) & PART_DATA_KEYS) == 1, part
            if "text" in part:
                assert isinstance(part["text"], str)
            if "thoughtSignature" in part:
                assert isinstance(part["thoughtSignature"], str) and part["thoughtSignature"]
            if "inlineData" in part:
                assert set(part["inlineData"]) == {"mimeType", "data"}
            if "fileData" in part:
                assert set(part["fileData"]) <= {"mimeType", "fileUri"}
            if "functionCall" in part:
                assert content["role"] == "model"
                assert set(part["functionCall"]) <= {"id", "name", "args"}
                assert isinstance(part["functionCall"]["args"], dict)
                calls.append(part["functionCall"]["name"])
            if "functionResponse" in part:
                assert content["role"] == "user"
                assert set(part["functionResponse"]) <= {"id", "name", "response"}
                assert isinstance(part["functionResponse"]["response"], dict)
                responses.append(part["functionResponse"]["name"])
        if calls:
            first_call = next(p for p in content["parts"] if "functionCall" in p)
            assert "thoughtSignature" in first_call, "Gemini 3 needs a signature on the first call"
        if responses:
            assert previous_calls == responses, (previous_calls, responses)
        elif previous_calls:
            raise AssertionError(f"contents[{i}] does not answer {previous_calls}")
        previous_calls = calls if content["role"] == "model" else None
    assert contents[-1]["role"] == "user" or not previous_calls, "trailing unanswered call"

    if "systemInstruction" in request:
        system = request["systemInstruction"]
        assert set(system) <= CONTENT_KEYS and system["parts"]
        assert all(set(p) == {"text"} and p["text"] for p in system["parts"])

    for tool in request.get("tools", []):
        assert set(tool) <= TOOL_KEYS
        names = set()
        for declaration in tool.get("functionDeclarations", []):
            assert set(declaration) <= FUNCTION_DECLARATION_KEYS, set(declaration)
            assert GEMINI_NAME.fullmatch(declaration["name"])
            assert declaration["name"] not in names
            names.add(declaration["name"])
            assert not ("parameters" in declaration and "parametersJsonSchema" in declaration)
            if schema_mode == "parameters":
                assert "parametersJsonSchema" not in declaration
                if "parameters" in declaration:
                    assert declaration["parameters"]["type"] == "object"
                    check_schema_subset(declaration["parameters"], declaration["name"])
            else:
                assert "parameters" not in declaration
                assert "$schema" not in declaration["parametersJsonSchema"]

    if "toolConfig" in request:
        assert set(request["toolConfig"]) == {"functionCallingConfig"}
        config = request["toolConfig"]["functionCallingConfig"]
        assert set(config) <= {"mode", "allowedFunctionNames"}
        assert config["mode"] in ("AUTO", "ANY", "NONE", "VALIDATED")

    if "generationConfig" in request:
        config = request["generationConfig"]
        assert set(config) <= GENERATION_CONFIG_KEYS, set(config) - GENERATION_CONFIG_KEYS
        assert len(config.get("stopSequences", [])) <= 5
        if "thinkingConfig" in config:
            thinking_config = config["thinkingConfig"]
            assert set(thinking_config) <= THINKING_CONFIG_KEYS
            assert not ("thinkingBudget" in thinking_config and "thinkingLevel" in thinking_config)
    json.dumps(request)  # plain JSON all the way down


# ---------------------------------------------------------------------------------------------
# A checker for the Anthropic SSE grammar (protocol.md §2)
# ---------------------------------------------------------------------------------------------

BLOCK_DELTAS = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


def assert_anthropic_grammar(events: list[Event]) -> None:
    names = [name for name, _ in events]
    for name, data in events:
        assert data["type"] == name
        json.dumps(data)
    assert names[0] == "message_start"
    assert names[-1] == "message_stop" and names.count("message_stop") == 1
    assert names.count("message_delta") == 1 and names[-2] == "message_delta"

    start = events[0][1]["message"]
    assert (
        start["id"].startswith("msg_") and start["content"] == [] and start["stop_reason"] is None
    )
    assert set(start["usage"]) >= {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
    }

    next_index, open_index, open_type = 0, None, None
    signed = False
    partial_json: list[str] = []
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None, "blocks never interleave"
            assert data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
            block = data["content_block"]
            open_type, signed, partial_json = block["type"], False, []
            assert open_type in BLOCK_DELTAS
            if open_type == "text":
                assert block == {"type": "text", "text": ""}
            elif open_type == "thinking":
                assert block == {"type": "thinking", "thinking": "", "signature": ""}
            else:
                assert block["input"] == {} and re.fullmatch(r"[a-zA-Z0-9_-]+", block["id"])
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            assert delta["type"] in BLOCK_DELTAS[open_type]
            assert not signed, "signature_delta comes last, just before the stop"
            if delta["type"] == "text_delta":
                assert delta["text"]
            elif delta["type"] == "signature_delta":
                signed = True
            elif delta["type"] == "input_json_delta":
                partial_json.append(delta["partial_json"])
        elif name == "content_block_stop":
            assert data["index"] == open_index
            if open_type == "tool_use":
                assert isinstance(json.loads("".join(partial_json)), dict)
            open_index = open_type = None
        else:
            raise AssertionError(f"unexpected {name} inside the message")
    assert open_index is None

    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] in (
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "refusal",
    )
    assert set(delta["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }


def run_stream(chunks: list[dict[str, Any]], **kwargs: Any) -> list[Event]:
    translator = StreamTranslator(model=kwargs.pop("model", "claude-sonnet-4-5"), **kwargs)
    events: list[Event] = []
    for chunk in chunks:
        events.extend(translator.feed(chunk))
    events.extend(translator.finish())
    return events


def accumulate(events: list[Event]) -> dict[str, Any]:
    """What the anthropic SDK builds from a stream: the final message."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = json.loads(json.dumps(data["message"]))
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message


def chunk(
    *parts: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    data: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
    if usage:
        data["usageMetadata"] = usage
    return data


# ---------------------------------------------------------------------------------------------
# Request translation
# ---------------------------------------------------------------------------------------------


def test_it_translates_a_plain_text_request():
    request = build_request(
        body(
            [user("Hello")],
            metadata={"user_id": "u"},
            stream=True,
            service_tier="auto",
            context_management={"edits": []},
            cache_control={"type": "ephemeral"},
        )
    )
    assert request == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "generationConfig": {"maxOutputTokens": 1024},
    }


def test_it_maps_the_system_prompt_and_drops_the_billing_header():
    as_string = build_request(body([user("hi")], system="Be brief."))
    assert as_string["systemInstruction"] == {"parts": [{"text": "Be brief."}]}

    as_blocks = build_request(
        body(
            [user("hi")],
            system=[
                BILLING,
                {
                    "type": "text",
                    "text": "You are Claude Code.",
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "Be brief."},
            ],
        )
    )
    assert as_blocks["systemInstruction"] == {
        "parts": [{"text": "You are Claude Code."}, {"text": "Be brief."}]
    }

    only_billing = build_request(body([user("hi")], system=[BILLING]))
    assert "systemInstruction" not in only_billing


def test_it_turns_a_mid_conversation_system_message_into_user_text():
    request = build_request(
        body(
            [
                user("hi"),
                assistant("Hello!"),
                {"role": "system", "content": "Be terse."},
                user("why?"),
            ]
        )
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {
            "role": "user",
            "parts": [
                {"text": "<system-reminder>\nBe terse.\n</system-reminder>"},
                {"text": "why?"},
            ],
        },
    ]


def test_it_merges_consecutive_same_role_messages_and_skips_empty_ones():
    request = build_request(
        body(
            [
                user("one"),
                user([{"type": "text", "text": ""}, {"type": "text", "text": "two"}]),
                assistant("three"),
                assistant([thinking("foreign", "EqQBCkYIBxgCKkB+/=")]),  # nothing left to send
                assistant([{"type": "text", "text": "four"}]),
                user("five"),
            ]
        )
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
        {"role": "user", "parts": [{"text": "five"}]},
    ]


def test_it_folds_a_leading_assistant_turn_into_the_first_user_turn():
    request = build_request(
        body(
            [
                assistant(
                    [
                        {"type": "text", "text": "Earlier reply."},
                        tool_use("toolu_1", "Bash", {"command": "ls"}),
                    ]
                ),
                user([tool_result("toolu_1", "a.txt"), {"type": "text", "text": "Thanks"}]),
            ]
        )
    )
    assert request["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Earlier reply."},
                {"text": '[tool call Bash: {"command":"ls"}]'},
                {"text": "[tool result Bash]: a.txt"},
                {"text": "Thanks"},
            ],
        }
    ]
    validate_gemini_request(request)


def test_it_sends_images_and_documents():
    request = build_request(
        body(
            [
                user(
                    [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0K",
                            },
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "gs://bucket/dog.png"}},
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0x",
                            },
                            "title": "Spec",
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "Plain doc",
                            },
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "content",
                                "content": [{"type": "text", "text": "Chunk 1"}],
                            },
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "url",
                                "url": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                            },
                        },
                        {"type": "text", "text": "What are these?"},
                    ]
                )
            ]
        )
    )
    assert request["contents"] == [
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                {"text": "[image: https://example.com/cat.jpg]"},
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/dog.png"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
                {"text": "Plain doc"},
                {"text": "Chunk 1"},
                {
                    "fileData": {
                        "mimeType": "application/pdf",
                        "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                    }
                },
                {"text": "What are these?"},
            ],
        }
    ]


NASTY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:nasty",
    "type": "object",
    "additionalProperties": False,
    "$defs": {
        "Point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
            "additionalProperties": False,
        },
        "Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        },
    },
    "properties": {
        "url": {"type": "string", "format": "uri", "description": "Where"},
        "when": {"type": "string", "format": "date-time"},
        "mode": {"const": "fast"},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "maybe": {"type": ["string", "null"], "maxLength": 10},
        "either": {"type": ["string", "integer"], "minimum": 1},
        "origin": {"$ref": "#/$defs/Point", "description": "Start point"},
        "tree": {"$ref": "#/$defs/Node"},
        "meta": {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {}},
        "empty": {"type": "object", "properties": {}},
        "count": {"type": "integer", "exclusiveMinimum": 0, "maximum": 100, "examples": [5]},
        "tags": {"type": "array"},
        "status": {
            "anyOf": [
                {"type": "string", "enum": ["open", "closed"]},
                {"type": "string", "const": "deleted"},
            ]
        },
        "shape": {"oneOf": [{"$ref": "#/$defs/Point"}, {"type": "string"}]},
        "opt": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": False},
        "both": {
            "allOf": [
                {"$ref": "#/$defs/Point"},
                {"properties": {"z": {"type": "number"}}, "required": ["z"]},
            ]
        },
        "cond": {
            "type": "string",
            "if": {"minLength": 1},
            "then": {},
            "else": {},
            "not": {"const": "x"},
        },
        "blob": {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"},
        "map": {
            "type": "object",
            "patternProperties": {"^x": {"type": "string"}},
            "unevaluatedProperties": False,
        },
    },
    "required": ["url", "ghost"],
    "dependentRequired": {"url": ["when"]},
}


def test_it_passes_real_json_schema_in_json_schema_mode():
    request = build_request(
        body(
            [user("hi")],
            tools=[{"name": "nasty", "description": "Nasty tool", "input_schema": NASTY_SCHEMA}],
        )
    )
    declaration = request["tools"][0]["functionDeclarations"][0]
    expected = {key: value for key, value in NASTY_SCHEMA.items() if key != "$schema"}
    assert declaration == {
        "name": "nasty",
        "description": "Nasty tool",
        "parametersJsonSchema": expected,
    }
    validate_gemini_request(request)


def test_it_sanitises_nasty_schemas_in_parameters_mode():
    request = build_request(
        body([user("hi")], tools=[{"name": "nasty", "input_schema": NASTY_SCHEMA}]),
        schema_mode="parameters",
    )
    point = {
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x", "y"],
    }
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "nasty",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string", "description": "Where"},
                            "when": {"type": "string", "format": "date-time"},
                            "mode": {"type": "string", "enum": ["fast"]},
                            "level": {"type": "string", "enum": ["1", "2", "3"]},
                            "maybe": {"type": "string", "nullable": True, "maxLength": 10},
                            "either": {
                                "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}]
                            },
                            "origin": {**point, "description": "Start point"},
                            "tree": {
                                "type": "object",
                                "properties": {
                                    "label": {"type": "string"},
                                    # the recursion is cut at its second visit
                                    "children": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                            "meta": {"type": "object"},
                            "empty": {"type": "object"},
                            "count": {"type": "integer", "maximum": 100},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "status": {"type": "string", "enum": ["open", "closed", "deleted"]},
                            "shape": {"anyOf": [point, {"type": "string"}]},
                            "opt": {"type": "boolean", "nullable": True},
                            "both": {
                                "type": "object",
                                "properties": {
                                    "x": {"type": "number"},
                                    "y": {"type": "number"},
                                    "z": {"type": "number"},
                                },
                                "required": ["x", "y", "z"],
                            },
                            "cond": {"type": "string"},
                            "blob": {"type": "string"},
                            "map": {"type": "object"},
                        },
                        "required": ["url"],
                    },
                }
            ]
        }
    ]
    validate_gemini_request(request, schema_mode="parameters")


def test_it_handles_tools_without_parameters_and_drops_server_tools():
    tools = [
        {"name": "now", "description": "Current time"},
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "bash_20250124", "name": "bash"},
        {
            "type": "custom",
            "name": "echo",
            "input_schema": {"type": "object", "properties": {"s": {"type": "string"}}},
        },
    ]
    json_mode = build_request(body([user("hi")], tools=tools))
    assert json_mode["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "now",
                    "description": "Current time",
                    "parametersJsonSchema": {"type": "object", "properties": {}},
                },
                {"name": "noop", "parametersJsonSchema": {"type": "object", "properties": {}}},
                {
                    "name": "echo",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {"s": {"type": "string"}},
                    },
                },
            ]
        }
    ]
    parameters_mode = build_request(body([user("hi")], tools=tools), schema_mode="parameters")
    assert parameters_mode["tools"] == [
        {
            "functionDeclarations": [
                {"name": "now", "description": "Current time"},
                {"name": "noop"},
                {
                    "name": "echo",
                    "parameters": {"type": "object", "properties": {"s": {"type": "string"}}},
                },
            ]
        }
    ]
    only_server = build_request(body([user("hi")], tools=[tools[2]], tool_choice={"type": "any"}))
    assert "tools" not in only_server and "toolConfig" not in only_server


def test_it_makes_tool_names_valid_for_gemini_and_maps_them_back():
    assert gemini_tool_name("mcp__github__create_issue") == "mcp__github__create_issue"
    assert gemini_tool_name("my tool/v2") == "my_tool_v2"
    assert gemini_tool_name("9lives") == "_9lives"
    long_name = "mcp__" + "x" * 200
    assert len(gemini_tool_name(long_name)) == 128
    assert gemini_tool_name(long_name) == gemini_tool_name(long_name)  # deterministic

    tools = [
        {"name": "my tool", "input_schema": {"type": "object", "properties": {}}},
        {"name": "my/tool", "input_schema": {"type": "object", "properties": {}}},  # collides
        {"name": "Read", "input_schema": {"type": "object", "properties": {}}},
    ]
    request_body = body(
        [
            user("go"),
            assistant([tool_use("toolu_1", "my tool", {})]),
            user([tool_result("toolu_1", "ok")]),
        ],
        tools=tools,
        tool_choice={"type": "tool", "name": "my/tool"},
    )
    request = build_request(request_body)
    declared = [d["name"] for d in request["tools"][0]["functionDeclarations"]]
    assert declared[0] == "my_tool" and declared[1].startswith("my_tool_") and declared[2] == "Read"
    assert request["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [declared[1]]}
    }
    assert request["contents"][1]["parts"][0]["functionCall"]["name"] == "my_tool"
    assert request["contents"][2]["parts"][0]["functionResponse"]["name"] == "my_tool"

    names = tool_name_map(request_body)
    assert names == {"my_tool": "my tool", declared[1]: "my/tool"}
    response = translate_response(
        chunk({"functionCall": {"id": "c1", "name": declared[1], "args": {}}}, finish="STOP"),
        model="m",
        tool_names=names,
    )
    assert response["content"][0]["name"] == "my/tool"
    events = run_stream(
        [chunk({"functionCall": {"name": "my_tool", "args": {}}}, finish="STOP")], tool_names=names
    )
    assert events[1][1]["content_block"]["name"] == "my tool"


def test_it_translates_a_tool_round_trip_with_an_image_result():
    request = build_request(
        body(
            [
                user("Take a screenshot"),
                assistant(
                    [
                        {"type": "text", "text": "Taking it."},
                        tool_use("toolu_01", "screenshot", {"scale": 1}),
                    ]
                ),
                user(
                    [
                        tool_result(
                            "toolu_01",
                            [
                                {"type": "text", "text": "Captured."},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/jpeg",
                                        "data": "/9j/",
                                    },
                                },
                                {"type": "text", "text": "1920x1080"},
                            ],
                        )
                    ]
                ),
                assistant("It shows a desktop."),
                user("Thanks"),
            ],
            tools=[
                {
                    "name": "screenshot",
                    "input_schema": {"type": "object", "properties": {"scale": {"type": "number"}}},
                }
            ],
        )
    )
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "Take a screenshot"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Taking it."},
                {
                    "functionCall": {"name": "screenshot", "args": {"scale": 1}},
                    "thoughtSignature": SKIP_SIGNATURE,
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "screenshot",
                        "response": {"output": "Captured.\n\n1920x1080"},
                    }
                },
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
            ],
        },
        {"role": "model", "parts": [{"text": "It shows a desktop."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    validate_gemini_request(request)


def test_it_groups_parallel_tool_results_in_call_order():
    request = build_request(
        body(
            [
                user("Read both"),
                assistant(
                    [
                        tool_use("toolu_a", "Read", {"file_path": "/a"}),
                        tool_use("toolu_b", "Read", {"file_path": "/b"}),
                        tool_use("toolu_c", "Bash", {"command": "ls"}),
                    ]
                ),
                # results arrive out of order, split over two messages, one missing, one stray
                user(
                    [tool_result("toolu_b", "B", is_error=False), tool_result("toolu_zzz", "stale")]
                ),
                user(
                    [
                        tool_result("toolu_a", "no such file", is_error=True),
                        {"type": "text", "text": "go on"},
                    ]
                ),
            ]
        )
    )
    assert request["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "Read", "args": {"file_path": "/a"}},
                    "thoughtSignature": SKIP_SIGNATURE,
                },
                {"functionCall": {"name": "Read", "args": {"file_path": "/b"}}},
                {"functionCall": {"name": "Bash", "args": {"command": "ls"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "Read", "response": {"error": "no such file"}}},
                {"functionResponse": {"name": "Read", "response": {"output": "B"}}},
                {
                    "functionResponse": {
                        "name": "Bash",
                        "response": {"error": "No result was provided for this tool call."},
                    }
                },
                {"text": "[tool result toolu_zzz]: stale"},
                {"text": "go on"},
            ],
        },
    ]
    validate_gemini_request(request)


def test_it_drops_a_trailing_assistant_turn_with_an_unanswered_call():
    request = build_request(
        body(
            [
                user("hi"),
                assistant(
                    [{"type": "text", "text": "Let me look."}, tool_use("toolu_1", "Bash", {})]
                ),
            ]
        )
    )
    assert request["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_it_puts_gemini_signatures_back_on_the_parts_they_came_from():
    request = build_request(
        body(
            [
                user("Weather in Paris and London?"),
                assistant(
                    [
                        thinking(
                            "I should call the tool twice.", "gemini."
                        ),  # tag only: no signature
                        thinking("", "gemini.SIG_CALL"),
                        tool_use("toolu_p", "weather", {"city": "Paris"}),
                        tool_use("toolu_l", "weather", {"city": "London"}),
                    ]
                ),
                user([tool_result("toolu_p", "18C"), tool_result("toolu_l", "15C")]),
                assistant(
                    [
                        thinking("Summarise.", "gemini.SIG_TEXT"),
                        {"type": "text", "text": "Paris 18C, London 15C."},
                    ]
                ),
                user("And Rome?"),
                assistant(
                    [
                        thinking("Anthropic thought", "EqQBCkYIBxgCKkB+/="),  # foreign: dropped
                        {"type": "redacted_thinking", "data": "xyz"},
                        thinking("OpenAI thought", "openai.abc"),
                        tool_use("toolu_r", "weather", {"city": "Rome"}),
                    ]
                ),
                user([tool_result("toolu_r", "25C")]),
                assistant(
                    [{"type": "text", "text": "Rome 25C."}, thinking("", "gemini.SIG_AFTER")]
                ),
                user("Thanks"),
            ]
        )
    )
    assert request["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "SIG_CALL",
                },
                {"functionCall": {"name": "weather", "args": {"city": "London"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"output": "18C"}}},
                {"functionResponse": {"name": "weather", "response": {"output": "15C"}}},
            ],
        },
        {
            "role": "model",
            "parts": [{"text": "Paris 18C, London 15C.", "thoughtSignature": "SIG_TEXT"}],
        },
        {"role": "user", "parts": [{"text": "And Rome?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "weather", "args": {"city": "Rome"}},
                    "thoughtSignature": SKIP_SIGNATURE,
                }
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "weather", "response": {"output": "25C"}}}],
        },
        {"role": "model", "parts": [{"text": "Rome 25C.", "thoughtSignature": "SIG_AFTER"}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    validate_gemini_request(request)


def test_it_keeps_a_signature_when_thinking_and_tool_use_arrive_as_separate_messages():
    # Some clients store each content block as its own assistant message.
    request = build_request(
        body(
            [
                user("ls"),
                assistant([thinking("", "gemini.SIG")]),
                assistant([tool_use("toolu_1", "Bash", {"command": "ls"})]),
                user([tool_result("toolu_1", "a.txt")]),
            ]
        )
    )
    assert request["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "SIG"}
        ],
    }


def test_it_keeps_turns_alternating_when_an_assistant_message_translates_to_nothing():
    request = build_request(
        body([user("a"), assistant([thinking("", "gemini.LONELY")]), user("b")])
    )
    assert request["contents"] == [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


def test_it_answers_calls_first_even_after_a_system_message():
    request = build_request(
        body(
            [
                user("go"),
                assistant([tool_use("toolu_1", "Bash", {})]),
                {"role": "system", "content": "Reminder"},
                user([tool_result("toolu_1", "done")]),
            ]
        )
    )
    assert request["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "Bash", "response": {"output": "done"}}},
            {"text": "<system-reminder>\nReminder\n</system-reminder>"},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"mode": "AUTO"}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"mode": "ANY"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
        ({"type": "none"}, {"mode": "NONE"}),
    ],
)
def test_it_maps_tool_choice(choice: dict[str, Any], expected: dict[str, Any]):
    tools = [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    request = build_request(body([user("hi")], tools=tools, tool_choice=choice))
    assert request["toolConfig"] == {"functionCallingConfig": expected}


def test_it_maps_sampling_and_stop_sequences():
    request = build_request(
        body(
            [user("hi")],
            max_tokens=2048,
            stop_sequences=["a", "b", "", "c", "d", "e", "f"],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
        )
    )
    assert request["generationConfig"] == {
        "maxOutputTokens": 2048,
        "stopSequences": ["a", "b", "c", "d", "e"],
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 4096}},
            {"thinkingBudget": 4096, "includeThoughts": True},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}},
            {"thinkingLevel": "LOW", "includeThoughts": True},
        ),
        (
            # Gemini 3 Pro takes LOW and HIGH only.
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}},
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        ({"thinking": {"type": "adaptive"}}, {"thinkingBudget": -1, "includeThoughts": True}),
        ({"thinking": {"type": "disabled"}}, None),
        ({"output_config": {"effort": "high"}}, None),
        ({}, None),
    ],
)
def test_it_maps_thinking_for_gemini_3(extra: dict[str, Any], expected: dict[str, Any] | None):
    request = build_request(body([user("hi")], **extra), model="gemini-3-pro-preview")
    assert request["generationConfig"].get("thinkingConfig") == expected


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("low", 1024), ("medium", 8192), ("high", -1), ("xhigh", -1), ("max", -1)],
)
def test_it_maps_adaptive_effort_to_a_budget_before_gemini_3(effort: str, budget: int):
    # Gemini 2.5 refuses thinkingLevel: "Thinking level is not supported for this model."
    extra = {"thinking": {"type": "adaptive"}, "output_config": {"effort": effort}}
    request = build_request(body([user("hi")], **extra), model="gemini-2.5-pro")
    assert request["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": budget,
        "includeThoughts": True,
    }


@pytest.mark.parametrize(
    ("model", "levels"),
    [
        ("gemini-3-pro-preview", True),
        ("gemini-3.1-flash", True),
        ("models/gemini-3-flash-preview", True),
        ("gemini-10-ultra", True),
        ("gemini-2.5-pro", False),
        ("gemini-2.0-flash", False),
        ("gemini-exp-1206", False),
        ("", False),
        ("my-alias", False),
    ],
)
def test_it_knows_which_models_think_by_level(model: str, levels: bool):
    assert uses_thinking_levels(model) is levels


def test_it_builds_a_count_tokens_request_with_system_and_tools():
    request = build_count_tokens_request(
        {
            "model": "claude-opus-4-8",
            "system": [BILLING, {"type": "text", "text": "Sys"}],
            "messages": [user("foo")],
            "tools": [
                {
                    "name": "t",
                    "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                }
            ],
        },
        upstream_model="gemini-2.5-pro",
    )
    assert request == {
        "generateContentRequest": {
            "model": "models/gemini-2.5-pro",
            "contents": [{"role": "user", "parts": [{"text": "foo"}]}],
            "systemInstruction": {"parts": [{"text": "Sys"}]},
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "t",
                            "parametersJsonSchema": {
                                "type": "object",
                                "properties": {"a": {"type": "string"}},
                            },
                        }
                    ]
                }
            ],
        }
    }
    assert parse_count_tokens_response({"totalTokens": 42, "promptTokensDetails": []}) == {
        "input_tokens": 42
    }
    assert parse_count_tokens_response({}) == {"input_tokens": 0}


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
@pytest.mark.parametrize("schema_mode", ["json_schema", "parameters"])
def test_it_translates_every_claude_code_fixture_into_a_valid_gemini_request(
    path: Path, schema_mode: str
):
    capture = json.loads(path.read_text())
    request_body = capture["body"]
    if capture["path"].startswith("/v1/messages/count_tokens"):
        wrapped = build_count_tokens_request(
            request_body, upstream_model="gemini-2.5-flash", schema_mode=schema_mode
        )
        inner = wrapped["generateContentRequest"]
        assert inner.pop("model") == "models/gemini-2.5-flash"
        validate_gemini_request(inner, schema_mode=schema_mode)
    else:
        request = build_request(request_body, schema_mode=schema_mode)
        validate_gemini_request(request, schema_mode=schema_mode)
        assert len(request["tools"][0]["functionDeclarations"]) == len(request_body["tools"])
        assert "systemInstruction" in request


def test_it_never_mutates_the_client_body():
    capture = json.loads((FIXTURES / "tool-loop-02.json").read_text())["body"]
    capture["tools"].append({"name": "nasty", "input_schema": NASTY_SCHEMA})
    capture["messages"][2]["content"].insert(0, thinking("", "gemini.SIG"))
    snapshot = json.dumps(capture, sort_keys=True)
    for mode in ("json_schema", "parameters"):
        build_request(capture, schema_mode=mode)
        build_count_tokens_request(capture, upstream_model="gemini-2.5-flash", schema_mode=mode)
    tool_name_map(capture)
    assert json.dumps(capture, sort_keys=True) == snapshot


# ---------------------------------------------------------------------------------------------
# Non-streaming responses
# ---------------------------------------------------------------------------------------------


def test_it_translates_a_response_with_thoughts_text_and_a_signed_call():
    data = chunk(
        {"text": "Thinking about ", "thought": True},
        {"text": "files.", "thought": True},
        {"text": "I'll list them."},
        {
            "functionCall": {"id": "call:1", "name": "Bash", "args": {"command": "ls"}},
            "thoughtSignature": "SIG1",
        },
        {"functionCall": {"id": "call:2", "name": "Bash", "args": {"command": "pwd"}}},
        finish="STOP",
        usage={
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "toolUsePromptTokenCount": 5,
            "candidatesTokenCount": 40,
            "thoughtsTokenCount": 100,
            "totalTokenCount": 1145,
        },
    )
    message = translate_response(data, model="claude-sonnet-4-5")
    assert message["id"].startswith("msg_")
    assert {**message, "id": "msg_x"} == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Thinking about files.", "signature": "gemini."},
            {"type": "text", "text": "I'll list them."},
            {"type": "thinking", "thinking": "", "signature": "gemini.SIG1"},
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "call_2", "name": "Bash", "input": {"command": "pwd"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 405,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 600,
            "cache_creation": USAGE_ZERO_CACHE,
            "output_tokens": 140,
        },
    }


def test_it_synthesises_tool_use_ids_and_empty_inputs():
    message = translate_response(chunk({"functionCall": {"name": "now"}}, finish="STOP"), model="m")
    [block] = message["content"]
    assert re.fullmatch(r"toolu_[a-zA-Z0-9]{24}", block["id"]) and block["input"] == {}


def test_it_places_text_signatures_on_thinking_blocks():
    with_thoughts = translate_response(
        chunk(
            {"text": "Hmm.", "thought": True},
            {"text": "Answer.", "thoughtSignature": "SIG"},
            finish="STOP",
        ),
        model="m",
    )
    assert with_thoughts["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": "gemini.SIG"},
        {"type": "text", "text": "Answer."},
    ]
    before_a_call = translate_response(
        chunk(
            {"text": "Ans"},
            {"text": "wer.", "thoughtSignature": "SIG"},
            {"text": " More."},
            {"functionCall": {"id": "c1", "name": "f", "args": {}}},
            finish="STOP",
        ),
        model="m",
    )
    assert before_a_call["content"] == [
        {"type": "text", "text": "Answer. More."},
        {"type": "thinking", "thinking": "", "signature": "gemini.SIG"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
    ]


@pytest.mark.parametrize(
    ("finish", "stops", "expected"),
    [
        ("STOP", None, ("end_turn", None)),
        ("STOP", ["END"], ("stop_sequence", "END")),
        ("STOP", ["END", "STOP"], ("end_turn", None)),
        ("MAX_TOKENS", ["END"], ("max_tokens", None)),
        ("FINISH_REASON_UNSPECIFIED", None, ("end_turn", None)),
    ],
)
def test_it_maps_finish_reasons(
    finish: str, stops: list[str] | None, expected: tuple[str, str | None]
):
    message = translate_response(
        chunk({"text": "Hi"}, finish=finish), model="m", stop_sequences=stops
    )
    assert (message["stop_reason"], message["stop_sequence"]) == expected
    assert message["content"] == [{"type": "text", "text": "Hi"}]


def test_it_explains_an_abnormal_finish_without_output():
    message = translate_response(chunk(finish="MALFORMED_FUNCTION_CALL"), model="m")
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [
        {
            "type": "text",
            "text": "Gemini ended the response without output (finishReason: MALFORMED_FUNCTION_CALL).",
        }
    ]


def test_it_accepts_an_empty_but_finished_response():
    message = translate_response(chunk(finish="STOP"), model="m")
    assert message["content"] == [] and message["stop_reason"] == "end_turn"


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "IMAGE_SAFETY"])
def test_it_reports_a_blocked_response_as_a_refusal(reason: str):
    message = translate_response(chunk({"text": "Partial"}, finish=reason), model="m")
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [
        {"type": "text", "text": "Partial"},
        {
            "type": "text",
            "text": f"The response was blocked by Gemini's safety filters (reason: {reason}).",
        },
    ]


def test_it_reports_a_blocked_prompt_as_a_refusal():
    data = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 7},
    }
    message = translate_response(data, model="m")
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [
        {
            "type": "text",
            "text": "The prompt was blocked by Gemini's safety filters (reason: PROHIBITED_CONTENT).",
        }
    ]
    assert message["usage"]["input_tokens"] == 7 and message["usage"]["output_tokens"] == 0


def test_it_raises_on_an_empty_or_error_response():
    with pytest.raises(TranslatedStreamError) as empty:
        translate_response({"candidates": [], "usageMetadata": {"promptTokenCount": 3}}, model="m")
    assert empty.value.info == ErrorInfo(502, "api_error", "Gemini returned an empty response")
    with pytest.raises(TranslatedStreamError) as error:
        translate_response(
            {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}, model="m"
        )
    assert error.value.info == ErrorInfo(529, "overloaded_error", "overloaded")


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


def test_it_streams_thoughts_text_signatures_and_a_tool_call():
    chunks = [
        chunk({"text": "Let me think", "thought": True}, usage={"promptTokenCount": 100}),
        chunk({"text": " harder.", "thought": True}),
        chunk({"text": "", "thoughtSignature": "SIG1"}),  # signature-only part
        chunk({"text": "Hello "}),
        chunk({"text": "world."}),
        chunk(
            {
                "functionCall": {"id": "call_7", "name": "Bash", "args": {"command": "ls -la"}},
                "thoughtSignature": "SIG2",
            },
            finish="STOP",
            usage={
                "promptTokenCount": 120,
                "cachedContentTokenCount": 20,
                "candidatesTokenCount": 30,
                "thoughtsTokenCount": 50,
                "totalTokenCount": 200,
            },
        ),
    ]
    events = run_stream(chunks, input_tokens_estimate=90)
    assert_anthropic_grammar(events)
    message_id = events[0][1]["message"]["id"]
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude-sonnet-4-5",
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 100,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "cache_creation": USAGE_ZERO_CACHE,
                    },
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me think"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": " harder."},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "gemini.SIG1"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Hello "},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "world."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "signature_delta", "signature": "gemini.SIG2"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 3,
                "content_block": {"type": "tool_use", "id": "call_7", "name": "Bash", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 3,
                "delta": {"type": "input_json_delta", "partial_json": '{"command":"ls -la"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 100,
                    "output_tokens": 80,
                    "cache_read_input_tokens": 20,
                    "cache_creation_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_it_round_trips_streamed_signatures_into_the_next_request():
    events = run_stream(
        [
            chunk({"text": "Plan.", "thought": True}),
            chunk({"text": "", "thoughtSignature": "SIG1"}),
            chunk({"text": "Running it."}),
            chunk(
                {
                    "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                    "thoughtSignature": "SIG2",
                },
                finish="STOP",
            ),
        ]
    )
    message = accumulate(events)
    tool_id = message["content"][-1]["id"]
    request = build_request(
        body(
            [
                user("ls please"),
                assistant(message["content"]),
                user([tool_result(tool_id, "a.txt")]),
            ]
        )
    )
    assert request["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Running it.", "thoughtSignature": "SIG1"},
            {
                "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                "thoughtSignature": "SIG2",
            },
        ],
    }
    validate_gemini_request(request)


def test_it_emits_a_text_signature_after_the_text_block_when_a_call_follows():
    events = run_stream(
        [
            chunk({"text": "Hi"}),
            chunk({"text": " there", "thoughtSignature": "S"}),
            chunk({"functionCall": {"id": "c1", "name": "f", "args": {}}}, finish="STOP"),
        ]
    )
    assert_anthropic_grammar(events)
    assert accumulate(events)["content"] == [
        {"type": "text", "text": "Hi there"},
        {"type": "thinking", "thinking": "", "signature": "gemini.S"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
    ]


def test_it_keeps_an_early_signature_for_the_next_thinking_block():
    events = run_stream(
        [
            chunk({"text": "", "thoughtSignature": "EARLY"}),
            chunk({"text": "Hm", "thought": True}),
            chunk({"text": "Ok"}, finish="STOP"),
        ]
    )
    assert_anthropic_grammar(events)
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "Hm", "signature": "gemini.EARLY"},
        {"type": "text", "text": "Ok"},
    ]


def test_it_tags_unsigned_thinking_blocks_and_skips_empty_thoughts():
    events = run_stream(
        [
            chunk({"text": "", "thought": True}),
            chunk({"text": "Hm", "thought": True}),
            chunk({"text": "Ok"}, finish="STOP"),
        ]
    )
    assert_anthropic_grammar(events)
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "Hm", "signature": "gemini."},
        {"type": "text", "text": "Ok"},
    ]


@pytest.mark.parametrize(
    "parts",
    [
        [
            {"text": "A", "thought": True},
            {"text": "B", "thought": True},
            {"text": "C"},
            {"text": "D"},
        ],
        [
            {"text": "Plan", "thought": True, "thoughtSignature": "S0"},
            {"text": "Calling."},
            {
                "functionCall": {"id": "c1", "name": "f", "args": {"x": [1, {"y": None}]}},
                "thoughtSignature": "S1",
            },
            {"functionCall": {"id": "c2", "name": "g", "args": {}}},
        ],
    ],
)
def test_it_gives_the_same_content_streamed_or_not(parts: list[dict[str, Any]]):
    whole = translate_response(chunk(*parts, finish="STOP"), model="m")
    streamed = accumulate(run_stream([chunk(part) for part in parts] + [chunk(finish="STOP")]))
    assert streamed["content"] == whole["content"]
    assert streamed["stop_reason"] == whole["stop_reason"]


def test_it_keeps_a_bare_signature_part_before_a_later_thought():
    message = translate_response(
        chunk(
            {"text": "Hi"},
            {"thoughtSignature": "BARE"},
            {"text": "More thought", "thought": True},
            {"text": "Bye"},
            finish="STOP",
        ),
        model="m",
    )
    assert message["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "thinking", "thinking": "", "signature": "gemini.BARE"},
        {"type": "thinking", "thinking": "More thought", "signature": "gemini."},
        {"type": "text", "text": "Bye"},
    ]


def test_it_streams_parallel_calls_as_separate_blocks():
    events = run_stream(
        [
            chunk(
                {
                    "functionCall": {"name": "Read", "args": {"file_path": "/a"}},
                    "thoughtSignature": "S",
                },
                {"functionCall": {"name": "Read", "args": {"file_path": "/b"}}},
                {"functionCall": {"name": "Glob"}},
                finish="STOP",
            )
        ]
    )
    assert_anthropic_grammar(events)
    content = accumulate(events)["content"]
    assert [block["type"] for block in content] == ["thinking", "tool_use", "tool_use", "tool_use"]
    assert [block.get("input") for block in content[1:]] == [
        {"file_path": "/a"},
        {"file_path": "/b"},
        {},
    ]
    assert len({block["id"] for block in content[1:]}) == 3
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_it_streams_a_safety_block_as_a_refusal():
    events = run_stream([chunk({"text": "Sure, here"}), chunk(finish="SAFETY")])
    assert_anthropic_grammar(events)
    message = accumulate(events)
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [
        {"type": "text", "text": "Sure, here"},
        {
            "type": "text",
            "text": "The response was blocked by Gemini's safety filters (reason: SAFETY).",
        },
    ]


def test_it_streams_a_blocked_prompt_as_a_refusal():
    events = run_stream(
        [{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 12}}]
    )
    assert_anthropic_grammar(events)
    message = accumulate(events)
    assert message["stop_reason"] == "refusal"
    assert message["content"] == [
        {
            "type": "text",
            "text": "The prompt was blocked by Gemini's safety filters (reason: SAFETY).",
        }
    ]
    assert message["usage"]["input_tokens"] == 12


def test_it_streams_max_tokens_and_stop_sequences():
    events = run_stream([chunk({"text": "Long"}, finish="MAX_TOKENS")])
    assert events[-2][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    events = run_stream([chunk({"text": "Done"}, finish="STOP")], stop_sequences=["###"])
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "###"}


def test_it_uses_the_estimate_until_gemini_reports_usage():
    events = run_stream([chunk({"text": "Hi"}, finish="STOP")], input_tokens_estimate=321)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 321
    assert events[-2][1]["usage"] == {
        "input_tokens": 321,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_it_raises_when_the_stream_is_empty():
    translator = StreamTranslator(model="m")
    assert [name for name, _ in translator.feed({"usageMetadata": {"promptTokenCount": 5}})] == [
        "message_start"
    ]
    with pytest.raises(TranslatedStreamError) as excinfo:
        translator.finish()
    assert excinfo.value.info == ErrorInfo(502, "api_error", "Gemini returned an empty response")
    assert translator.finish() == []


def test_it_ignores_feeding_after_finish():
    translator = StreamTranslator(model="m")
    translator.feed(chunk({"text": "Hi"}, finish="STOP"))
    assert translator.finish()[-1][0] == "message_stop"
    assert translator.feed(chunk({"text": "late"})) == []
    assert translator.finish() == []


def test_it_raises_on_an_error_chunk():
    translator = StreamTranslator(model="m")
    translator.feed(chunk({"text": "Hi"}))
    error = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
        }
    }
    with pytest.raises(TranslatedStreamError) as excinfo:
        translator.feed(error)
    assert excinfo.value.info == ErrorInfo(
        429, "rate_limit_error", "Resource has been exhausted", 7.0
    )


# ---------------------------------------------------------------------------------------------
# The answer comes last: Gemini 3's trailing signature parts (issue 9)
# ---------------------------------------------------------------------------------------------

# Gemini 3 ends a response with its signature on an empty text part after the answer. Claude
# Code takes the last content block as the answer, so that part must never become a block.
TRAILING_PARTS = [
    pytest.param({"text": "", "thoughtSignature": "TRAIL"}, id="empty-text"),
    pytest.param({"thoughtSignature": "TRAIL"}, id="no-text"),
    pytest.param({"text": "", "thought": True, "thoughtSignature": "TRAIL"}, id="empty-thought"),
]


def block_types(content: list[dict[str, Any]]) -> list[str]:
    return [block["type"] for block in content]


@pytest.mark.parametrize("trailing", TRAILING_PARTS)
def test_it_ends_a_non_streamed_answer_with_the_text(trailing: dict[str, Any]):
    message = translate_response(chunk({"text": "Hello!"}, trailing, finish="STOP"), model="m")
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"


def test_it_puts_a_trailing_signature_on_the_thinking_block_before_the_answer():
    message = translate_response(
        chunk(
            {"text": "Greet them.", "thought": True},
            {"text": "Hello!"},
            {"text": "", "thoughtSignature": "TRAIL"},
            finish="STOP",
        ),
        model="m",
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "Greet them.", "signature": "gemini.TRAIL"},
        {"type": "text", "text": "Hello!"},
    ]
    # …and it travels back on the answer's text part, where Gemini put it.
    request = build_request(body([user("hi"), assistant(message["content"]), user("again")]))
    assert request["contents"][1] == {
        "role": "model",
        "parts": [{"text": "Hello!", "thoughtSignature": "TRAIL"}],
    }


@pytest.mark.parametrize("trailing", TRAILING_PARTS)
@pytest.mark.parametrize(
    "layout",
    ["same-chunk-with-finish", "own-chunk-with-finish", "own-chunk-then-finish", "no-finish"],
)
def test_it_ends_a_streamed_answer_with_the_text(trailing: dict[str, Any], layout: str):
    if layout == "same-chunk-with-finish":
        chunks = [chunk({"text": "Hel"}), chunk({"text": "lo!"}, trailing, finish="STOP")]
    elif layout == "own-chunk-with-finish":
        chunks = [chunk({"text": "Hel"}), chunk({"text": "lo!"}), chunk(trailing, finish="STOP")]
    elif layout == "own-chunk-then-finish":
        chunks = [chunk({"text": "Hello!"}), chunk(trailing), chunk(finish="STOP")]
    else:  # the stream just ends (Gemini-compatible gateways that omit finishReason)
        chunks = [chunk({"text": "Hello!"}), chunk(trailing)]
    events = run_stream(chunks)
    assert_anthropic_grammar(events)
    message = accumulate(events)
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["text"]


def test_it_streams_the_answer_without_waiting_for_the_trailing_signature():
    translator = StreamTranslator(model="m")
    sent = translator.feed(chunk({"text": "Hello!"}))
    assert (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello!"},
        },
    ) in sent
    assert translator.feed(chunk({"text": "", "thoughtSignature": "TRAIL"})) == []
    rest = translator.finish()
    assert [name for name, _ in rest] == ["content_block_stop", "message_delta", "message_stop"]


def test_it_ends_a_streamed_answer_after_thoughts_with_the_text():
    events = run_stream(
        [
            chunk({"text": "Greet them.", "thought": True}),
            chunk({"text": "Hello!"}),
            chunk({"text": "", "thoughtSignature": "TRAIL"}, finish="STOP"),
        ]
    )
    assert_anthropic_grammar(events)
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "Greet them.", "signature": "gemini."},
        {"type": "text", "text": "Hello!"},
    ]


def test_it_signs_the_thinking_block_with_the_text_part_that_ends_it_in_a_stream():
    events = run_stream(
        [
            chunk({"text": "Greet them.", "thought": True}),
            chunk({"text": "Hello!", "thoughtSignature": "SIG"}, finish="STOP"),
        ]
    )
    assert_anthropic_grammar(events)
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "Greet them.", "signature": "gemini.SIG"},
        {"type": "text", "text": "Hello!"},
    ]


def translate_streamed(parts: list[dict[str, Any]], *, separate: bool) -> dict[str, Any]:
    """The message a client builds from a stream of ``parts`` (one chunk each, or one chunk)."""
    if separate:
        chunks = [chunk(part) for part in parts] + [chunk(finish="STOP")]
    else:
        chunks = [chunk(*parts, finish="STOP")]
    events = run_stream(chunks)
    assert_anthropic_grammar(events)
    return accumulate(events)


Translate = Callable[[list[dict[str, Any]]], dict[str, Any]]
TRANSLATIONS = [
    pytest.param(
        lambda parts: translate_response(chunk(*parts, finish="STOP"), model="m"), id="whole"
    ),
    pytest.param(lambda parts: translate_streamed(parts, separate=True), id="stream-chunks"),
    pytest.param(lambda parts: translate_streamed(parts, separate=False), id="stream-one-chunk"),
]


@pytest.mark.parametrize("translate", TRANSLATIONS)
def test_it_ends_a_signed_call_with_the_tool_use(translate: Translate):
    message = translate(
        [
            {
                "functionCall": {"id": "c1", "name": "Bash", "args": {"command": "ls"}},
                "thoughtSignature": "CALL",
            },
            {"text": "", "thoughtSignature": "TRAIL"},
        ]
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "", "signature": "gemini.CALL"},
        {"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "ls"}},
    ]
    assert message["stop_reason"] == "tool_use"
    request = build_request(
        body([user("ls"), assistant(message["content"]), user([tool_result("c1", "a.txt")])])
    )
    assert request["contents"][1]["parts"] == [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "CALL"}
    ]


@pytest.mark.parametrize("translate", TRANSLATIONS)
@pytest.mark.parametrize("with_thoughts", [False, True])
def test_it_puts_a_signature_that_trails_unsigned_calls_on_the_first_call(
    translate: Translate, with_thoughts: bool
):
    parts = [
        {"functionCall": {"id": "c1", "name": "Read", "args": {"file_path": "/a"}}},
        {"functionCall": {"id": "c2", "name": "Read", "args": {"file_path": "/b"}}},
        {"text": "", "thoughtSignature": "STEP"},
    ]
    if with_thoughts:
        parts.insert(0, {"text": "Read both.", "thought": True})
    message = translate(parts)
    carrier = {"type": "thinking", "thinking": "", "signature": "gemini.STEP"}
    if with_thoughts:
        carrier["thinking"] = "Read both."
    assert message["content"] == [
        carrier,
        {"type": "tool_use", "id": "c1", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "c2", "name": "Read", "input": {"file_path": "/b"}},
    ]
    request = build_request(
        body(
            [
                user("read"),
                assistant(message["content"]),
                user([tool_result("c1", "A"), tool_result("c2", "B")]),
            ]
        )
    )
    assert request["contents"][1]["parts"] == [
        {"functionCall": {"name": "Read", "args": {"file_path": "/a"}}, "thoughtSignature": "STEP"},
        {"functionCall": {"name": "Read", "args": {"file_path": "/b"}}},
    ]
    validate_gemini_request(request)


def test_it_holds_an_unsigned_call_for_one_chunk_at_most():
    translator = StreamTranslator(model="m")
    held = translator.feed(chunk({"functionCall": {"id": "c1", "name": "f", "args": {}}}))
    assert [name for name, _ in held] == ["message_start"]
    released = translator.feed(chunk({"text": "Done."}))
    assert [name for name, _ in released][:3] == [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ]
    assert released[0][1]["content_block"]["type"] == "tool_use"
    content = accumulate(held + released + translator.finish())["content"]
    assert block_types(content) == ["tool_use", "text"]


def test_it_releases_unsigned_calls_at_the_end_of_the_stream():
    events = run_stream(
        [chunk({"text": "Checking."}), chunk({"functionCall": {"id": "c1", "name": "f"}})]
    )
    assert_anthropic_grammar(events)
    message = accumulate(events)
    assert block_types(message["content"]) == ["text", "tool_use"]
    assert message["stop_reason"] == "tool_use"


def gemini_3_steps() -> list[list[dict[str, Any]]]:
    """One Gemini 3 tool turn as it streams: two steps of calls, then the answer."""
    return [
        [
            chunk({"text": "I should list the files.", "thought": True}),
            chunk(
                {
                    "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                    "thoughtSignature": "STEP1",
                }
            ),
            chunk({"text": "", "thoughtSignature": "TRAIL1"}, finish="STOP"),
        ],
        [
            chunk({"text": "Now read it.", "thought": True}),
            chunk({"text": "Reading a.txt."}),
            chunk(
                {
                    "functionCall": {"name": "Read", "args": {"file_path": "a.txt"}},
                    "thoughtSignature": "STEP2",
                },
                {"text": "", "thoughtSignature": "TRAIL2"},
                finish="STOP",
            ),
        ],
        [
            chunk({"text": "It says hi."}),
            chunk({"text": "", "thoughtSignature": "TRAIL3"}, finish="STOP"),
        ],
    ]


@pytest.mark.parametrize("streamed", [True, False])
def test_it_round_trips_a_gemini_3_tool_turn(streamed: bool):
    messages: list[dict[str, Any]] = [user("What is in my files?")]
    requests = []
    for step in gemini_3_steps():
        if streamed:
            events = run_stream(step)
            assert_anthropic_grammar(events)
            message = accumulate(events)
        else:
            parts = [part for c in step for part in c["candidates"][0]["content"]["parts"]]
            message = translate_response(chunk(*parts, finish="STOP"), model="m")
        last = message["content"][-1]
        assert last["type"] in ("text", "tool_use"), message["content"]
        messages.append(assistant(message["content"]))
        if last["type"] == "tool_use":
            messages.append(user([tool_result(last["id"], "output")]))
            requests.append(build_request(body(messages)))
    assert messages[-1]["content"][-1] == {"type": "text", "text": "It says hi."}

    # The current turn as Gemini 3 validates it: the first functionCall part of each step
    # carries the signature that step came with (not the skip marker, not another step's).
    final = requests[-1]
    validate_gemini_request(final)
    model_turns = [c["parts"] for c in final["contents"] if c["role"] == "model"]
    assert model_turns == [
        [
            {
                "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                "thoughtSignature": "STEP1",
            }
        ],
        [
            {"text": "Reading a.txt."},
            {
                "functionCall": {"name": "Read", "args": {"file_path": "a.txt"}},
                "thoughtSignature": "STEP2",
            },
        ],
    ]
    assert requests[0]["contents"][1]["parts"][0]["thoughtSignature"] == "STEP1"

    # The next user message sends the whole turn back, answer included, and it ends the same.
    follow_up = build_request(body([*messages, user("Thanks")]))
    validate_gemini_request(follow_up)
    assert follow_up["contents"][-2] == {"role": "model", "parts": [{"text": "It says hi."}]}


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def google_error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (
            400,
            google_error(400, "INVALID_ARGUMENT", "Bad field"),
            ErrorInfo(400, "invalid_request_error", "Bad field"),
        ),
        (
            400,
            google_error(400, "FAILED_PRECONDITION", "User location is not supported"),
            ErrorInfo(400, "invalid_request_error", "User location is not supported"),
        ),
        (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                    }
                ],
            ),
            ErrorInfo(
                401, "authentication_error", "API key not valid. Please pass a valid API key."
            ),
        ),
        (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576).",
            ),
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 1234567 tokens > 1048576 maximum"
            ),
        ),
        (
            403,
            google_error(403, "PERMISSION_DENIED", "Denied"),
            ErrorInfo(403, "permission_error", "Denied"),
        ),
        (
            404,
            google_error(404, "NOT_FOUND", "models/gemini-9 is not found"),
            ErrorInfo(404, "not_found_error", "models/gemini-9 is not found"),
        ),
        (
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"},
                ],
            ),
            ErrorInfo(429, "rate_limit_error", "Quota exceeded", 34.0),
        ),
        (
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Slow down",
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}],
            ),
            ErrorInfo(429, "rate_limit_error", "Slow down", 1.5),
        ),
        (
            429,
            google_error(429, "RESOURCE_EXHAUSTED", "Please retry in 500ms."),
            ErrorInfo(429, "rate_limit_error", "Please retry in 500ms.", 0.5),
        ),
        (
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": {"seconds": 2, "nanos": 500000000},
                    }
                ],
            ),
            ErrorInfo(429, "rate_limit_error", "Quota", 2.5),
        ),
        (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count exceeds the maximum number of tokens allowed.",
            ),
            ErrorInfo(400, "invalid_request_error", "prompt is too long"),
        ),
        (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Unable to submit request because the input token count is 2000000 but model only supports up to 1048576.",
            ),
            ErrorInfo(
                400, "invalid_request_error", "prompt is too long: 2000000 tokens > 1048576 maximum"
            ),
        ),
        (
            500,
            google_error(500, "INTERNAL", "Internal error"),
            ErrorInfo(500, "api_error", "Internal error"),
        ),
        (
            503,
            google_error(503, "UNAVAILABLE", "The model is overloaded."),
            ErrorInfo(529, "overloaded_error", "The model is overloaded."),
        ),
        (
            504,
            google_error(504, "DEADLINE_EXCEEDED", "Deadline"),
            ErrorInfo(504, "timeout_error", "Deadline"),
        ),
        (
            499,
            google_error(499, "CANCELLED", "Cancelled"),
            ErrorInfo(499, "invalid_request_error", "Cancelled"),
        ),
        (
            502,
            b"<html><body>Bad Gateway</body></html>",
            ErrorInfo(502, "api_error", "<html><body>Bad Gateway</body></html>"),
        ),
        (503, b"", ErrorInfo(529, "overloaded_error", "Service Unavailable")),
        (429, None, ErrorInfo(429, "rate_limit_error", "Too Many Requests")),
        (500, "  upstream died  ", ErrorInfo(500, "api_error", "upstream died")),
        (
            400,
            '[{"error": {"code": 400, "message": "Bad", "status": "INVALID_ARGUMENT"}}]',
            ErrorInfo(400, "invalid_request_error", "Bad"),
        ),
        (
            200,
            {"error": {"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}},
            ErrorInfo(529, "overloaded_error", "Overloaded"),
        ),
    ],
)
def test_it_maps_gemini_errors(status: int, raw: Any, expected: ErrorInfo):
    assert parse_error(status, raw) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xfe\x00",
        "{",
        "[]",
        "null",
        '{"error": "nope"}',
        '{"error": {"details": "x", "code": "a"}}',
        {"error": []},
        12,
    ],
)
def test_it_never_raises_on_garbage_errors(garbage: Any):
    info = parse_error(500, garbage)
    assert info.status == 500 and info.error_type == "api_error" and info.message


def test_it_recognises_schema_rejections():
    unknown = parse_error(
        400,
        google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"parametersJsonSchema\" at 'tools[0].function_declarations[0]': Cannot find field.",
        ),
    )
    assert is_schema_rejection(unknown)
    nested = parse_error(
        400,
        google_error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.tools[0].function_declarations[3].parameters_json_schema: invalid",
        ),
    )
    assert is_schema_rejection(nested)
    assert not is_schema_rejection(
        parse_error(400, google_error(400, "INVALID_ARGUMENT", "Bad temperature"))
    )
    assert not is_schema_rejection(
        parse_error(429, google_error(429, "RESOURCE_EXHAUSTED", "function_declarations quota"))
    )
