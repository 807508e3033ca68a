"""Anthropic Messages ⇄ OpenAI-compatible Chat Completions (OpenRouter, DeepSeek, vLLM, Ollama…).

Pure functions and one small state object; no I/O, no Django. The provider layer calls:

- ``tool_names(body)`` once per request, then ``build_request(...)`` for the upstream body;
- ``translate_response(...)`` for a non-streaming ``chat.completion``;
- ``StreamTranslator(...).feed(chunk)`` per parsed ``data:`` object, ``finish()`` at ``[DONE]``/EOF;
- ``parse_error(status, body)`` for any upstream error body;
- ``rejected_fields(body)`` and ``omission_for(...)`` when a 400 names a field the server refuses;
- ``estimate_input_tokens(body)`` for ``count_tokens`` (OpenAI has no count endpoint).

Returned dicts may share nested objects (tool schemas, tool inputs) with the input body: treat
both as read-only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from claude_api.translate.common import (
    OPENAI_SIGNATURE_TAG,
    ErrorInfo,
    Event,
    TranslatedStreamError,
    content_blocks,
    error_type_for_status,
    iter_messages,
    new_message_id,
    new_tool_use_id,
    prompt_too_long_message,
    sanitize_tool_use_id,
    system_message_text,
    system_texts,
)
from claude_api.translate.tokens import estimate_chat_tokens

__all__ = [
    "OpenAIOptions",
    "StreamTranslator",
    "OMITTABLE",
    "RejectedField",
    "ToolNames",
    "build_request",
    "estimate_input_tokens",
    "omission_for",
    "parse_error",
    "rejected_fields",
    "sends_usage_option",
    "tool_names",
    "translate_response",
]


@dataclass(frozen=True)
class OpenAIOptions:
    """Per-upstream knobs; the defaults suit most OpenAI-compatible servers."""

    # "max_completion_tokens" for OpenAI o-series / GPT-5; most compat servers only know max_tokens.
    max_tokens_field: str = "max_tokens"
    # Without stream_options.include_usage OpenAI sends no usage at all in a stream.
    include_usage: bool = True
    # Field that carries our own earlier reasoning back on assistant tool-call turns
    # ("reasoning_content" for DeepSeek's thinking mode, "reasoning" for OpenRouter, "" = never).
    # Off by default: strict servers (OpenAI, DeepSeek's older reasoner) reject unknown message
    # fields with a 400, and most servers ignore echoed reasoning anyway (protocol.md §8.1).
    reasoning_field: str = ""
    # OpenAI proper rejects reasoning_effort on non-reasoning models (gpt-4o, …); switch it off there.
    send_reasoning_effort: bool = True
    # Fields this server was seen rejecting (learned per credential, see ``omission_for``): never
    # sent. For the max-tokens pair, the other spelling is sent instead.
    omit: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------------------
# Tool names
# --------------------------------------------------------------------------------------------

_VALID_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_INVALID_TOOL_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class ToolNames:
    """A reversible alias map for one request's tool names.

    OpenAI requires ``^[a-zA-Z0-9_-]{1,64}$``; Claude Code's MCP tools (``mcp__server__tool``)
    routinely exceed 64 characters. Valid names are not stored and map to themselves.
    """

    __slots__ = ("_down", "_up")

    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self._up: dict[str, str] = dict(aliases or {})
        self._down: dict[str, str] = {alias: name for name, alias in self._up.items()}

    def to_upstream(self, name: str) -> str:
        return self._up.get(name, name)

    def to_client(self, name: str) -> str:
        return self._down.get(name, name)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._up)


def _alias(name: str, taken: set[str]) -> str:
    # Keep the head (server) and the tail (tool) of long MCP names so the model still sees a
    # meaningful name; the hash makes the alias unique and deterministic across requests,
    # which keeps upstream prompt caches warm.
    clean = _INVALID_TOOL_CHARS.sub("_", name) or "tool"
    if len(clean) > 55:
        clean = clean[:20] + "_" + clean[-34:]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    size = 8
    alias = f"{clean}_{digest[:size]}"
    while alias in taken and size < 16:
        size += 2
        alias = f"{clean[: 63 - size]}_{digest[:size]}"
    return alias


def tool_names(body: dict[str, Any]) -> ToolNames:
    """Aliases for every tool name the request mentions (tools, history, tool_choice)."""
    names: list[str] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                names.append(tool["name"])
    for message in iter_messages(body):
        if message["role"] == "assistant" and isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    if isinstance(block.get("name"), str):
                        names.append(block["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        names.append(choice["name"])

    invalid = [name for name in names if not _VALID_TOOL_NAME.fullmatch(name)]
    if not invalid:
        return ToolNames()
    taken = {name for name in names if name not in invalid}
    aliases: dict[str, str] = {}
    for name in invalid:
        if name not in aliases:
            alias = _alias(name, taken)
            taken.add(alias)
            aliases[name] = alias
    return ToolNames(aliases)


# --------------------------------------------------------------------------------------------
# Request: Anthropic Messages -> Chat Completions
# --------------------------------------------------------------------------------------------

_MISSING_TOOL_RESULT = "Error: no result was provided for this tool call."
_USER_ID_OK = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _media_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """An image or document block as a Chat Completions content part (None if unsupported)."""
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    kind = source.get("type")
    if block.get("type") == "image":
        if kind == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type") or "image/png"
            url = f"data:{media_type};base64,{source['data']}"
            return {"type": "image_url", "image_url": {"url": url}}
        if kind == "url" and isinstance(source.get("url"), str):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
        return None  # file_id sources live in Anthropic's Files API; nothing to send.
    # document
    if kind == "base64" and isinstance(source.get("data"), str):
        media_type = source.get("media_type") or "application/pdf"
        if media_type == "application/pdf":
            title = block.get("title")
            return {
                "type": "file",
                "file": {
                    "file_data": f"data:application/pdf;base64,{source['data']}",
                    "filename": title if isinstance(title, str) and title else "document.pdf",
                },
            }
        return None
    text = None
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        inner = source.get("content")
        text = "\n\n".join(
            b["text"]
            for b in content_blocks(inner)
            if b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    elif kind == "url" and isinstance(source.get("url"), str):
        # Chat Completions file parts take inline data only; the URL at least tells the model.
        text = f"[document: {source['url']}]"
    if not text:
        return None
    title = block.get("title")
    if isinstance(title, str) and title:
        text = f"{title}\n\n{text}"
    return _text_part(text)


def _search_result_text(block: dict[str, Any]) -> str:
    head = "\n".join(str(block[k]) for k in ("title", "source") if block.get(k))
    body = "\n\n".join(
        b["text"]
        for b in content_blocks(block.get("content"))
        if b.get("type") == "text" and isinstance(b.get("text"), str)
    )
    return f"{head}\n\n{body}" if head and body else head or body


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return _text_part(text) if isinstance(text, str) and text else None
    if kind in ("image", "document"):
        return _media_part(block)
    if kind == "search_result":
        text = _search_result_text(block)
        return _text_part(text) if text else None
    return None  # thinking, server-tool results, container uploads…: nothing OpenAI can take


def _attachment_note(parts: list[dict[str, Any]]) -> str:
    images = sum(1 for p in parts if p["type"] == "image_url")
    if images == len(parts):
        what = "image" if images == 1 else f"{images} images"
    else:
        what = "attachment" if len(parts) == 1 else f"{len(parts)} attachments"
    return f"[{what} attached in the next message]"


def _tool_result(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A tool_result as (tool-message text, media parts that must travel in a user message)."""
    content = block.get("content")
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        text = content
    else:
        texts = []
        for inner in content_blocks(content):
            kind = inner.get("type")
            if kind == "text":
                if isinstance(inner.get("text"), str) and inner["text"]:
                    texts.append(inner["text"])
            elif kind in ("image", "document"):
                part = _media_part(inner)
                if part is None:
                    continue
                # Tool messages are text-only; a text document can stay inline.
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
            elif kind == "search_result":
                texts.append(_search_result_text(inner))
        text = "\n\n".join(texts)
    if not text and media:
        text = _attachment_note(media)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return text, media


def _append_user(out: list[dict[str, Any]], parts: list[dict[str, Any]]) -> None:
    # Anthropic merges consecutive same-role turns; strict chat templates (Mistral, Gemma…)
    # reject them ("roles must alternate"), so merge here as well.
    last = out[-1] if out else None
    if last is not None and last["role"] == "user":
        previous = last["content"]
        if isinstance(previous, str):
            previous = [_text_part(previous)]
        last["content"] = previous + parts
        return
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    else:
        out.append({"role": "user", "content": parts})


def _assistant_message(
    message: dict[str, Any], names: ToolNames
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for block in content_blocks(message.get("content")):
        kind = block.get("type")
        if kind == "text":
            if isinstance(block.get("text"), str) and block["text"]:
                texts.append(block["text"])
        elif kind == "tool_use":
            tool_input = block.get("input")
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": names.to_upstream(str(block.get("name") or "")),
                        "arguments": _dumps(tool_input if isinstance(tool_input, dict) else {}),
                    },
                }
            )
        elif kind == "thinking":
            # Only our own reasoning can go back upstream; Anthropic/Gemini thinking is opaque
            # to this model and its signatures mean nothing here.
            signature = block.get("signature")
            thinking = block.get("thinking")
            if (
                isinstance(signature, str)
                and signature.startswith(OPENAI_SIGNATURE_TAG)
                and isinstance(thinking, str)
                and thinking
            ):
                reasoning.append(thinking)
        # redacted_thinking, server_tool_use, web_search_tool_result, mcp_*: dropped.
    return texts, calls, reasoning


def _finish_assistant(
    msg: dict[str, Any], texts: list[str], reasoning: list[str], field: str
) -> None:
    # content: null for a tool-call-only turn. It is what the official SDKs send back when a
    # client echoes a response message, so every compat server handles it; "" is turned into
    # an empty text block by some Anthropic-backed routes ("text content blocks must be non-empty").
    msg["content"] = "\n\n".join(texts) if texts else None
    # DeepSeek (thinking + tools) wants the reasoning of a tool-call turn echoed back; without
    # tool calls it is noise, so we only send it there.
    if reasoning and field and msg.get("tool_calls"):
        msg[field] = "\n\n".join(reasoning)


def _convert_messages(
    body: dict[str, Any], options: OpenAIOptions, names: ToolNames
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    reasoning_field = "" if options.reasoning_field in options.omit else options.reasoning_field
    system = "\n\n".join(system_texts(body))
    if system:
        out.append({"role": "system", "content": system})

    # Chat Completions' ordering rule: an assistant message with tool_calls must be followed by
    # one tool message per call id before anything else. ``pending`` holds the ids still owed;
    # ``held`` holds user parts (e.g. mid-conversation system text) that must wait behind them.
    pending: list[str] = []
    held: list[dict[str, Any]] = []
    assistant: dict[str, Any] | None = None  # the last assistant message, while still mergeable
    assistant_texts: list[str] = []
    assistant_reasoning: list[str] = []

    def settle(results: dict[str, str]) -> None:
        nonlocal pending, held, assistant
        if assistant is not None:
            _finish_assistant(assistant, assistant_texts, assistant_reasoning, reasoning_field)
            assistant = None
        for call_id in pending:
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": results.get(call_id, _MISSING_TOOL_RESULT),
                }
            )
        pending = []
        if held:
            _append_user(out, held)
            held = []

    for message in iter_messages(body):
        role = message["role"]
        if role == "assistant":
            texts, calls, reasoning = _assistant_message(message, names)
            if not texts and not calls:
                continue  # thinking-only or server-tool-only turn: nothing to send
            if assistant is not None and not held:
                # Consecutive assistant turns are one turn to Anthropic: merge them.
                assistant_texts.extend(texts)
                assistant_reasoning.extend(reasoning)
                if calls:
                    assistant.setdefault("tool_calls", []).extend(calls)
                    pending.extend(call["id"] for call in calls)
                continue
            settle({})
            assistant = {"role": "assistant", "content": None}
            assistant_texts, assistant_reasoning = texts, reasoning
            if calls:
                assistant["tool_calls"] = calls
                pending = [call["id"] for call in calls]
            out.append(assistant)
        elif role == "system":
            # Many compat servers reject a system message after the first one, so the text
            # travels in a user turn, wrapped the way Claude Code wraps injected context.
            part = _text_part(system_message_text(message))
            if pending:
                held.append(part)
            else:
                settle({})
                _append_user(out, [part])
        elif role == "user":
            results: dict[str, str] = {}
            media: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            owed = set(pending)
            for block in content_blocks(message.get("content")):
                if block.get("type") == "tool_result":
                    call_id = str(block.get("tool_use_id") or "")
                    text, moved = _tool_result(block)
                    media.extend(moved)
                    if call_id in owed and call_id not in results:
                        results[call_id] = text
                    else:
                        # No matching tool call (or a duplicate): a tool message here would be
                        # rejected, so keep the content as plain text.
                        parts.append(_text_part(f"[tool result {call_id}]\n{text}"))
                else:
                    part = _user_part(block)
                    if part is not None:
                        parts.append(part)
            held.extend(media)
            held.extend(parts)
            settle(results)
    # A trailing assistant turn with tool calls gets placeholder results too: the request must
    # be valid, and the turn cannot be continued as a prefill anyway.
    settle({})
    return out


def _parameters(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    if "$schema" in schema:
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    if schema.get("type") == "object" and "properties" not in schema:
        # OpenAI (and vLLM's guided decoding) reject an object schema without properties.
        # Nested free-form objects are left alone: there the absence is meaningful.
        schema = {**schema, "properties": {}}
    return schema


def _convert_tools(body: dict[str, Any], names: ToolNames) -> list[dict[str, Any]]:
    tools = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue  # server tools (web_search_2025…, bash_2025…, …) have no OpenAI equivalent
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            continue
        function: dict[str, Any] = {"name": names.to_upstream(name)}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        function["parameters"] = _parameters(tool.get("input_schema"))
        tools.append({"type": "function", "function": function})
    return tools


def _reasoning_effort(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int | float):
            return "medium"
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if kind == "adaptive":
        config = body.get("output_config")
        effort = config.get("effort") if isinstance(config, dict) else None
        if effort in ("low", "medium", "high"):
            return effort
        # Older OpenAI-style servers only know low/medium/high.
        return "high" if effort in ("xhigh", "max") else "medium"
    return None


def build_request(
    body: dict[str, Any],
    *,
    upstream_model: str,
    stream: bool,
    options: OpenAIOptions,
    names: ToolNames,
) -> dict[str, Any]:
    """The Chat Completions request for an Anthropic Messages request body."""
    request: dict[str, Any] = {
        "model": upstream_model,
        "messages": _convert_messages(body, options, names),
    }
    tools = _convert_tools(body, names)
    if tools:
        # tool_choice / parallel_tool_calls without tools is a 400 on OpenAI.
        request["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "auto":
                request["tool_choice"] = "auto"
            elif kind == "any":
                request["tool_choice"] = "required"
            elif kind == "none":
                request["tool_choice"] = "none"
            elif kind == "tool" and isinstance(choice.get("name"), str):
                request["tool_choice"] = {
                    "type": "function",
                    "function": {"name": names.to_upstream(choice["name"])},
                }
            if (
                choice.get("disable_parallel_tool_use") is True
                and "parallel_tool_calls" not in options.omit
            ):
                request["parallel_tool_calls"] = False
    max_tokens = body.get("max_tokens")
    field = _max_tokens_field(options)
    if isinstance(max_tokens, int) and max_tokens > 0 and field:
        request[field] = max_tokens
    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        stops = [s for s in stops if isinstance(s, str) and s][:4]  # OpenAI allows at most 4
        if stops:
            request["stop"] = stops
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float) and not isinstance(body[key], bool):
            request[key] = body[key]
    if options.send_reasoning_effort and "reasoning_effort" not in options.omit:
        effort = _reasoning_effort(body)
        if effort:
            request["reasoning_effort"] = effort
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id and "user" not in options.omit:
        # Claude Code sends a JSON blob (device id, session id). A stable hash still gives the
        # upstream a per-user key for abuse tracking and cache routing without leaking the ids.
        if not _USER_ID_OK.fullmatch(user_id):
            user_id = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
        request["user"] = user_id
    if stream:
        request["stream"] = True
        if sends_usage_option(options):
            request["stream_options"] = {"include_usage": True}
    return request


def _max_tokens_field(options: OpenAIOptions) -> str:
    """The configured spelling, else the other one once the server refused it ("" = neither)."""
    other = _MAX_TOKENS_ALTERNATIVE.get(options.max_tokens_field, "max_tokens")
    for name in (options.max_tokens_field, other):
        if name not in options.omit:
            return name
    return ""


_MAX_TOKENS_ALTERNATIVE = {
    "max_tokens": "max_completion_tokens",
    "max_completion_tokens": "max_tokens",
}


def sends_usage_option(options: OpenAIOptions) -> bool:
    """Whether a stream request asks for usage (without it the provider estimates the prompt)."""
    return options.include_usage and "stream_options" not in options.omit


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Local count_tokens estimate over the request as it would be sent upstream."""
    request = build_request(
        body, upstream_model="", stream=False, options=OpenAIOptions(), names=tool_names(body)
    )
    return estimate_chat_tokens(request)


# --------------------------------------------------------------------------------------------
# Response: chat.completion -> Anthropic message
# --------------------------------------------------------------------------------------------

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


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    return 0


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


# --------------------------------------------------------------------------------------------
# Streaming: chat.completion.chunk -> Anthropic SSE events
# --------------------------------------------------------------------------------------------

_NONE, _THINKING, _TEXT, _TOOL = 0, 1, 2, 3


class _Call:
    """One upstream tool call, keyed by its tool_calls ``index`` (or id)."""

    __slots__ = ("closed", "id", "name", "parts", "started", "waiting")

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name: str | None = None
        self.parts: list[str] = []  # argument fragments (buffered before start, emitted after)
        self.started = False
        self.waiting = False
        self.closed = False


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# Fillers tried, in order, to finish a truncated JSON text (see _json_completion).
_STRING_ENDS = ('"', '\\"', '0"', '00"', '000"', '0000"')
_VALUE_ENDS = (
    "",
    "null",
    ":null",
    '"":null',
    "0",
    "ue",
    "rue",
    "e",
    "alse",
    "lse",
    "se",
    "ull",
    "ll",
    "l",
)


def _json_completion(text: str) -> str:
    """A suffix that turns a truncated JSON text into valid JSON ("" if none is found).

    Needed when a tool block must close before its arguments are complete (max_tokens, or
    the stream ending early): the fragments already went out and cannot be taken back, and
    the client parses their concatenation. Rare, so it may be slow.
    """
    stack: list[str] = []
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    closers = "".join(reversed(stack))
    # e.g. {"a":"x → "}   {"a → ":null}   {"a":1, → "":null}   {"a":tr → ue}   [1, → null]
    for string_end in _STRING_ENDS if in_string else ("",):
        for value_end in _VALUE_ENDS:
            suffix = string_end + value_end + closers
            if _is_json(text + suffix):
                return suffix
    return ""


class StreamTranslator:
    """Translate one Chat Completions stream into Anthropic SSE events, incrementally.

    Blocks open one at a time (indexes 0, 1, 2…). Tool-call arguments are forwarded as
    ``input_json_delta`` the moment they arrive. Robustness rules, in the order they matter:

    - A call opens its block once its name is known; fragments before that (id only, or
      arguments first) are buffered and flushed when the block starts.
    - A call whose ``index`` is missing is matched by id, else taken as the latest call; a
      repeated ``index`` with a different id is a new call (some servers send index 0 for all).
    - If another call starts while the open call's arguments are not yet complete JSON
      (interleaved fragments), the new call is buffered and started once the open one parses,
      or at the finish. So every block's arguments stay contiguous and parse as JSON.
    - Text or reasoning arriving while a call is open closes it. Fragments for a call whose
      block already closed are dropped: the block cannot reopen, and a second block with the
      same id would break the client's history.
    - A block closing with no arguments gets ``{}``; one closing on truncated JSON (max_tokens,
      early end) gets the shortest suffix that makes it parse.
    - Whitespace-only text is held until real text follows (never an empty/blank text block).
    """

    def __init__(self, *, model: str, names: ToolNames, input_tokens_estimate: int = 0) -> None:
        self._model = model
        self._names = names
        self._estimate = input_tokens_estimate
        self._started = False
        self._done = False
        self._open = _NONE
        self._index = -1  # index of the open block
        self._blocks = 0  # blocks emitted so far (= next index)
        self._call: _Call | None = None  # the open tool call
        self._calls: dict[Any, _Call] = {}
        self._order: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._last: _Call | None = None
        self._ids: set[str] = set()  # tool_use ids emitted
        self._waiting = False
        self._space = ""
        self._tools = False
        self._chars = 0
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    # -- public ---------------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._done or not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise TranslatedStreamError(parse_error(200, chunk))
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(self._message_start())
        choices = chunk.get("choices")
        if choices and isinstance(choices, list):
            choice = choices[0]
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict) and delta:
                    self._delta(delta, events)
                finish = choice.get("finish_reason")
                if finish:
                    if finish == "error":
                        raise TranslatedStreamError(
                            ErrorInfo(502, "api_error", "upstream reported an error mid-stream")
                        )
                    self._finish = str(finish)
                    self._close_all(events)
        usage = chunk.get("usage")
        if usage and isinstance(usage, dict):
            self._usage = usage
            if self._finish is not None and not choices:
                # The include_usage chunk (choices: []) after the finish: nothing else follows.
                self._end(events)
        return events

    def finish(self) -> list[Event]:
        if self._done:
            return []
        if not self._started:
            raise TranslatedStreamError(
                ErrorInfo(502, "api_error", "upstream returned an empty stream")
            )
        # A clean end without finish_reason is treated as complete: a dropped connection
        # surfaces as a transport error in the caller, not as a clean EOF.
        events: list[Event] = []
        self._close_all(events)
        self._end(events)
        return events

    # -- deltas ---------------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        # Servers name the reasoning field differently; some send both with the same text.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self._thinking(
                reasoning if isinstance(reasoning, str) else _text_value(reasoning), events
            )
        content = delta.get("content")
        if content:
            self._text(content if isinstance(content, str) else _text_value(content), events)
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_fragment(call, events)
        elif isinstance(delta.get("function_call"), dict):  # legacy single function call
            self._tool_fragment(
                {"index": "function_call", "function": delta["function_call"]}, events
            )

    def _thinking(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open != _THINKING:
            self._close(events)
            self._start({"type": "thinking", "thinking": "", "signature": ""}, _THINKING, events)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "thinking_delta", "thinking": text}))

    def _text(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open != _TEXT:
            if text.isspace():
                # Anthropic rejects blank text blocks when the history is replayed; hold it.
                self._space += text
                return
            self._close(events)
            self._start({"type": "text", "text": ""}, _TEXT, events)
            if self._space:
                text = self._space + text
                self._space = ""
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "text_delta", "text": text}))

    def _find_call(self, key: Any, call_id: str | None) -> _Call:
        if not isinstance(key, int | str):
            key = None
        call = None
        if key is not None:
            call = self._calls.get(key)
            if call is not None and call_id and call.id and call_id != call.id:
                # Same index, different id: some servers send index 0 for every call.
                call = self._by_id.get(call_id)
                if call is not None:
                    self._calls[key] = call
        elif call_id:
            call = self._by_id.get(call_id)
            key = ("id", call_id)
        else:
            call = self._last  # an index-less continuation fragment
            key = ("seq", len(self._order))
        if call is None:
            call = _Call(call_id)
            self._calls[key] = call
            self._order.append(call)
        if call_id:
            if call.id is None and not call.started:
                call.id = call_id
            self._by_id.setdefault(call_id, call)
        self._last = call
        return call

    def _tool_fragment(self, fragment: dict[str, Any], events: list[Event]) -> None:
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = fragment.get("id")
        call = self._find_call(
            fragment.get("index"), call_id if isinstance(call_id, str) and call_id else None
        )
        if call.closed:
            return
        name = function.get("name")
        if name and isinstance(name, str) and call.name is None:
            call.name = name
        arguments = _arguments_text(function.get("arguments"))
        if call is self._call:
            if arguments:
                self._emit_arguments(arguments, events)
                if self._waiting:
                    self._advance(events)
            return
        if arguments:
            call.parts.append(arguments)
        if call.started or call.waiting or call.name is None:
            return
        if self._open == _TOOL and not self._call_complete():
            # Interleaved calls: keep this one until the open call's JSON is complete.
            call.waiting = True
            self._waiting = True
            return
        self._close(events)
        self._start_call(call, events)

    def _emit_arguments(self, text: str, events: list[Event]) -> None:
        assert self._call is not None
        self._call.parts.append(text)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "input_json_delta", "partial_json": text}))

    def _call_complete(self) -> bool:
        assert self._call is not None
        parts = self._call.parts
        return bool(parts) and _is_json("".join(parts))

    def _advance(self, events: list[Event]) -> None:
        # Start waiting calls (in arrival order) as soon as the open one's JSON is complete.
        while self._open == _TOOL and self._call_complete():
            nxt = next((c for c in self._order if c.waiting), None)
            if nxt is None:
                self._waiting = False
                return
            self._close(events)
            self._start_call(nxt, events)

    # -- blocks ---------------------------------------------------------------------------

    def _start(self, block: dict[str, Any], kind: int, events: list[Event]) -> None:
        self._index = self._blocks
        self._blocks += 1
        self._open = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _start_call(self, call: _Call, events: list[Event]) -> None:
        call.started = True
        call.waiting = False
        self._tools = True
        name = call.name or f"tool_{self._order.index(call)}"
        block = {
            "type": "tool_use",
            "id": _unique_id(call.id, self._ids),
            "name": self._names.to_client(name),
            "input": {},
        }
        self._start(block, _TOOL, events)
        self._call = call
        buffered = "".join(call.parts)
        call.parts = []
        if buffered:
            self._emit_arguments(buffered, events)

    def _close(self, events: list[Event]) -> None:
        kind = self._open
        if kind == _NONE:
            return
        index = self._index
        if kind == _THINKING:
            events.append(
                _block_delta(index, {"type": "signature_delta", "signature": OPENAI_SIGNATURE_TAG})
            )
        elif kind == _TOOL:
            call = self._call
            assert call is not None
            text = "".join(call.parts)
            if not text.strip():
                self._emit_arguments("{}", events)
            elif not _is_json(text):
                suffix = _json_completion(text)
                if suffix:
                    self._emit_arguments(suffix, events)
            call.closed = True
            call.parts = []
            self._call = None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        self._open = _NONE

    def _close_all(self, events: list[Event]) -> None:
        self._close(events)
        # Calls still buffered (interleaved, or never named) go out whole, in arrival order.
        for call in self._order:
            if not call.started:
                self._start_call(call, events)
                self._close(events)
        self._waiting = False

    # -- message --------------------------------------------------------------------------

    def _message_start(self) -> Event:
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": new_message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _message_usage(
                        {
                            "input_tokens": self._estimate,
                            "output_tokens": 0,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        }
                    ),
                },
            },
        )

    def _end(self, events: list[Event]) -> None:
        stop_reason = _stop_reason(self._finish, self._tools)
        if stop_reason == "refusal" and self._blocks == 0:
            self._start({"type": "text", "text": ""}, _TEXT, events)
            self._text(_FILTERED_TEXT, events)
            self._close(events)
        usage = _usage(self._usage, self._estimate, _output_estimate(self._chars))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._done = True


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

_CONTEXT_PHRASES = (
    "maximum context length",
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the available context size",
    "exceed_context_size",
    "exceeds the maximum number of tokens",
)
_MAXIMUM_PATTERNS = (
    re.compile(r"maximum context length is (?:about )?([\d,]+)"),
    re.compile(r"context length of (?:only )?([\d,]+)"),
    re.compile(r"context (?:window|size|limit)(?: is| of)? ([\d,]+)"),
    re.compile(r"[\d,]+ tokens? > ([\d,]+)"),
    re.compile(r"maximum number of tokens allowed \(([\d,]+)\)"),
    re.compile(r"([\d,]+) maximum context length"),
)
_PROMPT_PATTERNS = (
    re.compile(r"\(([\d,]+) (?:in the messages|of text input)"),
    re.compile(r"has ([\d,]+) input tokens"),
    re.compile(r"resulted in ([\d,]+) tokens"),
    re.compile(r"requested (?:about )?([\d,]+) tokens"),
    re.compile(r"([\d,]+) tokens? > [\d,]+"),
    re.compile(r"keep the first ([\d,]+) tokens"),
    re.compile(r"input token count \(([\d,]+)\)"),
    re.compile(r"prompt contains ([\d,]+) tokens"),
)
_COMPLETION_PATTERNS = (
    re.compile(r"([\d,]+) in the (?:completion|output)"),
    re.compile(r"max_(?:completion_)?tokens'? is too large: ([\d,]+)"),
)
_RETRY_PATTERN = re.compile(
    r"(?:try again|retry) (?:in|after) (?:about )?((?:\d+(?:\.\d+)?(?:ms|h|m|s)?)+)(?: ?(seconds?|secs?))?"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")
# Google's OpenAI-compatible endpoint reports status names.
_STATUS_NAMES = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if not match:
        return None
    digits = match.group(1).replace(",", "")
    return int(digits) if digits.isdigit() else None


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        value = _number(pattern, text)
        if value:
            return value
    return None


def _context_message(message: str, error: dict[str, Any]) -> str:
    low = message.lower()
    maximum = _first_number(_MAXIMUM_PATTERNS, low) or _int(error.get("n_ctx")) or None
    prompt = _first_number(_PROMPT_PATTERNS, low) or _int(error.get("n_prompt_tokens")) or None
    completion = _first_number(_COMPLETION_PATTERNS, low)
    if prompt and maximum and completion and prompt <= maximum:
        # The messages fit; messages + max_tokens do not. Anthropic's wording for that case
        # makes Claude Code lower max_tokens instead of compacting.
        return f"input length and `max_tokens` exceed context limit: {prompt} + {completion} > {maximum}"
    return prompt_too_long_message(prompt, maximum)


def _retry_after(message: str) -> float | None:
    match = _RETRY_PATTERN.search(message.lower())
    if not match:
        return None
    total = 0.0
    for amount, unit in _DURATION_PART.findall(match.group(1)):
        value = float(amount)
        total += {"ms": value / 1000, "m": value * 60, "h": value * 3600}.get(unit, value)
    return total if total > 0 else None


def _status_from_code(code: Any, status_name: Any) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)
    if isinstance(status_name, str) and status_name in _STATUS_NAMES:
        return _STATUS_NAMES[status_name]
    if code in ("rate_limit_exceeded", "insufficient_quota"):
        return 429
    return 500


def _error_fields(
    body: bytes | str | dict[str, Any] | list[Any] | None,
) -> tuple[str, dict[str, Any]]:
    """(message, error object) from whatever an upstream sent."""
    data: Any = body
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        text = data.strip()
        try:
            data = json.loads(text) if text[:1] in ("{", "[") else text
        except ValueError:
            data = text
        if isinstance(data, str):
            return data, {}
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), {})
    if not isinstance(data, dict):
        return "", {}
    error = data.get("error")
    if isinstance(error, dict):
        obj = error
    elif isinstance(error, str):
        obj = {**data, "message": error}
    else:
        obj = data
    message = obj.get("message") or obj.get("msg")
    if not message:
        detail = obj.get("detail")
        if isinstance(detail, list):  # FastAPI-style validation errors (vLLM, LM Studio…)
            message = "; ".join(
                str(d.get("msg")) if isinstance(d, dict) else str(d) for d in detail
            )
        elif detail:
            message = detail
    message = message if isinstance(message, str) else _dumps(message) if message else ""
    metadata = obj.get("metadata")
    raw = metadata.get("raw") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw and raw not in message:
        # OpenRouter wraps the provider's real error as "Provider returned error" + raw.
        message = f"{message}: {raw}" if message else raw
    return message, obj


def parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    """An upstream error mapped to Anthropic's vocabulary. Never raises.

    ``status`` below 400 (an error inside a 200 stream or body) is derived from the body's code.
    """
    try:
        return _parse_error(status, body)
    except Exception:  # garbage in must never become a 500 in our own error path
        status = status if isinstance(status, int) and status >= 400 else 500
        return ErrorInfo(status, error_type_for_status(status), f"upstream returned HTTP {status}")


def _parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    message, error = _error_fields(body)
    message = " ".join(message.split())[:2000]
    code = error.get("code")
    if not isinstance(status, int) or status < 400:
        status = _status_from_code(code, error.get("status"))
    code_text = str(code).lower() if code is not None else ""
    kind = str(error.get("type") or "").lower()
    low = message.lower()

    if status != 429 and (
        code_text in ("context_length_exceeded", "string_above_max_length")
        or "exceed_context_size" in kind
        or any(phrase in low for phrase in _CONTEXT_PHRASES)
    ):
        # Claude Code reacts to this exact wording by compacting; never a 5xx (retried forever).
        return ErrorInfo(400, "invalid_request_error", _context_message(message, error))
    if not message:
        message = f"upstream returned HTTP {status}"
    retry_after = _retry_after(message) if status == 429 or status >= 500 else None
    if status == 429:
        if "insufficient_quota" in (code_text, kind) and "quota" not in low:
            message = f"upstream quota exhausted (insufficient_quota): {message}"
        return ErrorInfo(429, "rate_limit_error", message, retry_after)
    if (
        status >= 500
        and status != 529
        and ("overloaded" in kind or "overloaded" in code_text or "overloaded" in low)
    ):
        # 503 alone is usually a gateway/maintenance problem (api_error); an explicit
        # "overloaded" maps to 529 so clients apply their overload handling (backoff, fallback model).
        return ErrorInfo(529, "overloaded_error", message, retry_after)
    return ErrorInfo(status, error_type_for_status(status), message, retry_after)


# --------------------------------------------------------------------------------------------
# Fields a server refuses
# --------------------------------------------------------------------------------------------

# Fields the proxy adds on its own initiative and can go without (or, for the max-tokens pair,
# spell the other way). A field the client chose (temperature, stop, tools…) is never dropped:
# a server refusing it gets its 400 passed back to the client.
OMITTABLE = frozenset(
    {
        "reasoning_content",
        "reasoning",
        "reasoning_effort",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "parallel_tool_calls",
        "user",
    }
)
_REASONING_FIELDS = frozenset({"reasoning_content", "reasoning"})
_TOP_LEVEL_OMITTABLE = OMITTABLE - _REASONING_FIELDS


@dataclass(frozen=True, slots=True)
class RejectedField:
    """A field an upstream named as not allowed, with where it sat: ``("messages", "2",
    "reasoning_content")`` or ``("reasoning_effort",)`` (only the name when the server said no
    more)."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path[-1]


_NAME = r"[A-Za-z_][\w.\[\]-]*"
# Each pattern captures the refused field (possibly a path such as messages[2].reasoning_content);
# some also capture a location the server reported separately.
_REJECTION_PATTERNS = (
    # OpenAI: "Unrecognized request argument supplied: reasoning_effort" (also a comma list).
    re.compile(r"unrecognized request arguments? supplied:\s*(?P<list>[\w, ]+)", re.I),
    # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. …"
    # and "Unsupported value: 'stream_options' …", "Unknown parameter: 'messages[2].reasoning'."
    re.compile(
        rf"(?:unsupported|unknown|unrecognized) (?:parameter|value|field|argument)s?:?\s*"
        rf"[`'\"](?P<name>{_NAME})[`'\"]",
        re.I,
    ),
    # OpenAI's JSON-schema validator: "Additional properties are not allowed ('reasoning_content'
    # was unexpected) - 'messages[2]'" (a list with "were unexpected").
    re.compile(
        r"additional properties are not allowed \((?P<list>[^)]*?)\s*(?:was|were) unexpected\)"
        r"(?:\s*-\s*'(?P<where>[^']*)')?",
        re.I,
    ),
    # Groq: "'messages.2' : property 'reasoning_content' is unsupported"
    re.compile(
        rf"(?:'(?P<where>[^']*)'\s*:\s*)?property [`'\"](?P<name>{_NAME})[`'\"] is "
        r"(?:unsupported|not supported|not allowed)",
        re.I,
    ),
    # Go servers: json: unknown field "reasoning_content"
    re.compile(rf"unknown field [`'\"](?P<name>{_NAME})[`'\"]", re.I),
    # DeepSeek's reasoner: "… Please remove the reasoning_content from your message …"
    re.compile(rf"please remove (?:the )?[`'\"]?(?P<name>{_NAME}?)[`'\"]? (?:field )?from", re.I),
    # "'reasoning_effort' is not supported", "reasoning_effort is not allowed", "… not permitted"
    re.compile(
        rf"[`'\"](?P<name>{_NAME})[`'\"] (?:parameter |field )?is (?:not supported|not allowed|"
        r"not permitted|unsupported|unexpected)",
        re.I,
    ),
)
# pydantic (vLLM, SGLang, LiteLLM, Mistral) as Python reprs inside a message string:
# [{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), 'msg': 'Extra inputs …'}]
_PYDANTIC_REPR = re.compile(r"'type':\s*'extra_forbidden',\s*'loc':\s*[(\[](?P<loc>[^)\]]*)[)\]]")
_PATH_SPLIT = re.compile(r"[.\[\]]+")
_CODES_NAMING_PARAM = frozenset({"unsupported_parameter", "unknown_parameter", "unknown_field"})


def _split_path(text: str) -> tuple[str, ...]:
    return tuple(part for part in _PATH_SPLIT.split(text.strip().strip("'\"`")) if part)


def _walk(value: Any, found: list[RejectedField], strings: list[str]) -> None:
    if isinstance(value, str):
        strings.append(value)
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            # A JSON document inside a message string (vLLM, OpenRouter's metadata.raw).
            try:
                _walk(json.loads(text), found, strings)
            except ValueError:
                pass
    elif isinstance(value, list):
        for item in value:
            _walk(item, found, strings)
    elif isinstance(value, dict):
        loc = value.get("loc")
        if value.get("type") == "extra_forbidden" and isinstance(loc, list):
            path = tuple(str(part) for part in loc if part != "body")
            if path:
                found.append(RejectedField(path))
        param = value.get("param")
        if value.get("code") in _CODES_NAMING_PARAM and isinstance(param, str) and param:
            path = _split_path(param)
            if path:
                found.append(RejectedField(path))
        for item in value.values():
            _walk(item, found, strings)


def rejected_fields(body: bytes | str | dict[str, Any] | list[Any] | None) -> list[RejectedField]:
    """Every field an upstream's 4xx body says is not allowed, in the order it names them.

    Only phrasings that refuse a field count; a message that merely mentions one ("'max_tokens' is
    too large", DeepSeek's "Missing reasoning_content field") names nothing. Never raises.
    """
    data: Any = body
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", "replace")
    found: list[RejectedField] = []
    strings: list[str] = []
    if isinstance(data, str):
        _walk(data, found, strings)  # parses the JSON if it is JSON
    else:
        _walk(data, found, strings)
    for text in strings:
        for match in _PYDANTIC_REPR.finditer(text):
            parts = [p.strip().strip("'\"") for p in match.group("loc").split(",")]
            path = tuple(p for p in parts if p and p != "body")
            if path:
                found.append(RejectedField(path))
        for pattern in _REJECTION_PATTERNS:
            for match in pattern.finditer(text):
                groups = match.groupdict()
                where = _split_path(groups.get("where") or "")
                if groups.get("list") is not None:
                    names = [n.strip().strip("'\"[]` ") for n in groups["list"].split(",")]
                else:
                    names = [groups.get("name") or ""]
                for name in names:
                    path = _split_path(name)
                    if path:
                        found.append(RejectedField(where + path))
    unique: list[RejectedField] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def omission_for(
    rejected: list[RejectedField], payload: dict[str, Any], options: OpenAIOptions
) -> str | None:
    """The proxy-added field to go without after ``rejected``, or None when the server refused
    something the client asked for (or something this payload did not carry).

    Only fields this payload actually carried, at the place the proxy puts them, qualify: the
    reasoning field on a message, the others at the top level. A field of the same name inside a
    tool schema is the client's.
    """
    for item in rejected:
        top, name = item.path[0], item.name
        if name in _REASONING_FIELDS and top in ("messages", name):
            messages = payload.get("messages")
            if not isinstance(messages, list) or not any(
                isinstance(m, dict) and name in m for m in messages
            ):
                continue
            candidate = name
        elif top in _TOP_LEVEL_OMITTABLE and top in payload:
            # The knob itself, or a key inside it ("stream_options.include_usage"): it all goes.
            candidate = top
        else:
            continue
        if candidate not in options.omit:
            return candidate
    return None
