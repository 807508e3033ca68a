"""Which field an OpenAI-compatible server refused, and which of the proxy's own it may go without.

The error bodies are the servers' own wording (OpenAI, vLLM/pydantic, Groq, DeepSeek, Go servers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts import omissions
from claude_api.translate.common import OPENAI_SIGNATURE_TAG
from claude_api.translate.openai_chat import (
    OpenAIOptions,
    build_request,
    omission_for,
    rejected_fields,
    tool_names,
)


def openai_error(message: str, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
    ).encode()


def paths(body: Any) -> list[tuple[str, ...]]:
    return [item.path for item in rejected_fields(body)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            openai_error("Unrecognized request argument supplied: reasoning_effort"),
            [("reasoning_effort",)],
        ),
        (
            openai_error("Unrecognized request arguments supplied: parallel_tool_calls, user"),
            [("parallel_tool_calls",), ("user",)],
        ),
        (
            # Only the refused spelling, not the one the server suggests instead.
            openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            ),
            [("max_tokens",)],
        ),
        (
            openai_error(
                "Additional properties are not allowed ('reasoning_content' was unexpected) "
                "- 'messages[2]'"
            ),
            [("messages", "2", "reasoning_content")],
        ),
        (
            # The same validator with a dotted location.
            openai_error(
                "Additional properties are not allowed ('reasoning_content' was unexpected) "
                "- 'messages.2'"
            ),
            [("messages", "2", "reasoning_content")],
        ),
        (
            # The wording issue 9 saw.
            "Additional properties are not allowed (['reasoning_content'] were unexpected) "
            "- 'messages[2]'",
            [("messages", "2", "reasoning_content")],
        ),
        (
            json.dumps(
                {
                    "detail": [
                        {
                            "type": "extra_forbidden",
                            "loc": ["body", "stream_options"],
                            "msg": "Extra inputs are not permitted",
                            "input": {"include_usage": True},
                        }
                    ]
                }
            ),
            [("stream_options",)],
        ),
        (
            # vLLM: pydantic's errors as a Python repr inside the message.
            json.dumps(
                {
                    "object": "error",
                    "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'messages', 2, "
                    "'reasoning_content'), 'msg': 'Extra inputs are not permitted', "
                    "'input': 'Run ls.'}]",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            ),
            [("messages", "2", "reasoning_content")],
        ),
        (
            openai_error(
                "The reasoning_content is an intermediate result for display purposes only and "
                "will not be included in the context for inference. Please remove the "
                "reasoning_content from your message to reduce network traffic."
            ),
            [("reasoning_content",)],
        ),
        (
            openai_error(
                "Unsupported value: 'stream_options' is only allowed when 'stream' is on."
            ),
            [("stream_options",)],
        ),
        (
            openai_error(
                "'messages.2' : for 'role:assistant' the following must be satisfied"
                "[('messages.2' : property 'reasoning_content' is unsupported)]"
            ),
            [("messages", "2", "reasoning_content")],
        ),
        ('json: unknown field "reasoning"', [("reasoning",)]),
        (
            openai_error("Unknown parameter: 'messages[1].reasoning'.", code="unknown_parameter"),
            [("messages", "1", "reasoning")],
        ),
    ],
)
def test_it_names_the_field_a_server_refused(body: Any, expected: list[tuple[str, ...]]):
    found = paths(body)
    for path in expected:
        assert path in found
    # Nothing else the proxy might drop.
    assert {p[-1] for p in found} <= {p[-1] for p in expected} | {"reasoning_content"}


@pytest.mark.parametrize(
    "body",
    [
        # DeepSeek's thinking mode wants the field; it is not refusing it.
        openai_error(
            "Missing `reasoning_content` field in the assistant message at message index 4."
        ),
        openai_error("The reasoning_content in the thinking mode must be passed back to the API."),
        # A limit, not a refusal of the field.
        openai_error(
            "'max_tokens' or 'max_completion_tokens' is too large: 9000. This model's maximum "
            "context length is 8192 tokens and your request has 500 input tokens."
        ),
        openai_error("Invalid 'messages[1].content': string too long."),
        b"<html>400 Bad Request</html>",
        b"",
        None,
    ],
)
def test_it_names_nothing_when_no_field_was_refused(body: Any):
    assert paths(body) == []


TOOL_LOOP = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "user-1"},
    "messages": [
        {"role": "user", "content": "Go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Run ls.", "signature": OPENAI_SIGNATURE_TAG},
                {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}],
        },
    ],
}


def payload(options: OpenAIOptions, body: dict[str, Any] = TOOL_LOOP) -> dict[str, Any]:
    return build_request(
        body, upstream_model="gpt-x", stream=True, options=options, names=tool_names(body)
    )


def test_it_omits_only_fields_the_proxy_added():
    options = OpenAIOptions(reasoning_field="reasoning_content")
    sent = payload(options)
    assert sent["messages"][1]["reasoning_content"] == "Run ls."

    def decide(text: str) -> str | None:
        return omission_for(rejected_fields(text), sent, options)

    assert (
        decide(
            "Additional properties are not allowed ('reasoning_content' was unexpected) - 'messages[1]'"
        )
        == "reasoning_content"
    )
    assert decide("Unrecognized request argument supplied: reasoning_effort") == "reasoning_effort"
    assert decide("Unsupported parameter: 'max_tokens' is not supported") == "max_tokens"
    assert decide("Unrecognized request argument supplied: parallel_tool_calls") == (
        "parallel_tool_calls"
    )
    assert decide("Unrecognized request argument supplied: user") == "user"
    assert (
        decide(
            "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options', 'include_usage'), "
            "'msg': 'Extra inputs are not permitted'}]"
        )
        == "stream_options"
    )
    # The client's own choices: its 400 goes back to it.
    assert decide("Unsupported parameter: 'temperature' is not supported with this model.") is None
    assert decide("Unrecognized request argument supplied: tools") is None
    # A field of that name inside the client's tool schema is the client's.
    assert (
        decide(
            "Additional properties are not allowed ('user' was unexpected) - 'tools[0].function'"
        )
        is None
    )
    # Named, but not in this payload (the proxy did not send it): nothing to drop.
    assert decide("Unsupported parameter: 'max_completion_tokens' is not supported") is None
    assert decide("Additional properties are not allowed ('reasoning' was unexpected)") is None


def test_it_spells_max_tokens_the_other_way_once_one_is_refused():
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

    def sent(**kwargs: Any) -> dict[str, Any]:
        return build_request(
            body,
            upstream_model="gpt-x",
            stream=False,
            options=OpenAIOptions(**kwargs),
            names=tool_names(body),
        )

    assert sent()["max_tokens"] == 100
    learned = sent(omit=frozenset({"max_tokens"}))
    assert learned["max_completion_tokens"] == 100 and "max_tokens" not in learned
    back = sent(max_tokens_field="max_completion_tokens", omit=frozenset({"max_completion_tokens"}))
    assert back["max_tokens"] == 100 and "max_completion_tokens" not in back
    neither = sent(omit=frozenset({"max_tokens", "max_completion_tokens"}))
    assert "max_tokens" not in neither and "max_completion_tokens" not in neither


def test_it_leaves_out_every_learned_knob():
    everything = frozenset(
        {"reasoning_effort", "stream_options", "parallel_tool_calls", "user", "reasoning_content"}
    )
    full = payload(OpenAIOptions(reasoning_field="reasoning_content"))
    assert {"reasoning_effort", "stream_options", "parallel_tool_calls", "user"} <= full.keys()
    lean = payload(OpenAIOptions(reasoning_field="reasoning_content", omit=everything))
    assert not everything & lean.keys()
    assert lean["tools"] and lean["tool_choice"] == "auto" and lean["stream"] is True


def test_it_describes_what_was_learned_for_the_admin():
    learned = {
        "reasoning_content": {"at": "2026-12-02T01:10:07Z", "error": "Additional properties …"},
        "user": {},
        7: "garbage",
    }
    assert omissions.fields(learned) == frozenset({"reasoning_content", "user"})
    assert omissions.describe(learned) == [
        "reasoning_content (learned 2026-12-02 01:10 UTC from: Additional properties …)",
        "user (learned at an unknown time)",
    ]
    assert omissions.fields(None) == frozenset() and omissions.describe([1]) == []
