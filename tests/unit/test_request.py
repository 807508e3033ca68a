from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from claude_api.errors import InvalidRequest
from claude_api.request import (
    COUNT_TOKENS,
    MESSAGES,
    is_streaming,
    parse_body,
    session_id,
    validate,
)

SESSION = "3f1c2a9e-7b44-4c1e-9a55-0d6f3e2b1a77"


_MISSING = object()


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _MISSING}


def error_of(payload: dict[str, Any], endpoint: str = MESSAGES) -> str:
    with pytest.raises(InvalidRequest) as caught:
        validate(payload, endpoint)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value.message


# parse_body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
    ],
)
def test_it_rejects_unusable_bodies(raw: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        parse_body(raw)


def test_it_parses_a_json_object() -> None:
    assert parse_body(b'{"model": "m", "extra": [1]}') == {"model": "m", "extra": [1]}


# validate ---------------------------------------------------------------------------------


def test_it_accepts_a_complete_request() -> None:
    validate(
        body(
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello"},
                {"role": "system", "content": "system turns are forwarded as received"},
            ],
            stream=True,
            temperature=0.5,
            top_p=1,
            top_k=5,
            stop_sequences=["</done>"],
            tools=[{"name": "get", "input_schema": {"type": "object"}}],
            tool_choice={"type": "auto"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            metadata={"user_id": "u"},
            unknown_field={"kept": True},
        ),
        MESSAGES,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": _MISSING}, "model: Field required"),
        ({"model": 5}, "model: Input should be a non-empty string"),
        ({"model": "  "}, "model: Input should be a non-empty string"),
        ({"messages": _MISSING}, "messages: Field required"),
        ({"messages": {"role": "user"}}, "messages: Input should be a valid list"),
        ({"messages": ["hi"]}, "messages.0: Input should be an object"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            "messages.1.role: Input should be 'user', 'assistant' or 'system'",
        ),
        (
            {"messages": [{"content": "a"}]},
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: Input should be a string or a list of blocks",
        ),
        (
            {"messages": [{"role": "user", "content": {"type": "text"}}]},
            "messages.0.content: Input should be a string or a list of blocks",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}, {"text": "x"}]}]},
            "messages.0.content.1: Input should be an object with a 'type'",
        ),
        (
            {"messages": [{"role": "user", "content": ["plain"]}]},
            "messages.0.content.0: Input should be an object with a 'type'",
        ),
        ({"max_tokens": _MISSING}, "max_tokens: Field required"),
        ({"max_tokens": -1}, "max_tokens: Input should be a non-negative integer"),
        ({"max_tokens": True}, "max_tokens: Input should be a non-negative integer"),
        ({"max_tokens": 1.5}, "max_tokens: Input should be a non-negative integer"),
        ({"max_tokens": "100"}, "max_tokens: Input should be a non-negative integer"),
        ({"stream": "true"}, "stream: Input should be a valid boolean"),
        ({"stream": 1}, "stream: Input should be a valid boolean"),
        ({"system": 5}, "system: Input should be a string or a list of text blocks"),
        ({"system": {"text": "x"}}, "system: Input should be a string or a list of text blocks"),
        ({"system": ["x"]}, "system.0: Input should be a text block"),
        ({"system": [{"type": "text", "text": 5}]}, "system.0: Input should be a text block"),
        ({"temperature": "0.5"}, "temperature: Input should be a valid number"),
        ({"temperature": True}, "temperature: Input should be a valid number"),
        ({"top_p": "1"}, "top_p: Input should be a valid number"),
        ({"top_k": 1.5}, "top_k: Input should be a valid integer"),
        ({"stop_sequences": "stop"}, "stop_sequences: Input should be a list of strings"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences: Input should be a list of strings"),
        ({"tools": {"name": "x"}}, "tools: Input should be a valid list"),
        ({"tools": [{"name": "a"}, {"input_schema": {}}]}, "tools.1.name: Field required"),
        ({"tools": [{"name": 3}]}, "tools.0.name: Field required"),
        ({"tools": ["a"]}, "tools.0.name: Field required"),
        (
            {"tools": [{"name": "a", "input_schema": "{}"}]},
            "tools.0.input_schema: Input should be an object",
        ),
        ({"tool_choice": "auto"}, "tool_choice: Input should be an object"),
        ({"tool_choice": {"name": "get"}}, "tool_choice.type: Field required"),
        ({"thinking": {"budget_tokens": 10}}, "thinking.type: Field required"),
        ({"thinking": True}, "thinking: Input should be an object"),
        ({"metadata": "x"}, "metadata: Input should be an object"),
    ],
)
def test_it_names_the_offending_field(fields: dict[str, Any], message: str) -> None:
    assert error_of(body(**fields)) == message


def test_it_reports_the_first_problem_first() -> None:
    assert error_of({"messages": "x", "max_tokens": -1}) == "model: Field required"


@pytest.mark.parametrize("max_tokens", [_MISSING, -1, True, "x"])
def test_it_does_not_require_max_tokens_for_count_tokens(max_tokens: Any) -> None:
    validate(body(max_tokens=max_tokens), COUNT_TOKENS)


def test_it_still_validates_the_rest_for_count_tokens() -> None:
    assert error_of(body(messages=None), COUNT_TOKENS) == "messages: Field required"
    assert (
        error_of(body(tools=[{"description": "x"}]), COUNT_TOKENS) == "tools.0.name: Field required"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 0},
        {"stream": False},
        {"stream": None},
        {"system": "plain"},
        {"system": [{"type": "text"}]},
        {"temperature": 1},
        {"messages": []},
        {"messages": [{"role": "user", "content": []}]},
        {"tool_choice": None},
        {"tools": []},
    ],
)
def test_it_accepts_edge_values(fields: dict[str, Any]) -> None:
    validate(body(**fields), MESSAGES)


# is_streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "streaming"),
    [
        ({}, False),
        ({"stream": False}, False),
        ({"stream": None}, False),
        ({"stream": True}, True),
        ({"stream": "true"}, False),
        ({"stream": 1}, False),
    ],
)
def test_it_streams_only_for_json_true(fields: dict[str, Any], streaming: bool) -> None:
    assert is_streaming(body(**fields)) is streaming


def test_it_streams_for_true_parsed_from_json() -> None:
    assert is_streaming(orjson.loads(b'{"stream": true}'))
    assert not is_streaming(orjson.loads(b'{"stream": "true"}'))


# session_id -------------------------------------------------------------------------------


def metadata_user_id(value: str) -> dict[str, Any]:
    return body(metadata={"user_id": value})


def test_it_prefers_the_claude_code_session_header() -> None:
    headers = {"x-claude-code-session-id": f"  {SESSION} ", "session-id": "other"}
    payload = metadata_user_id(orjson.dumps({"session_id": "from-metadata"}).decode())
    assert session_id(headers, payload) == SESSION


def test_it_reads_the_session_from_a_json_user_id() -> None:
    user_id = orjson.dumps(
        {"device_id": "d" * 64, "account_uuid": "acc", "session_id": SESSION}
    ).decode()
    assert session_id({"session-id": "other"}, metadata_user_id(user_id)) == SESSION


def test_it_reads_the_session_from_a_legacy_user_id() -> None:
    user_id = f"user_{'a' * 64}_account__session_{SESSION}"
    assert session_id({"session-id": "other"}, metadata_user_id(user_id)) == SESSION


@pytest.mark.parametrize(
    "user_id", ['{"device_id": "d"}', "{not json", "user_abc_account_1_session_", '["x"]']
)
def test_it_moves_on_when_the_user_id_holds_no_session(user_id: str) -> None:
    assert session_id({"x-session-id": "from-header"}, metadata_user_id(user_id)) == "from-header"


@pytest.mark.parametrize(
    "header",
    ["session-id", "session_id", "x-session-id", "x-session-affinity", "x-client-request-id"],
)
def test_it_reads_generic_session_headers(header: str) -> None:
    assert session_id({header: " abc "}, body(session_id="from-body")) == "abc"


def test_it_reads_session_headers_in_order() -> None:
    headers = {"x-client-request-id": "last", "x-session-id": "middle", "session-id": "first"}
    assert session_id(headers, body()) == "first"
    del headers["session-id"]
    assert session_id(headers, body()) == "middle"


def test_it_skips_blank_session_headers() -> None:
    headers = {"x-claude-code-session-id": "  ", "session-id": "", "x-session-id": "real"}
    assert session_id(headers, body()) == "real"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"session_id": "s1", "sessionId": "s2"}, "s1"),
        ({"sessionId": "s2", "prompt_cache_key": "p"}, "s2"),
        ({"prompt_cache_key": "p", "conversation_id": "c"}, "p"),
        ({"conversation_id": "c", "conversation": {"id": "x"}}, "c"),
        ({"conversation": {"id": "conv-1"}}, "conv-1"),
        ({"conversation": "conv-2"}, "conv-2"),
        ({"metadata": {"user_id": "plain-user"}}, "plain-user"),
        ({"session_id": 5, "conversation": "conv-3"}, "conv-3"),
    ],
)
def test_it_reads_body_fields(fields: dict[str, Any], expected: str) -> None:
    assert session_id({}, body(**fields)) == expected


def conversation(turns: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Refactor the parser please"}]}
    ]
    for n in range(turns - 1):
        messages.append({"role": "assistant", "content": f"Answer {n}"})
        messages.append({"role": "user", "content": f"Follow-up {n}"})
    return body(system="You are a careful engineer.", messages=messages)


def test_it_fingerprints_a_conversation_stably_as_it_grows() -> None:
    first = session_id({}, conversation(1))
    assert first is not None and first.startswith("fp-")
    for turns in (2, 3, 10):
        assert session_id({}, conversation(turns)) == first


def test_it_fingerprints_different_conversations_differently() -> None:
    other = copy.deepcopy(conversation(1))
    other["messages"][0]["content"][0]["text"] = "Write a poem"
    assert session_id({}, other) != session_id({}, conversation(1))
    other_system = conversation(1) | {"system": "You are a poet."}
    assert session_id({}, other_system) != session_id({}, conversation(1))


def test_it_fingerprints_only_the_first_100_characters() -> None:
    a = body(messages=[{"role": "user", "content": "x" * 100 + "a"}])
    b = body(messages=[{"role": "user", "content": "x" * 100 + "b"}])
    assert session_id({}, a) == session_id({}, b)


def test_it_has_no_fingerprint_without_text() -> None:
    assert session_id({}, body(messages=[])) is None
    image_only = [{"role": "user", "content": [{"type": "image", "source": {}}]}]
    assert session_id({}, body(messages=image_only)) is None
    assert session_id({}, {"messages": "garbage"}) is None
