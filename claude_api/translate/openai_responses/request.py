"""Request: Anthropic Messages -> an OpenAI Responses request (``build_request``).

The conversation becomes ``input`` items in order: ``message`` items (user ``input_text`` /
``input_image`` / ``input_file``, assistant ``output_text``), ``developer`` messages for
system text, ``reasoning`` items carrying the encrypted reasoning an earlier turn returned,
``function_call`` and ``function_call_output`` pairs. ``store`` is always false: nothing is
kept server-side, so any worker and any credential of the same backend can continue a
conversation from what the client sends back.

Where the reference mapping (subscription-accounts.md §4.7) loses something, this one keeps it:
- ``is_error`` tool results stay visible to the model ("Error: …"), not silently dropped;
- a mid-conversation system message is a ``developer`` message at its place, not user text;
- image and PDF URLs are sent as URLs (``image_url`` / ``file_url``), not dropped;
- ``max_tokens`` becomes ``max_output_tokens`` where the backend takes it (not on Codex);
- ``stop_sequences``, which Responses lacks, are enforced on the way back (see stream.py);
- a tool call without a result gets one (the backend refuses an unanswered ``call_id``), and a
  result without a call becomes plain text instead of a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from claude_api.translate.common import (
    content_blocks,
    iter_messages,
    system_message_text,
    system_texts,
    text_of,
)
from claude_api.translate.openai_chat.request import _parameters, _reasoning_effort
from claude_api.translate.openai_responses.names import CallIds, ToolNames, read_signature

ENCRYPTED_REASONING = "reasoning.encrypted_content"
MISSING_TOOL_RESULT = "Error: no result was provided for this tool call."
# The Responses API refuses max_output_tokens below 16.
MIN_OUTPUT_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ResponsesOptions:
    """What differs between the two backends that speak Responses."""

    # The ChatGPT Codex backend: system text as a developer message with empty instructions (it
    # has refused instructions other than its own), no max_output_tokens and no sampling
    # parameters (it answers 400 "Unsupported parameter"), reasoning always requested back.
    codex: bool = False
    stream: bool = True
    # A stable key for the conversation (a hash of the client's session): the backend routes
    # requests with the same key to the same prompt cache.
    prompt_cache_key: str = ""
    # The credential the request goes to (names.reasoning_signature): reasoning another
    # credential issued is left out, since this backend cannot verify it.
    origin: str = ""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encrypted_reasoning(signature: Any, origin: str = "") -> str | None:
    """The encrypted reasoning inside a thinking block's signature, if we produced it and (when
    ``origin`` is given and the signature names one) the same credential issued it."""
    read = read_signature(signature)
    if read is None:
        return None
    issued_by, encrypted = read
    if origin and issued_by and issued_by != origin:
        return None
    return encrypted


def _media_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """An image or document block as a Responses input part (None if nothing can be sent)."""
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    kind = source.get("type")
    if block.get("type") == "image":
        if kind == "base64" and isinstance(source.get("data"), str):
            media_type = source.get("media_type") or "image/png"
            return {
                "type": "input_image",
                "image_url": f"data:{media_type};base64,{source['data']}",
                "detail": "auto",
            }
        if kind == "url" and isinstance(source.get("url"), str):
            return {"type": "input_image", "image_url": source["url"], "detail": "auto"}
        return None  # file_id sources live in Anthropic's Files API
    title = block.get("title")
    filename = title if isinstance(title, str) and title else "document.pdf"
    if kind == "base64" and isinstance(source.get("data"), str):
        if (source.get("media_type") or "application/pdf") != "application/pdf":
            return None
        return {
            "type": "input_file",
            "filename": filename,
            "file_data": f"data:application/pdf;base64,{source['data']}",
        }
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "input_file", "file_url": source["url"]}
    text = None
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        text = text_of(source.get("content"))
    if not text:
        return None
    if isinstance(title, str) and title:
        text = f"{title}\n\n{text}"
    return {"type": "input_text", "text": text}


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"type": "input_text", "text": text} if isinstance(text, str) and text else None
    if kind in ("image", "document"):
        return _media_part(block)
    if kind == "search_result":
        text = text_of(block.get("content"))
        head = "\n".join(str(block[k]) for k in ("title", "source") if block.get(k))
        text = f"{head}\n\n{text}" if head and text else head or text
        return {"type": "input_text", "text": text} if text else None
    return None


def _tool_output(block: dict[str, Any]) -> str | list[dict[str, Any]]:
    """A tool_result's content: a string, or input parts when it carries images or files."""
    content = block.get("content")
    error = block.get("is_error") is True
    if isinstance(content, str) or content is None:
        text = content or ""
        # Responses has no error flag on a tool output: say it in the text, as Claude sees it.
        return (f"Error: {text}" if text else "Error") if error else text
    parts = [part for inner in content_blocks(content) if (part := _user_part(inner))]
    if error:
        parts.insert(0, {"type": "input_text", "text": "Error:"})
    if all(part["type"] == "input_text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


class _Input:
    """Builds the ``input`` list, keeping every function_call answered exactly once."""

    def __init__(self, names: ToolNames, ids: CallIds, origin: str = "") -> None:
        self.items: list[dict[str, Any]] = []
        self._origin = origin
        self._names = names
        self._ids = ids
        self._parts: list[dict[str, Any]] = []
        self._role = ""
        self._open_calls: list[str] = []  # call_ids of the last assistant turn, unanswered
        self._calls: set[str] = set()

    def _flush(self) -> None:
        if self._parts:
            self.items.append({"type": "message", "role": self._role, "content": self._parts})
        self._parts = []

    def _part(self, role: str, part: dict[str, Any]) -> None:
        if self._role != role:
            self._flush()
            self._role = role
        self._parts.append(part)

    def developer(self, text: str) -> None:
        self._flush()
        self._role = ""
        self.items.append(
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": text}],
            }
        )

    def _answer_open_calls(self) -> None:
        # The backend refuses a function_call without its output (400 "No tool output found").
        for call_id in self._open_calls:
            self.items.append(
                {"type": "function_call_output", "call_id": call_id, "output": MISSING_TOOL_RESULT}
            )
        self._open_calls = []

    def user(self, content: Any) -> None:
        blocks = content_blocks(content)
        answered: set[int] = set()
        for position, block in enumerate(blocks):
            if block.get("type") != "tool_result":
                continue
            raw = block.get("tool_use_id")
            call_id = self._ids.to_upstream(raw) if isinstance(raw, str) else ""
            if call_id in self._open_calls:
                self._open_calls.remove(call_id)
                answered.add(position)
                self.items.append(
                    {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": _tool_output(block),
                    }
                )
        self._answer_open_calls()
        for position, block in enumerate(blocks):
            if position in answered:
                continue
            if block.get("type") == "tool_result":
                # A result for no open call: the backend would refuse it (400 "No tool call
                # found for function call output"); the model still gets to read it.
                output = _tool_output(block)
                text = output if isinstance(output, str) else text_of(block.get("content"))
                label = block.get("tool_use_id")
                self._part("user", {"type": "input_text", "text": f"[tool result {label}]\n{text}"})
                continue
            part = _user_part(block)
            if part is not None:
                self._part("user", part)
        self._flush()

    def assistant(self, content: Any) -> None:
        self._answer_open_calls()
        for block in content_blocks(content):
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if isinstance(text, str) and text:
                    self._part("assistant", {"type": "output_text", "text": text})
            elif kind == "thinking":
                encrypted = encrypted_reasoning(block.get("signature"), self._origin)
                if encrypted is None:
                    # Another family's reasoning, or another credential's: this backend cannot
                    # verify it (and refuses the whole request when it is sent).
                    continue
                self._flush()
                self._role = ""
                self.items.append(
                    {"type": "reasoning", "summary": [], "encrypted_content": encrypted}
                )
            elif kind == "tool_use":
                raw = block.get("id")
                name = block.get("name")
                if not isinstance(raw, str) or not raw or not isinstance(name, str):
                    continue
                call_id = self._ids.to_upstream(raw)
                if call_id in self._calls:
                    continue  # a repeated id: the backend refuses duplicates
                self._flush()
                self._role = ""
                tool_input = block.get("input")
                self.items.append(
                    {
                        "type": "function_call",
                        "call_id": call_id,
                        "name": self._names.to_upstream(name),
                        "arguments": _dumps(tool_input if isinstance(tool_input, dict) else {}),
                    }
                )
                self._calls.add(call_id)
                self._open_calls.append(call_id)
            # redacted_thinking, server tool blocks: nothing this backend can take
        self._flush()

    def finish(self) -> list[dict[str, Any]]:
        self._flush()
        self._answer_open_calls()
        return self.items


def _system_text(body: dict[str, Any]) -> str:
    return "\n\n".join(system_texts(body))


def _input(
    body: dict[str, Any], names: ToolNames, ids: CallIds, *, codex: bool, origin: str
) -> list[Any]:
    builder = _Input(names, ids, origin)
    system = _system_text(body)
    if system and codex:
        builder.developer(system)
    for message in iter_messages(body):
        role = message["role"]
        if role == "system":
            builder.developer(system_message_text(message))
        elif role == "assistant":
            builder.assistant(message.get("content"))
        else:
            builder.user(message.get("content"))
    return builder.finish()


def is_web_search(tool: Any) -> bool:
    return isinstance(tool, dict) and str(tool.get("type") or "").startswith("web_search_")


def _web_search(tool: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's server web search as the Responses hosted one (blocked_domains and max_uses
    have no equivalent)."""
    item: dict[str, Any] = {"type": "web_search"}
    domains = tool.get("allowed_domains")
    if isinstance(domains, list) and domains:
        item["filters"] = {"allowed_domains": [d for d in domains if isinstance(d, str)]}
    location = tool.get("user_location")
    if isinstance(location, dict):
        fields = ("city", "region", "country", "timezone")
        item["user_location"] = {"type": "approximate"} | {
            k: location[k] for k in fields if isinstance(location.get(k), str)
        }
    return item


def _tools(body: dict[str, Any], names: ToolNames) -> list[dict[str, Any]]:
    tools = []
    for tool in body.get("tools") or ():
        if is_web_search(tool):
            tools.append(_web_search(tool))
            continue
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue  # other Anthropic server tools (bash_2025…, code execution): not offered
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            continue
        item: dict[str, Any] = {"type": "function", "name": names.to_upstream(name)}
        if isinstance(tool.get("description"), str) and tool["description"]:
            item["description"] = tool["description"]
        item["parameters"] = _parameters(tool.get("input_schema"))
        # Claude's schemas are not written for OpenAI's strict mode (all properties required,
        # additionalProperties false); strict would refuse most of them.
        item["strict"] = False
        tools.append(item)
    return tools


def _tool_choice(choice: Any, names: ToolNames, body: dict[str, Any]) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and any(
        is_web_search(tool) and tool.get("name") == choice.get("name")
        for tool in body.get("tools") or ()
    ):
        return {"type": "web_search"}
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "name": names.to_upstream(choice["name"])}
    return "auto"


def build_request(
    body: dict[str, Any],
    *,
    upstream_model: str,
    options: ResponsesOptions,
    names: ToolNames,
    ids: CallIds,
) -> dict[str, Any]:
    """The Responses request for an Anthropic Messages request body."""
    codex = options.codex
    request: dict[str, Any] = {"model": upstream_model}
    system = _system_text(body)
    request["instructions"] = "" if codex else system
    if not codex and not system:
        del request["instructions"]
    request["input"] = _input(body, names, ids, codex=codex, origin=options.origin)
    tools = _tools(body, names)
    if tools:
        # tool_choice / parallel_tool_calls without tools are refused.
        request["tools"] = tools
        choice = body.get("tool_choice")
        request["tool_choice"] = _tool_choice(choice, names, body)
        disable = isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True
        request["parallel_tool_calls"] = not disable
    effort = _reasoning_effort(body)
    thinking = body.get("thinking")
    display = thinking.get("display") if isinstance(thinking, dict) else None
    if codex and isinstance(thinking, dict) and thinking.get("type") == "disabled":
        # Codex models always reason; "no thinking" asks for the least of it (every one of them
        # takes "low"), with nothing to show.
        request["reasoning"] = {"effort": "low"}
    elif effort:
        reasoning: dict[str, Any] = {"effort": effort}
        if display != "omitted":
            # Summaries are what becomes visible thinking; the full reasoning stays encrypted.
            reasoning["summary"] = "auto"
        request["reasoning"] = reasoning
    if effort or codex:
        # Codex models always reason: ask for it back so later turns can carry it.
        request["include"] = [ENCRYPTED_REASONING]
    if not codex:
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
            request["max_output_tokens"] = max(max_tokens, MIN_OUTPUT_TOKENS)
        if not effort:
            # Reasoning models refuse sampling parameters; without thinking the client chose them.
            for key in ("temperature", "top_p"):
                value = body.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    request[key] = value
    if options.prompt_cache_key:
        request["prompt_cache_key"] = options.prompt_cache_key
    request["store"] = False
    request["stream"] = options.stream
    return request


def stop_sequences(body: dict[str, Any]) -> tuple[str, ...]:
    """The client's stop sequences (Responses has none; the stream translator applies them)."""
    stops = body.get("stop_sequences")
    if not isinstance(stops, list):
        return ()
    return tuple(dict.fromkeys(s for s in stops if isinstance(s, str) and s))
