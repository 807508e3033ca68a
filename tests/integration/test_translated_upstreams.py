"""Gemini and OpenAI-compatible upstreams behind the Anthropic surface (in-process)."""

from __future__ import annotations

import json

import pytest

from accounts.models import QuotaState, RoutingTrace
from claude_api.translate.common import OPENAI_SIGNATURE_TAG
from tests.conftest import make_credential, read_stream, set_proxy_settings, sse_events
from tests.fakes.upstream import Respond

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
]


def gemini_chunk(parts, finish=None, usage=None):
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk = {"candidates": [candidate], "modelVersion": "gemini-2.5-pro"}
    if usage:
        chunk["usageMetadata"] = usage
    return chunk


async def test_it_translates_a_gemini_reply_and_uses_the_api_key_header(api, upstream):
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    upstream.script(
        "/v1beta/models/gemini-2.5-pro:generateContent",
        Respond.json(
            {
                **gemini_chunk([{"text": "Bonjour"}], "STOP"),
                "usageMetadata": {
                    "promptTokenCount": 12,
                    "candidatesTokenCount": 3,
                    "totalTokenCount": 15,
                },
            }
        ),
    )
    response = await api.message(model="gemini-2.5-pro", system="Be brief", tools=TOOLS)
    assert response.status_code == 200, response.content
    message = json.loads(response.content)
    assert message["content"] == [{"type": "text", "text": "Bonjour"}]
    assert message["model"] == "gemini-2.5-pro"
    assert message["usage"]["input_tokens"] == 12
    sent = upstream.requests[-1]
    assert sent.headers["x-goog-api-key"] == "AIza-gemini-key-123456"
    assert sent.json()["systemInstruction"] == {"parts": [{"text": "Be brief"}]}
    declaration = sent.json()["tools"][0]["functionDeclarations"][0]
    assert "$schema" not in declaration["parametersJsonSchema"]


async def test_it_streams_gemini_tool_calls_as_anthropic_events(api, upstream):
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    chunks = [
        gemini_chunk([{"text": "Let me check.", "thought": True}]),
        gemini_chunk(
            [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnLTE=",
                }
            ],
            "STOP",
            {"promptTokenCount": 20, "candidatesTokenCount": 5, "thoughtsTokenCount": 7},
        ),
    ]
    upstream.script(
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        Respond.sse([(None, c) for c in chunks], terminator=b"\r\n\r\n", split=7),
    )
    response = await api.message(model="gemini-2.5-pro", tools=TOOLS, stream=True)
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    tool_start = next(
        d
        for n, d in events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    )
    assert tool_start["content_block"]["name"] == "get_weather"
    arguments = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(arguments) == {"city": "Paris"}
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 12
    signatures = [
        d["delta"]["signature"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    ]
    assert "gemini.c2lnLTE=" in signatures
    assert upstream.requests[-1].query == {"alt": ["sse"]}


def streamed_content(events):
    """The content blocks a client builds from an Anthropic event stream."""
    content = []
    for name, data in events:
        if name == "content_block_start":
            content.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = content[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["partial"] = block.get("partial", "") + delta["partial_json"]
        elif name == "content_block_stop" and "partial" in content[data["index"]]:
            block = content[data["index"]]
            block["input"] = json.loads(block.pop("partial"))
    return content


async def test_it_ends_a_gemini_3_stream_with_the_answer(api, upstream):
    # Gemini 3 sends its last signature on an empty text part after the answer; Claude Code
    # reads the last block as the answer, so it must be the text.
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    chunks = [
        gemini_chunk([{"text": "The user greets me.", "thought": True}]),
        gemini_chunk([{"text": "Hello!"}]),
        gemini_chunk(
            [{"text": "", "thoughtSignature": "dHJhaWw="}],
            "STOP",
            {"promptTokenCount": 9, "candidatesTokenCount": 2, "thoughtsTokenCount": 5},
        ),
    ]
    upstream.script(
        "/v1beta/models/gemini-3-pro-preview:streamGenerateContent",
        Respond.sse([(None, c) for c in chunks], terminator=b"\r\n\r\n", split=5),
    )
    response = await api.message(
        model="gemini-3-pro-preview",
        stream=True,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    content = streamed_content(events)
    assert content[-1] == {"type": "text", "text": "Hello!"}
    assert [block["type"] for block in content] == ["thinking", "text"]
    assert next(d for n, d in events if n == "message_delta")["delta"]["stop_reason"] == "end_turn"


async def test_it_keeps_a_gemini_3_tool_loop_signed_and_ending_with_the_call(api, upstream):
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    upstream.script(
        "/v1beta/models/gemini-3-pro-preview:streamGenerateContent",
        Respond.sse(
            [
                (None, gemini_chunk([{**call, "thoughtSignature": "c3RlcA=="}])),
                (None, gemini_chunk([{"text": "", "thoughtSignature": "dHJhaWw="}], "STOP")),
            ]
        ),
        Respond.sse([(None, gemini_chunk([{"text": "18C in Paris."}], "STOP"))]),
    )
    first = await api.message(model="gemini-3-pro-preview", tools=TOOLS, stream=True)
    content = streamed_content(sse_events(await read_stream(first)))
    assert content[-1]["type"] == "tool_use"

    follow_up = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": content[-1]["id"], "content": "18C"}
            ],
        },
    ]
    second = await api.message(
        model="gemini-3-pro-preview", tools=TOOLS, stream=True, messages=follow_up
    )
    assert streamed_content(sse_events(await read_stream(second))) == [
        {"type": "text", "text": "18C in Paris."}
    ]
    sent = upstream.requests[-1].json()["contents"]
    assert sent[1] == {"role": "model", "parts": [{**call, "thoughtSignature": "c3RlcA=="}]}


async def test_it_maps_gemini_quota_errors_to_429_with_retry_after(api, upstream):
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    set_proxy_settings(request_retry=0)
    upstream.script(
        "/v1beta/models/",
        Respond.json(
            {
                "error": {
                    "code": 429,
                    "message": "Quota exceeded",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}
                    ],
                }
            },
            status=429,
        ),
    )
    response = await api.message(model="gemini-2.5-flash")
    assert response.status_code == 429
    assert json.loads(response.content)["error"]["type"] == "rate_limit_error"
    assert response["retry-after"] == "34"


async def test_it_counts_gemini_tokens_with_system_and_tools(api, upstream):
    make_credential(provider="gemini", base_url=upstream.url, secret="AIza-gemini-key-123456")
    upstream.script("/v1beta/models/gemini-2.5-pro:countTokens", Respond.json({"totalTokens": 321}))
    response = await api.post(
        "/v1/messages/count_tokens",
        {
            "model": "gemini-2.5-pro",
            "system": "sys",
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert json.loads(response.content) == {"input_tokens": 321}
    request = upstream.requests[-1].json()["generateContentRequest"]
    assert request["model"] == "models/gemini-2.5-pro"
    assert "systemInstruction" in request and "tools" in request


async def test_it_translates_an_openai_reply(api, upstream):
    make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-or-key-1234567890",
        models=[("deepseek-chat", "deepseek")],
    )
    upstream.script(
        "/v1/chat/completions",
        Respond.json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "deepseek-chat",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Hi there",
                            "reasoning_content": "thinking…",
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 30,
                    "completion_tokens": 4,
                    "prompt_tokens_details": {"cached_tokens": 10},
                },
            }
        ),
    )
    response = await api.message(model="deepseek")
    message = json.loads(response.content)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["usage"]["input_tokens"] == 20
    assert message["usage"]["cache_read_input_tokens"] == 10
    sent = upstream.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-or-key-1234567890"
    assert sent.json()["model"] == "deepseek-chat"


async def test_it_streams_openai_tool_arguments_as_they_arrive(api, upstream):
    make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-x-1234567890ab",
        models=["qwen3"],
    )
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "qwen3"}
    fragments = ['{"ci', 'ty": "Pa', 'ris"}']
    chunks = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ],
                    },
                }
            ],
        },
        *[
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": f}}]},
                    }
                ],
            }
            for f in fragments
        ],
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9}},
    ]
    upstream.script(
        "/v1/chat/completions", Respond.sse([(None, c) for c in chunks], tail=[b"data: [DONE]\n\n"])
    )
    response = await api.message(model="qwen3", tools=TOOLS, stream=True)
    events = sse_events(await read_stream(response))
    deltas = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert len(deltas) >= 3
    assert json.loads("".join(deltas)) == {"city": "Paris"}
    message_delta = next(d for n, d in events if n == "message_delta")
    assert message_delta["delta"]["stop_reason"] == "tool_use"
    assert message_delta["usage"]["output_tokens"] == 9
    sent = upstream.requests[-1].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_it_estimates_count_tokens_for_openai_and_says_so(api, upstream):
    make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-x-1234567890ab",
        models=["qwen3"],
    )
    response = await api.post(
        "/v1/messages/count_tokens",
        {"model": "qwen3", "messages": [{"role": "user", "content": "Hello there, how are you?"}]},
    )
    assert response.status_code == 200
    assert json.loads(response.content)["input_tokens"] > 0
    assert response["x-proxy-token-count"] == "estimate"
    assert upstream.requests == []


async def test_it_maps_openai_context_overflow_to_prompt_too_long(api, upstream):
    make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-x-1234567890ab",
        models=["qwen3"],
    )
    upstream.script(
        "/v1/chat/completions",
        Respond.json(
            {
                "error": {
                    "message": "This model's maximum context length is 32768 tokens. However, your messages resulted in 40000 tokens.",
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                }
            },
            status=400,
        ),
    )
    response = await api.message(model="qwen3")
    assert response.status_code == 400
    assert (
        json.loads(response.content)["error"]["message"]
        == "prompt is too long: 40000 tokens > 32768 maximum"
    )


# Learned omissions -------------------------------------------------------------------------

# OpenAI's answer to a field it does not know, as issue 9 saw it.
OPENAI_REJECTS_REASONING = {
    "error": {
        "message": "Additional properties are not allowed ('reasoning_content' was unexpected) "
        "- 'messages[2]'",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def openai_completion(text: str = "Done.") -> dict:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "model": "gpt-strict",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2},
    }


def strict_openai(request) -> Respond:
    """A server that validates messages strictly, as OpenAI does."""
    if any("reasoning_content" in m for m in request.json()["messages"]):
        return Respond.json(OPENAI_REJECTS_REASONING, status=400)
    return Respond.json(openai_completion())


# The second request of Claude Code's tool loop: the first answer's reasoning (tagged by the
# proxy, so it is ours to echo) and tool call, then the tool's result.
TOOL_LOOP_HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Ask the tool.", "signature": OPENAI_SIGNATURE_TAG},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"}],
    },
]


async def test_it_retries_without_a_refused_reasoning_field_and_remembers_it(
    api, upstream, fresh_pool
):
    # An existing credential that still echoes reasoning (the old default).
    credential = make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-strict-1234567890",
        models=["gpt-strict"],
        openai_reasoning_field="reasoning_content",
    )
    upstream.default = strict_openai

    response = await api.message(model="gpt-strict", tools=TOOLS, messages=TOOL_LOOP_HISTORY)
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["content"] == [{"type": "text", "text": "Done."}]
    first, retry = (r.json() for r in upstream.requests)
    assert first["messages"][1]["reasoning_content"] == "Ask the tool."
    assert "reasoning_content" not in retry["messages"][1]
    assert retry["messages"][1]["tool_calls"][0]["id"] == "call_1"

    await fresh_pool.settle()
    credential.refresh_from_db()
    learned = credential.learned_omissions
    assert set(learned) == {"reasoning_content"}
    assert "Additional properties are not allowed" in learned["reasoning_content"]["error"]
    # Not a failure of the credential: no cooldown, nothing counted against it.
    assert not QuotaState.objects.filter(credential=credential).exists()
    assert fresh_pool.counters.failures[credential.pk] == 0
    trace = RoutingTrace.objects.get(request_id=response["request-id"])
    dropped = [s for s in trace.steps if s["outcome"] == "retried without field"]
    assert len(dropped) == 1 and "reasoning_content" in dropped[0]["reason"]
    assert dropped[0]["status"] == 400 and trace.status == 200

    # The next request on this worker goes without it from the start.
    upstream.requests.clear()
    response = await api.message(model="gpt-strict", tools=TOOLS, messages=TOOL_LOOP_HISTORY)
    assert response.status_code == 200
    assert len(upstream.requests) == 1
    assert "reasoning_content" not in upstream.requests[0].json()["messages"][1]

    # So does another worker, which only has the database to go by.
    fresh_pool.reset()
    upstream.requests.clear()
    response = await api.message(model="gpt-strict", tools=TOOLS, messages=TOOL_LOOP_HISTORY)
    assert response.status_code == 200
    assert len(upstream.requests) == 1
    assert "reasoning_content" not in upstream.requests[0].json()["messages"][1]


async def test_it_learns_to_stream_without_stream_options(api, upstream, fresh_pool):
    credential = make_credential(
        provider="openai", base_url=upstream.url + "/v1", secret="", models=["local"]
    )
    # vLLM-style strict validation (422, pydantic's extra_forbidden).
    refused = {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted",
                "input": {"include_usage": True},
            }
        ]
    }
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "local"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    upstream.script(
        "/v1/chat/completions",
        Respond.json(refused, status=422),
        Respond.sse([(None, c) for c in chunks], tail=[b"data: [DONE]\n\n"]),
    )
    response = await api.message(model="local", stream=True)
    assert response.status_code == 200
    events = sse_events(await read_stream(response))
    assert [n for n, _ in events][-1] == "message_stop"
    # Without include_usage the server reports no usage: the prompt is estimated instead.
    assert (
        next(d for n, d in events if n == "message_start")["message"]["usage"]["input_tokens"] > 0
    )
    first, retry = (r.json() for r in upstream.requests)
    assert first["stream_options"] == {"include_usage": True}
    assert "stream_options" not in retry and retry["stream"] is True
    await fresh_pool.settle()
    credential.refresh_from_db()
    assert set(credential.learned_omissions) == {"stream_options"}


async def test_it_returns_a_refusal_of_the_clients_own_field_as_it_is(api, upstream, fresh_pool):
    credential = make_credential(
        provider="openai", base_url=upstream.url + "/v1", secret="sk-o-1234567890", models=["o3"]
    )
    upstream.script(
        "/v1/chat/completions",
        Respond.json(
            {
                "error": {
                    "message": "Unsupported parameter: 'temperature' is not supported with "
                    "this model.",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": "unsupported_parameter",
                }
            },
            status=400,
        ),
    )
    response = await api.message(model="o3", temperature=0.2)
    assert response.status_code == 400
    assert "temperature" in json.loads(response.content)["error"]["message"]
    assert len(upstream.requests) == 1
    await fresh_pool.settle()
    credential.refresh_from_db()
    assert credential.learned_omissions == {}


async def test_it_omits_a_learned_field_at_once_before_the_pool_reloads(
    api, upstream, fresh_pool, settings
):
    make_credential(
        provider="openai",
        base_url=upstream.url + "/v1",
        secret="sk-strict-1234567890",
        models=["gpt-strict"],
        openai_reasoning_field="reasoning_content",
    )
    upstream.default = strict_openai
    response = await api.message(model="gpt-strict", tools=TOOLS, messages=TOOL_LOOP_HISTORY)
    assert response.status_code == 200
    assert len(upstream.requests) == 2
    # This worker keeps its snapshot (no reload for an hour): the view it learned on is enough.
    settings.POOL_REFRESH_SECONDS = 3600
    upstream.requests.clear()
    response = await api.message(model="gpt-strict", tools=TOOLS, messages=TOOL_LOOP_HISTORY)
    assert response.status_code == 200
    assert len(upstream.requests) == 1
    assert "reasoning_content" not in upstream.requests[0].json()["messages"][1]
