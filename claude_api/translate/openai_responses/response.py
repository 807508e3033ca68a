"""Response: usage and stop reasons, a whole Responses object -> an Anthropic message
(``translate_response``), and Anthropic stream events -> one message (``assemble``).

The upstream call always streams (Codex accepts nothing else); a non-streaming client gets the
message ``assemble`` builds from the translated events, so both paths share one mapping.
"""

from __future__ import annotations

import json
from typing import Any

from claude_api.translate.common import Event, TranslatedStreamError
from claude_api.translate.openai_responses.errors import parse_error
from claude_api.translate.openai_responses.names import CallIds, ToolNames


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


def usage(raw: Any, input_fallback: int, output_fallback: int) -> dict[str, int]:
    """Responses usage -> Anthropic counters. ``input_tokens`` there includes the cached part;
    Anthropic counts it apart, as ``cache_read_input_tokens``."""
    if not isinstance(raw, dict):
        return {
            "input_tokens": input_fallback,
            "output_tokens": output_fallback,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
    details = raw.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    cached = cached or 0
    prompt = _int(raw.get("input_tokens"))
    output = _int(raw.get("output_tokens"))
    return {
        "input_tokens": max(prompt - cached, 0) if prompt is not None else input_fallback,
        "output_tokens": output if output is not None else output_fallback,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def message_usage(counters: dict[str, int]) -> dict[str, Any]:
    # Claude Code ≥2.1.79 expects cache_creation in message usage (litellm#24176).
    return {
        **counters,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    }


def stop_reason(incomplete: Any, *, has_tools: bool, refused: bool) -> str:
    """Truncation wins (a max_tokens turn may end inside a tool call, as on Anthropic), then a
    filter or refusal, then tool calls (Claude Code runs tools only on "tool_use")."""
    if incomplete in ("max_output_tokens", "max_tokens"):
        return "max_tokens"
    if incomplete == "content_filter" or refused:
        return "refusal"
    if has_tools:
        return "tool_use"
    return "end_turn"


def output_estimate(chars: int) -> int:
    # Only when the upstream reports no usage (a stop sequence ended the stream): ~4 chars/token.
    return (chars + 3) // 4


def assemble(events: list[Event]) -> dict[str, Any]:
    """The Anthropic message a complete list of stream events describes."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    json_parts: dict[int, list[str]] = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"])
        elif name == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"])
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            kind = delta.get("type")
            if kind == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif kind == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif kind == "signature_delta":
                block["signature"] = delta["signature"]
            elif kind == "input_json_delta":
                json_parts.setdefault(data["index"], []).append(delta["partial_json"])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = message_usage(
                {k: v for k, v in data["usage"].items() if k != "cache_creation"}
            )
    for index, parts in json_parts.items():
        try:
            value = json.loads("".join(parts))
        except ValueError:
            value = {}
        blocks[index]["input"] = value if isinstance(value, dict) else {}
    message["content"] = [blocks[index] for index in sorted(blocks)]
    return message


def translate_response(
    response: dict[str, Any],
    *,
    model: str,
    names: ToolNames,
    ids: CallIds,
    now: float,
    stop_sequences: tuple[str, ...] = (),
    origin: str = "",
) -> dict[str, Any]:
    """A whole Responses object (``status`` completed or incomplete) as an Anthropic message,
    through the same mapping as the stream: each output item as if it had just finished."""
    from claude_api.translate.openai_responses.stream import StreamTranslator

    if not isinstance(response, dict):
        response = {}
    if response.get("status") == "failed" or isinstance(response.get("error"), dict):
        raise TranslatedStreamError(parse_error(200, {"response": response}, now=now))
    translator = StreamTranslator(
        model=model, names=names, ids=ids, now=now, stop_sequences=stop_sequences, origin=origin
    )
    events: list[Event] = []
    for position, item in enumerate(response.get("output") or ()):
        events += translator.feed(
            {"type": "response.output_item.done", "output_index": position, "item": item}
        )
        if translator.stopped:
            events += translator.end_at_stop_sequence()
            return assemble(events)
    kind = "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    events += translator.feed({"type": kind, "response": {**response, "output": []}})
    return assemble(events)
