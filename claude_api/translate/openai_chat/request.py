"""Request: Anthropic Messages -> Chat Completions (``build_request``) and the per-upstream knobs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from claude_api.translate.common import (
    OPENAI_SIGNATURE_TAG,
    content_blocks,
    iter_messages,
    system_message_text,
    system_texts,
)
from claude_api.translate.openai_chat.names import ToolNames


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
