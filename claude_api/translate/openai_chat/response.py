"""Response: a non-streaming ``chat.completion`` -> an Anthropic message."""

from __future__ import annotations

import json
from typing import Any

from claude_api.translate.common import (
    OPENAI_SIGNATURE_TAG,
    TranslatedStreamError,
    new_message_id,
    new_tool_use_id,
    sanitize_tool_use_id,
)
from claude_api.translate.openai_chat.errors import _int, parse_error
from claude_api.translate.openai_chat.names import ToolNames
from claude_api.translate.openai_chat.request import _dumps

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FILTERED_TEXT = "The upstream provider's content filter blocked this response."


def _stop_reason(finish_reason: Any, has_tools: bool) -> str:
    mapped = _STOP_REASONS.get(finish_reason, "end_turn") if finish_reason else "end_turn"
    # Servers disagree on the reason that comes with tool calls ("stop", "tool_calls", none);
    # Claude Code only runs tools on "tool_use". Truncation and filtering still win, as on
    # Anthropic (a max_tokens turn may end inside a tool call).
    if has_tools and mapped not in ("max_tokens", "refusal"):
        return "tool_use"
    if mapped == "tool_use" and not has_tools:
        return "end_turn"  # "tool_calls" without any call: nothing for the client to run
    return mapped


def _usage(usage: Any, input_fallback: int, output_fallback: int) -> dict[str, int]:
    """OpenAI usage -> Anthropic counters (``input_tokens`` excludes cached tokens)."""
    if not isinstance(usage, dict):
        return {
            "input_tokens": input_fallback,
            "output_tokens": output_fallback,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    # DeepSeek reports prompt_cache_hit_tokens at the top level; OpenAI/OpenRouter/vLLM use
    # prompt_tokens_details. OpenRouter adds cache_write_tokens for Anthropic/Gemini routes.
    cached = _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))
    written = _int(details.get("cache_write_tokens"))
    prompt = usage.get("prompt_tokens")
    if isinstance(prompt, int | float) and not isinstance(prompt, bool):
        input_tokens = max(_int(prompt) - cached - written, 0)
    else:
        input_tokens = input_fallback
    completion = usage.get("completion_tokens")
    if isinstance(completion, int | float) and not isinstance(completion, bool):
        output_tokens = _int(completion)
    else:
        output_tokens = output_fallback
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _message_usage(counters: dict[str, int]) -> dict[str, Any]:
    # Claude Code ≥2.1.79 expects cache_creation in message usage (litellm#24176).
    return {
        **counters,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    }


def _text_value(value: Any) -> str:
    """Content as a string; some servers send a list of parts (or reasoning items)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append(item["text"])
        return "".join(out)
    return ""


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return ""
    # A few servers send the arguments as an object instead of a JSON string.
    try:
        return _dumps(arguments)
    except (TypeError, ValueError):
        return ""


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        # Log-worthy: the model produced malformed JSON. {} lets Claude Code report the
        # missing arguments to the model instead of failing the whole turn.
        return {}
    return value if isinstance(value, dict) else {}


def translate_response(data: dict[str, Any], *, model: str, names: ToolNames) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` as an Anthropic message.

    Raises TranslatedStreamError when a 200 body carries an ``error`` object instead of choices
    (OpenRouter and some gateways do that).
    """
    if not isinstance(data, dict):
        data = {}
    choices = data.get("choices")
    choice = (
        next((c for c in choices if isinstance(c, dict)), None)
        if isinstance(choices, list)
        else None
    )
    if choice is None and data.get("error"):
        raise TranslatedStreamError(parse_error(200, data))
    choice = choice or {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}

    content: list[dict[str, Any]] = []
    chars = 0
    reasoning = _text_value(message.get("reasoning_content")) or _text_value(
        message.get("reasoning")
    )
    if reasoning:
        chars += len(reasoning)
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": OPENAI_SIGNATURE_TAG}
        )
    text = _text_value(message.get("content"))
    if text.strip():  # a blank text block is rejected when the history is replayed
        chars += len(text)
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):
        calls = [{"function": legacy}]
    seen: set[str] = set()
    for call in calls:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        chars += len(arguments) if isinstance(arguments, str) else 0
        call_id = _unique_id(call.get("id"), seen)
        content.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": names.to_client(str(function.get("name") or "")),
                "input": _tool_input(arguments),
            }
        )

    finish_reason = choice.get("finish_reason")
    if isinstance(refusal, str) and refusal:
        finish_reason = "content_filter"
    stop_reason = _stop_reason(finish_reason, bool(calls))
    if stop_reason == "refusal" and not content:
        content.append({"type": "text", "text": _FILTERED_TEXT})
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _message_usage(_usage(data.get("usage"), 0, _output_estimate(chars))),
    }


def _unique_id(raw: Any, seen: set[str]) -> str:
    # Anthropic rejects a history with duplicate tool_use ids; some servers repeat them.
    call_id = sanitize_tool_use_id(raw if isinstance(raw, str) else None)
    if call_id in seen:
        call_id = new_tool_use_id()
    seen.add(call_id)
    return call_id


def _output_estimate(chars: int) -> int:
    # Only used when the upstream reports no usage at all: ~4 characters per token.
    return (chars + 3) // 4
