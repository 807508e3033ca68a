"""Anthropic Messages ⇄ Google Gemini ``generateContent`` (Generative Language API v1beta).

Pure translation: dicts in, dicts out, no I/O. The provider layer calls, per request::

    names = tool_name_map(body)                      # sanitised Gemini name -> client name
    payload = build_request(body)                    # POST …/models/<m>:generateContent
    # on a 400 where is_schema_rejection(parse_error(...)): retry once with
    payload = build_request(body, schema_mode="parameters")
    message = translate_response(data, model=body["model"], tool_names=names,
                                 stop_sequences=body.get("stop_sequences"))
    # or, for :streamGenerateContent?alt=sse
    stream = StreamTranslator(model=…, tool_names=names, stop_sequences=…, input_tokens_estimate=…)
    for chunk in sse_json_objects: yield from stream.feed(chunk)
    yield from stream.finish()

Thought signatures travel statelessly through the client: a Gemini ``thoughtSignature`` comes
back to the client as a thinking block whose ``signature`` is ``"gemini." + <signature>``, and
``build_request`` puts it back on the Gemini part it belongs to. See ``_ModelTurn`` and
``StreamTranslator`` for where each signature lands.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from http import HTTPStatus
from typing import Any

import orjson

from claude_api.translate.common import (
    GEMINI_SIGNATURE_TAG,
    ErrorInfo,
    Event,
    TranslatedStreamError,
    content_blocks,
    error_type_for_status,
    iter_messages,
    new_message_id,
    prompt_too_long_message,
    sanitize_tool_use_id,
    system_message_text,
    system_texts,
    tool_names_by_id,
)
from claude_api.translate.gemini_schema import json_schema_for_gemini, sanitize_schema

__all__ = [
    "StreamTranslator",
    "build_count_tokens_request",
    "build_request",
    "gemini_tool_name",
    "is_schema_rejection",
    "parse_count_tokens_response",
    "parse_error",
    "tool_name_map",
    "translate_response",
]

# Google's documented escape hatch for history whose function calls carry no signature (turns
# produced by another model, or by a client that dropped our thinking blocks).
SKIP_SIGNATURE = "skip_thought_signature_validator"

MAX_STOP_SEQUENCES = 5

_TAG_LEN = len(GEMINI_SIGNATURE_TAG)

# ---------------------------------------------------------------------------------------------
# Tool names
# ---------------------------------------------------------------------------------------------

_VALID_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.:-]")
_MAX_NAME = 128


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]


def gemini_tool_name(name: str) -> str:
    """A client tool name as a valid Gemini function name (unchanged when already valid)."""
    if _VALID_NAME.fullmatch(name):
        return name
    cleaned = _INVALID_NAME_CHARS.sub("_", name)
    if not cleaned or not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = "_" + cleaned
    if len(cleaned) > _MAX_NAME:
        # Keep names distinct after truncation (long MCP names often share a prefix).
        cleaned = cleaned[: _MAX_NAME - 9] + "_" + _short_hash(name)
    return cleaned


def _declared_names(body: dict[str, Any]) -> dict[str, str]:
    """client name -> Gemini name for every declared custom tool, collisions disambiguated."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for tool in _custom_tools(body):
        original = tool["name"]
        if original in names:
            continue
        sanitised = gemini_tool_name(original)
        if sanitised in used:
            sanitised = sanitised[: _MAX_NAME - 9] + "_" + _short_hash(original)
        names[original] = sanitised
        used.add(sanitised)
    return names


def tool_name_map(body: dict[str, Any]) -> dict[str, str]:
    """Gemini function name -> client tool name, for names ``build_request`` had to change.

    Pass it as ``tool_names=`` to ``translate_response`` / ``StreamTranslator``.
    """
    return {
        gemini: original for original, gemini in _declared_names(body).items() if gemini != original
    }


def _custom_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    custom = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            continue
        # Server tools (web_search_20250305, bash_20250124, …) have a versioned type and no
        # input_schema; Gemini cannot run them, so they are dropped.
        if tool.get("type") in (None, "custom") or "input_schema" in tool:
            custom.append(tool)
    return custom


# ---------------------------------------------------------------------------------------------
# Request: Anthropic -> Gemini
# ---------------------------------------------------------------------------------------------


def build_request(body: dict[str, Any], *, schema_mode: str = "json_schema") -> dict[str, Any]:
    """An Anthropic Messages request body as a Gemini ``GenerateContentRequest`` (no model).

    ``schema_mode`` is ``"json_schema"`` (``parametersJsonSchema``, real JSON Schema) or
    ``"parameters"`` (the sanitised OpenAPI subset, for endpoints that reject the former).

    Everything Gemini has no field for is dropped: metadata, context_management, output_config
    (except the thinking effort), cache_control, service_tier, mcp_servers, container, stream.
    No safetySettings are sent: the model defaults apply, which is what a direct Gemini user
    gets; forcing filters OFF (as the reference proxy does) is a policy choice, not a
    translation, and BLOCK_NONE/OFF are rejected for some accounts and models.
    """
    names = _declared_names(body)
    request: dict[str, Any] = {"contents": _build_contents(body, names)}
    system = system_texts(body)
    if system:
        request["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    declarations = _function_declarations(body, names, schema_mode)
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body.get("tool_choice"), names)
        if tool_config:
            request["toolConfig"] = tool_config
    generation_config = _generation_config(body)
    if generation_config:
        request["generationConfig"] = generation_config
    return request


def build_count_tokens_request(
    body: dict[str, Any], *, upstream_model: str, schema_mode: str = "json_schema"
) -> dict[str, Any]:
    """A ``:countTokens`` body that counts system and tools too (``generateContentRequest`` form)."""
    model = upstream_model if upstream_model.startswith("models/") else f"models/{upstream_model}"
    names = _declared_names(body)
    inner: dict[str, Any] = {"model": model, "contents": _build_contents(body, names)}
    system = system_texts(body)
    if system:
        inner["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    declarations = _function_declarations(body, names, schema_mode)
    if declarations:
        inner["tools"] = [{"functionDeclarations": declarations}]
    return {"generateContentRequest": inner}


def parse_count_tokens_response(data: dict[str, Any]) -> dict[str, Any]:
    total = data.get("totalTokens") if isinstance(data, dict) else None
    return {"input_tokens": total if isinstance(total, int) else 0}


def _function_declarations(
    body: dict[str, Any], names: dict[str, str], schema_mode: str
) -> list[dict[str, Any]]:
    declarations = []
    seen: set[str] = set()
    for tool in _custom_tools(body):
        name = names[tool["name"]]
        if name in seen:
            continue  # a duplicate declaration is a 400
        seen.add(name)
        declaration: dict[str, Any] = {"name": name}
        description = tool.get("description")
        if isinstance(description, str) and description:
            declaration["description"] = description
        schema = tool.get("input_schema")
        if schema_mode == "parameters":
            parameters = sanitize_schema(schema)
            if parameters is not None:
                declaration["parameters"] = parameters
        else:
            declaration["parametersJsonSchema"] = json_schema_for_gemini(schema)
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any, names: dict[str, str]) -> dict[str, Any] | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if kind == "any":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if kind == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if kind == "tool" and isinstance(choice.get("name"), str):
        name = names.get(choice["name"]) or gemini_tool_name(choice["name"])
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


_EFFORT_LEVELS = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "HIGH", "max": "HIGH"}


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        config["maxOutputTokens"] = max_tokens
    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        # Gemini accepts at most 5; extra sequences are silently lost (documented lossy point).
        kept = [s for s in stops if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]
        if kept:
            config["stopSequences"] = kept
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        value = body.get(source)
        if isinstance(value, int | float) and not isinstance(value, bool):
            config[target] = value
    thinking = _thinking_config(body)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(body: dict[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None  # absent: let the model use its default
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            budget = -1  # dynamic
        return {"thinkingBudget": budget, "includeThoughts": True}
    if kind == "adaptive":
        output_config = body.get("output_config")
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        level = _EFFORT_LEVELS.get(effort) if isinstance(effort, str) else None
        # Never both: Gemini 400s on a thinkingConfig with a budget and a level.
        if level:
            return {"thinkingLevel": level, "includeThoughts": True}
        return {"thinkingBudget": -1, "includeThoughts": True}
    return None  # disabled (or unknown): the model default


# --- contents ---------------------------------------------------------------------------------


class _ModelTurn:
    """Consecutive assistant messages, merged into one ``model`` Content.

    Signature placement (the inverse of what the response side emits): a Gemini-tagged thinking
    block's signature goes on the first functionCall that follows it in the turn; if none does,
    on the text part just before the thinking block, else on the part just after it. The thought
    text itself is never sent back (Gemini does not need it and it costs input tokens).
    """

    __slots__ = ("parts", "calls", "pending", "anchor")
    role = "model"

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []  # (tool_use id, Gemini name), in call order
        self.pending: str | None = None  # a signature waiting for its functionCall
        self.anchor = 0  # len(parts) when `pending` was seen

    def add(self, blocks: list[dict[str, Any]], names: dict[str, str]) -> None:
        parts = self.parts
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if isinstance(text, str) and text:
                    parts.append({"text": text})
            elif kind == "tool_use":
                name = str(block.get("name") or "")
                gemini_name = names.get(name) or gemini_tool_name(name or "tool")
                args = block.get("input")
                # functionCall.id is accepted by v1beta but not by every Gemini-compatible
                # endpoint (older API versions, some gateways), and Gemini pairs calls with
                # responses by order anyway, so ids are not sent.
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": gemini_name,
                        "args": args if isinstance(args, dict) else {},
                    }
                }
                if self.pending is not None:
                    part["thoughtSignature"] = self.pending
                    self.pending = None
                parts.append(part)
                self.calls.append((str(block.get("id") or ""), gemini_name))
            elif kind == "thinking":
                signature = block.get("signature")
                # Only our own tagged signatures mean anything to Gemini; Anthropic-signed and
                # "openai." blocks are dropped, as are redacted_thinking blocks (below).
                if (
                    isinstance(signature, str)
                    and signature.startswith(GEMINI_SIGNATURE_TAG)
                    and len(signature) > _TAG_LEN
                ):
                    if self.pending is not None:
                        self.place_pending()
                    self.pending = signature[_TAG_LEN:]
                    self.anchor = len(parts)
            elif kind in ("image", "document"):
                parts.extend(_media_parts(block))
            # redacted_thinking, server_tool_use, *_tool_result, mcp_*: nothing Gemini can use.

    def place_pending(self) -> None:
        signature, self.pending = self.pending, None
        parts, anchor = self.parts, self.anchor
        if anchor > 0:
            before = parts[anchor - 1]
            if "text" in before and "thoughtSignature" not in before:
                before["thoughtSignature"] = signature
                return
        if anchor < len(parts) and "thoughtSignature" not in parts[anchor]:
            parts[anchor]["thoughtSignature"] = signature
        # else: nowhere sensible to put it; Gemini only enforces signatures on functionCalls.

    def finish(self) -> None:
        if self.pending is not None:
            self.place_pending()
        # Gemini 3 rejects a step whose first functionCall has no signature; parallel calls
        # only need it on the first one.
        for part in self.parts:
            if "functionCall" in part:
                part.setdefault("thoughtSignature", SKIP_SIGNATURE)
                break


class _UserTurn:
    """Consecutive user (and mid-conversation system) messages, merged into one ``user`` Content."""

    __slots__ = ("parts", "results")
    role = "user"

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        # (tool_use_id, is_error, output text, extra media parts), in message order
        self.results: list[tuple[str, bool, str, list[dict[str, Any]]]] = []

    def add(self, blocks: list[dict[str, Any]]) -> None:
        parts = self.parts
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if isinstance(text, str) and text:
                    parts.append({"text": text})
            elif kind == "tool_result":
                text, media = _tool_result_content(block.get("content"))
                self.results.append(
                    (
                        str(block.get("tool_use_id") or ""),
                        block.get("is_error") is True,
                        text,
                        media,
                    )
                )
            elif kind in ("image", "document"):
                parts.extend(_media_parts(block))
            # tool_use / thinking in a user turn, search_result, container_upload: dropped.


def _build_contents(body: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    turns: list[_ModelTurn | _UserTurn] = []
    for message in iter_messages(body):
        role = message["role"]
        if role == "assistant":
            blocks = content_blocks(message.get("content"))
            last = turns[-1] if turns else None
            model = last if isinstance(last, _ModelTurn) else _ModelTurn()
            model.add(blocks, names)
            if model is not last and (model.parts or model.pending):
                turns.append(model)
            continue
        if role == "user":
            blocks = content_blocks(message.get("content"))
        elif role == "system":
            blocks = [{"type": "text", "text": system_message_text(message)}]
        else:
            continue
        last = turns[-1] if turns else None
        user = last if isinstance(last, _UserTurn) else _UserTurn()
        user.add(blocks)
        if user is not last and (user.parts or user.results):
            turns.append(user)

    # Gemini wants `user` first ("function call turn comes immediately after a user turn…",
    # "multiturn requests alternate…"). Rather than invent a user message, a leading model turn
    # is folded into the first user turn as a transcript: its text verbatim, its calls as text
    # (their results, now unmatched, become text too, below).
    folded: list[dict[str, Any]] = []
    if turns and isinstance(turns[0], _ModelTurn):
        folded = _fold_model_turn(turns.pop(0))
        if not turns or not isinstance(turns[0], _UserTurn):
            turns.insert(0, _UserTurn())

    # A trailing model turn with function calls has no answers yet; Gemini would 400 on it and
    # it is not a usable prefill either (the reference proxy drops it too).
    if len(turns) > 1 and isinstance(turns[-1], _ModelTurn) and turns[-1].calls:
        turns.pop()

    contents: list[dict[str, Any]] = []
    previous: _ModelTurn | _UserTurn | None = None
    for turn in turns:
        if isinstance(turn, _ModelTurn):
            turn.finish()
            parts = turn.parts
        else:
            calls = previous.calls if isinstance(previous, _ModelTurn) else []
            parts = _user_parts(turn, calls, body)
            if folded:
                parts = folded + parts
                folded = []
        if not parts:
            pass  # e.g. a model turn that held only a signature with nowhere to go
        elif contents and contents[-1]["role"] == turn.role:
            contents[-1]["parts"].extend(parts)  # its empty neighbour vanished: keep alternating
        else:
            contents.append({"role": turn.role, "parts": parts})
        previous = turn
    return contents


def _fold_model_turn(turn: _ModelTurn) -> list[dict[str, Any]]:
    folded = []
    for part in turn.parts:
        if "functionCall" in part:
            call = part["functionCall"]
            folded.append({"text": f"[tool call {call['name']}: {_compact_json(call['args'])}]"})
        else:
            folded.append({key: value for key, value in part.items() if key != "thoughtSignature"})
    return folded


def _user_parts(
    turn: _UserTurn, calls: list[tuple[str, str]], body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Function responses first, in the order of the calls they answer, then everything else.

    Gemini requires exactly one functionResponse per functionCall of the previous model turn.
    A missing result gets a synthetic error response; a result that answers no call of that
    turn (or a duplicate) cannot be a functionResponse, so it is kept as plain text.
    """
    if not turn.results and not calls:
        return turn.parts
    by_id: dict[str, tuple[bool, str, list[dict[str, Any]]]] = {}
    strays: list[dict[str, Any]] = []
    call_ids = {call_id for call_id, _ in calls}
    history_names: dict[str, str] | None = None
    for tool_use_id, is_error, text, media in turn.results:
        if tool_use_id in call_ids and tool_use_id not in by_id:
            by_id[tool_use_id] = (is_error, text, media)
            continue
        if history_names is None:
            history_names = tool_names_by_id(body)  # only needed for strays, so computed lazily
        name = history_names.get(tool_use_id) or _name_from_id(tool_use_id)
        label = "tool error" if is_error else "tool result"
        strays.append({"text": f"[{label} {name}]: {text}" if text else f"[{label} {name}]"})
        strays.extend(media)
    parts: list[dict[str, Any]] = []
    for call_id, name in calls:
        answer = by_id.get(call_id)
        if answer is None:
            response = {"error": "No result was provided for this tool call."}
            parts.append({"functionResponse": {"name": name, "response": response}})
            continue
        is_error, text, media = answer
        response = {"error": text} if is_error else {"output": text}
        parts.append({"functionResponse": {"name": name, "response": response}})
        parts.extend(media)  # images of a result ride right after its functionResponse
    parts.extend(strays)
    parts.extend(turn.parts)
    return parts


def _name_from_id(tool_use_id: str) -> str:
    # Some clients (and the reference proxy) build ids as "<name>-<n>".
    if "-" in tool_use_id:
        return tool_use_id.rsplit("-", 1)[0]
    return tool_use_id or "tool"


def _tool_result_content(content: Any) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    for block in content_blocks(content):
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
        elif kind in ("image", "document"):
            for part in _media_parts(block):
                if "text" in part:
                    texts.append(part["text"])
                else:
                    media.append(part)
    return "\n\n".join(texts), media


_GOOGLE_FILE_URI = re.compile(r"^(gs://|https://generativelanguage\.googleapis\.com/)")


def _media_parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    """image / document blocks as Gemini parts. URLs are never fetched (SSRF, latency)."""
    kind = block["type"]
    source = block.get("source")
    if not isinstance(source, dict):
        return []
    source_type = source.get("type")
    if source_type == "base64":
        data = source.get("data")
        if not isinstance(data, str) or not data:
            return []
        default = "application/pdf" if kind == "document" else "image/png"
        mime = source.get("media_type") if isinstance(source.get("media_type"), str) else default
        return [{"inlineData": {"mimeType": mime or default, "data": data}}]
    if source_type == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            return []
        if _GOOGLE_FILE_URI.match(url):
            file_data: dict[str, Any] = {"fileUri": url}
            mime = "application/pdf" if kind == "document" else mimetypes.guess_type(url)[0]
            if mime:
                file_data = {"mimeType": mime, "fileUri": url}
            return [{"fileData": file_data}]
        return [{"text": f"[{kind}: {url}]"}]
    if source_type == "text" and kind == "document":
        data = source.get("data")
        return [{"text": data}] if isinstance(data, str) and data else []
    if source_type == "content" and kind == "document":
        parts: list[dict[str, Any]] = []
        for inner in content_blocks(source.get("content")):
            if inner.get("type") == "text":
                text = inner.get("text")
                if isinstance(text, str) and text:
                    parts.append({"text": text})
            elif inner.get("type") == "image":
                parts.extend(_media_parts(inner))
        return parts
    if source_type == "file":
        return [{"text": f"[{kind}: file {source.get('file_id')}]"}]
    return []


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        # orjson refuses ints beyond 64 bits and non-str keys; json copes with both.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# ---------------------------------------------------------------------------------------------
# Response: Gemini -> Anthropic
# ---------------------------------------------------------------------------------------------

_REFUSAL_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE"}
)


def _usage(metadata: Any, fallback_input: int = 0) -> tuple[int, int, int]:
    """(input_tokens, cache_read_input_tokens, output_tokens) from ``usageMetadata``.

    Gemini's promptTokenCount includes cached tokens, Anthropic's input_tokens excludes them;
    candidatesTokenCount excludes thoughts, Anthropic's output_tokens includes them.
    """
    if not isinstance(metadata, dict):
        return fallback_input, 0, 0
    prompt = metadata.get("promptTokenCount") or 0
    cached = metadata.get("cachedContentTokenCount") or 0
    tool_prompt = metadata.get("toolUsePromptTokenCount") or 0
    output = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    return max(prompt - cached, 0) + tool_prompt, cached, output


def _stop(
    finish_reason: str | None,
    block_reason: str | None,
    saw_tool_use: bool,
    saw_content: bool,
    stop_sequences: list[str],
) -> tuple[str, str | None, str | None]:
    """(stop_reason, stop_sequence, note) where note is text to append as a final text block.

    Gemini reports STOP for a natural end *and* for a matched stop sequence, and never says
    which sequence matched. Rule: with exactly one configured stop sequence, a plain STOP is
    reported as that stop_sequence (callers that set a single delimiter almost always expect to
    hit it); with none or several, it is end_turn (we could not name the match).
    """
    if block_reason:
        return (
            "refusal",
            None,
            f"The prompt was blocked by Gemini's safety filters (reason: {block_reason}).",
        )
    if saw_tool_use:
        return "tool_use", None, None
    if finish_reason == "MAX_TOKENS":
        return "max_tokens", None, None
    if finish_reason and (finish_reason in _REFUSAL_REASONS or finish_reason.startswith("IMAGE_")):
        return (
            "refusal",
            None,
            f"The response was blocked by Gemini's safety filters (reason: {finish_reason}).",
        )
    if finish_reason == "STOP":
        if len(stop_sequences) == 1:
            return "stop_sequence", stop_sequences[0], None
        return "end_turn", None, None
    if finish_reason and finish_reason != "FINISH_REASON_UNSPECIFIED" and not saw_content:
        # MALFORMED_FUNCTION_CALL, OTHER, …: never hand the client a silent empty message.
        return (
            "end_turn",
            None,
            f"Gemini ended the response without output (finishReason: {finish_reason}).",
        )
    return "end_turn", None, None


def _stop_list(stop_sequences: Any) -> list[str]:
    if not isinstance(stop_sequences, list):
        return []
    return [s for s in stop_sequences if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]


def _first_candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def _candidate_parts(candidate: dict[str, Any] | None) -> list[Any]:
    if candidate is None:
        return []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _block_reason(data: dict[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason else None


def _signature_block(signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": "", "signature": GEMINI_SIGNATURE_TAG + signature}


def _tool_use_block(call: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = str(call.get("name") or "")
    call_id = call.get("id")
    args = call.get("args")
    return {
        "type": "tool_use",
        "id": sanitize_tool_use_id(call_id if isinstance(call_id, str) else None),
        "name": names.get(name, name),
        "input": args if isinstance(args, dict) else {},
    }


def _empty_response_error() -> TranslatedStreamError:
    return TranslatedStreamError(ErrorInfo(502, "api_error", "Gemini returned an empty response"))


def _error_from_body(data: dict[str, Any]) -> TranslatedStreamError:
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and code >= 400 else 500
    return TranslatedStreamError(parse_error(status, data))


def translate_response(
    data: dict[str, Any],
    *,
    model: str,
    tool_names: dict[str, str] | None = None,
    stop_sequences: list[str] | None = None,
) -> dict[str, Any]:
    """A non-streaming ``GenerateContentResponse`` as a complete Anthropic message.

    Raises ``TranslatedStreamError`` when the body is a Google error object, or when it holds
    nothing at all (no candidate, no prompt feedback) so the caller can fail over.

    Signatures: thought parts become one thinking block signed ``"gemini." + sig`` (or just
    ``"gemini."`` so the block is recognisably ours and is dropped on the way back). A
    functionCall's signature becomes an empty thinking block right before its tool_use. A text
    part's signature (or a signature-only part's) goes on the step's thinking block still
    unsigned; else, when the response's first call had none, right before that call; else on an
    empty thinking block right after that run of text when a thought or call follows it. One
    that would trail the answer is dropped, so the content always ends with the answer.
    """
    if not isinstance(data, dict):
        raise _empty_response_error()
    if "error" in data:
        raise _error_from_body(data)
    names = tool_names or {}
    candidate = _first_candidate(data)
    block_reason = _block_reason(data) if candidate is None else None
    finish_reason = candidate.get("finishReason") if candidate else None
    parts = _candidate_parts(candidate)
    if not parts and not finish_reason and not block_reason:
        raise _empty_response_error()

    content: list[dict[str, Any]] = []
    thought: dict[str, Any] | None = None  # the thinking block adjacent thought parts extend
    unsigned: dict[str, Any] | None = None  # this step's thinking block still without a signature
    text_signatures: list[str] = []  # wait for the current run of text to end
    # Set while the response's calls so far came without a signature: where one arriving later
    # on a signature-only part goes (right before the first call, or onto the unsigned thinking
    # block just before it), so it travels back on that call. Mirrors the stream's held calls.
    held_at: int | None = None
    held_thought: dict[str, Any] | None = None
    saw_tool_use = False

    def flush_text_signatures() -> bool:
        nonlocal thought
        if not text_signatures:
            return False
        content.extend(_signature_block(signature) for signature in text_signatures)
        text_signatures.clear()
        thought = None
        return True

    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        if not isinstance(signature, str) or not signature:
            signature = None
        call = part.get("functionCall")
        if isinstance(call, dict):
            carried = flush_text_signatures()  # build_request puts these on this call
            if signature is not None:
                content.append(_signature_block(signature))
                held_at = held_thought = None
            elif not saw_tool_use and not carried:
                held_at = len(content)
                if thought is not None and thought["signature"] == GEMINI_SIGNATURE_TAG:
                    held_thought = thought
            content.append(_tool_use_block(call, names))
            saw_tool_use = True
            # A tool call ends the step: a later text signature must not travel back in time.
            thought = unsigned = None
            continue
        text = part.get("text")
        if not isinstance(text, str) or not text:
            if signature is None:
                continue  # an empty thought, inlineData, executableCode…: nothing to show
            # A signature-only part (Gemini 3 ends answers with one). It must not become a
            # block after the answer: clients take the last block as the answer.
            if held_at is not None:
                if held_thought is not None:
                    held_thought["signature"] = GEMINI_SIGNATURE_TAG + signature
                else:
                    content.insert(held_at, _signature_block(signature))
                held_at = held_thought = None
            elif unsigned is not None:
                unsigned["signature"] = GEMINI_SIGNATURE_TAG + signature
                unsigned = None
            else:
                text_signatures.append(signature)
            continue
        held_at = held_thought = None  # content after the calls: a later signature is not theirs
        if part.get("thought") is True:
            flush_text_signatures()
            if thought is None or (
                signature is not None and thought["signature"] != GEMINI_SIGNATURE_TAG
            ):
                thought = {"type": "thinking", "thinking": "", "signature": GEMINI_SIGNATURE_TAG}
                content.append(thought)
            thought["thinking"] += text
            if signature is not None:
                thought["signature"] = GEMINI_SIGNATURE_TAG + signature
            unsigned = (
                thought
                if signature is None and thought["signature"] == GEMINI_SIGNATURE_TAG
                else None
            )
            continue
        thought = None
        previous = content[-1] if content else None
        if previous is not None and previous["type"] == "text":
            previous["text"] += text
        else:
            content.append({"type": "text", "text": text})
        if signature is not None:
            if unsigned is not None:
                unsigned["signature"] = GEMINI_SIGNATURE_TAG + signature
                unsigned = None
            else:
                text_signatures.append(signature)
    # Text signatures still waiting here trail the answer. There is no carrier before the
    # answer left to put them on, and a thinking block after it would become "the answer" for
    # clients that read the last block (Claude Code). Google documents text-part signatures
    # as optional (only functionCall parts are validated), so they are dropped.

    stop_reason, stop_sequence, note = _stop(
        finish_reason, block_reason, saw_tool_use, bool(content), _stop_list(stop_sequences)
    )
    if note:
        content.append({"type": "text", "text": note})
    input_tokens, cache_read, output_tokens = _usage(data.get("usageMetadata"))
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
        },
    }


class StreamTranslator:
    """``:streamGenerateContent?alt=sse`` chunks -> Anthropic SSE events.

    One block is open at a time; indexes run 0, 1, 2…. ``message_delta`` and ``message_stop``
    come from ``finish()`` (called at upstream EOF), so the last usageMetadata is always seen.

    Signatures, where the stream cannot look back: a signature on a thought part is sent as the
    open thinking block's signature_delta just before its stop (a thinking block without one
    closes with the bare ``"gemini."`` tag, like the non-streaming side); a functionCall's signature
    becomes an empty thinking block right before the tool_use; a signature on a text part (or a
    signature-only part) signs the thinking block still open, else is emitted as an empty
    thinking block before the next thought or call, or, when nothing is open, is kept for the
    next thinking block. ``build_request`` puts each back on the Gemini part it came from.

    The answer comes last. Gemini 3 sends its final signature on an empty text part *after* the
    answer (same chunk or a later one, with or without finishReason), and Claude Code takes the
    last block as the answer, so nothing may follow the final text or tool_use block:

    - A text signature still waiting at the end is dropped. The text has been streamed by then
      and a sent block cannot be changed; buffering the whole answer until the end to put a
      signature in front of it would delay every answer. Google documents text signatures as
      optional (only functionCall parts are validated), and a text part that ends a run of
      thoughts still signs its thinking block, as the non-streaming side does.
    - Signatures that Gemini does require must not be lost that way: when the response's first
      functionCall arrives unsigned, its tool_use block (and later calls) is held until the next
      part. A signature-only part then goes in front of the calls (onto the still-open unsigned
      thinking block, or an empty one), so ``build_request`` puts it back on the first call;
      anything else, or the end of the stream, releases the calls as they are. Gemini sends
      calls whole, at the end of a step, so the hold ends with the same or the next chunk; a
      signed call, or any call after one, is never held.
    """

    __slots__ = (
        "_model",
        "_stop_sequences",
        "_estimate",
        "_tool_names",
        "_id",
        "_started",
        "_done",
        "_index",
        "_open",
        "_open_signature",
        "_loose",
        "_held",
        "_saw_tool_use",
        "_saw_content",
        "_usage",
        "_finish_reason",
        "_block_reason",
    )

    def __init__(
        self,
        *,
        model: str,
        stop_sequences: list[str] | None = None,
        input_tokens_estimate: int = 0,
        tool_names: dict[str, str] | None = None,
    ) -> None:
        self._model = model
        self._stop_sequences = _stop_list(stop_sequences)
        self._estimate = input_tokens_estimate
        self._tool_names = tool_names or {}
        self._id = new_message_id()
        self._started = False
        self._done = False
        self._index = -1  # index of the most recently started block
        self._open: str | None = None  # "thinking" | "text"
        self._open_signature: str | None = None
        self._loose: list[str] = []  # signatures waiting for a home
        self._held: list[dict[str, Any]] = []  # unsigned tool_use blocks not yet sent
        self._saw_tool_use = False
        self._saw_content = False
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self._block_reason: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._done or not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            raise _error_from_body(chunk)
        events: list[Event] = []
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage = usage
        if not self._started:
            self._started = True
            events.append(self._message_start())
        candidate = _first_candidate(chunk)
        if candidate is None:
            reason = _block_reason(chunk)
            if reason:
                self._block_reason = reason
            return events
        for part in _candidate_parts(candidate):
            if isinstance(part, dict):
                self._part(part, events)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
        return events

    def finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        events: list[Event] = []
        self._release(events)
        if not self._saw_content and self._finish_reason is None and self._block_reason is None:
            raise _empty_response_error()
        if not self._started:
            self._started = True
            events.append(self._message_start())
        self._close(events, flush=False)
        # Whatever is still loose would trail the answer; see the class docstring for why it is
        # dropped rather than sent.
        self._loose.clear()
        stop_reason, stop_sequence, note = _stop(
            self._finish_reason,
            self._block_reason,
            self._saw_tool_use,
            self._saw_content,
            self._stop_sequences,
        )
        if note:
            self._start(events, {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": note}))
            events.append(
                ("content_block_stop", {"type": "content_block_stop", "index": self._index})
            )
        input_tokens, cache_read, output_tokens = _usage(self._usage, self._estimate)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                        "cache_read_input_tokens": cache_read,
                        "cache_creation_input_tokens": 0,
                    },
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # --- internals ---

    def _message_start(self) -> Event:
        input_tokens = _usage(self._usage, self._estimate)[0] if self._usage else self._estimate
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self._model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": input_tokens,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 0,
                            "ephemeral_1h_input_tokens": 0,
                        },
                    },
                },
            },
        )

    def _start(self, events: list[Event], block: dict[str, Any]) -> None:
        self._index += 1
        self._saw_content = True
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _delta(self, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _close(self, events: list[Event], *, flush: bool = True) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            # Unsigned blocks still get the bare tag: a thinking block with an empty signature
            # would look Anthropic-made if the history were ever sent to Anthropic.
            signature = GEMINI_SIGNATURE_TAG + (self._open_signature or "")
            events.append(self._delta({"type": "signature_delta", "signature": signature}))
            self._open_signature = None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None
        if flush and self._loose:
            self._flush_loose(events)

    def _flush_loose(self, events: list[Event]) -> None:
        loose, self._loose = self._loose, []
        for signature in loose:
            self._signature_block(events, signature)

    def _signature_block(self, events: list[Event], signature: str) -> None:
        self._start(events, {"type": "thinking", "thinking": "", "signature": ""})
        events.append(
            self._delta({"type": "signature_delta", "signature": GEMINI_SIGNATURE_TAG + signature})
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def _part(self, part: dict[str, Any], events: list[Event]) -> None:
        signature = part.get("thoughtSignature")
        if not isinstance(signature, str) or not signature:
            signature = None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._call(call, signature, events)
            return
        text = part.get("text")
        if not isinstance(text, str) or not text:
            # A signature-only part, an empty thought, inlineData, executableCode…
            if signature is not None:
                self._bare_signature(signature, events)
            return
        self._release(events)
        if part.get("thought") is True:
            if self._open != "thinking" or (
                signature is not None and self._open_signature is not None
            ):
                self._close(events)
                self._start(events, {"type": "thinking", "thinking": "", "signature": ""})
                self._open = "thinking"
                if self._loose and signature is None:
                    self._open_signature = self._loose.pop(0)
            events.append(self._delta({"type": "thinking_delta", "thinking": text}))
            if signature is not None:
                self._open_signature = signature
            return
        if self._open != "text":
            if signature is not None and self._open == "thinking" and self._open_signature is None:
                # The text that ends a run of thoughts carries the step's signature: it signs
                # the thinking block before that closes, as on the non-streaming side, instead
                # of waiting behind the text for a block that may never come.
                self._open_signature, signature = signature, None
            self._close(events)
            self._start(events, {"type": "text", "text": ""})
            self._open = "text"
        events.append(self._delta({"type": "text_delta", "text": text}))
        if signature is not None:
            self._attach(signature)

    def _call(self, call: dict[str, Any], signature: str | None, events: list[Event]) -> None:
        block = _tool_use_block(call, self._tool_names)
        first = not self._saw_tool_use
        self._saw_tool_use = True
        if signature is None and (self._held or (first and not self._loose)):
            # Its signature may still come on a signature-only part (class docstring).
            self._held.append(block)
            return
        self._release(events)
        self._close(events)
        self._flush_loose(events)  # build_request puts these on this call
        if signature is not None:
            self._signature_block(events, signature)
        self._tool_use(events, block)

    def _tool_use(self, events: list[Event], block: dict[str, Any]) -> None:
        partial = _compact_json(block["input"])
        self._start(events, {**block, "input": {}})
        events.append(self._delta({"type": "input_json_delta", "partial_json": partial}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def _release(self, events: list[Event]) -> None:
        """Send the held tool_use blocks: nothing came to sign them."""
        if not self._held:
            return
        held, self._held = self._held, []
        self._close(events)
        for block in held:
            self._tool_use(events, block)

    def _bare_signature(self, signature: str, events: list[Event]) -> None:
        if self._held:
            # The calls' signature: it goes in front of them, so it travels back on the first.
            if self._open == "thinking" and self._open_signature is None:
                self._open_signature = signature
            else:
                self._close(events)
                self._signature_block(events, signature)
            self._release(events)
            return
        self._attach(signature)

    def _attach(self, signature: str) -> None:
        """A signature from a non-thought part: the open thinking block, else wait."""
        if self._open == "thinking" and self._open_signature is None:
            self._open_signature = signature
        else:
            self._loose.append(signature)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "INTERNAL": (500, "api_error"),
    "UNAVAILABLE": (529, "overloaded_error"),
    "DEADLINE_EXCEEDED": (504, "timeout_error"),
}
# HTTP statuses that differ from a 1:1 pass-through when the body names no Google status.
_HTTP_STATUS = {503: (529, "overloaded_error")}

_API_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_TOO_LONG = (
    # "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
    re.compile(
        r"input token count\D{0,10}(\d+)\D{0,10}exceeds the maximum number of tokens allowed\D{0,10}(\d+)",
        re.I,
    ),
    # Vertex: "the input token count is 1234567 but model only supports up to 1048576"
    re.compile(r"input token count is (\d+) but (?:the )?model only supports up to (\d+)", re.I),
)
_TOO_LONG_HINT = re.compile(
    r"exceeds the maximum number of tokens|input token count is \d+ but|prompt is too long", re.I
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_RETRY_IN_MESSAGE = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.I)
_SCHEMA_REJECTION = re.compile(r"parameters_?json_?schema|function_?declarations?|\bschema\b", re.I)
_MAX_MESSAGE = 2000
_MAX_TEXT_MESSAGE = 500  # non-JSON bodies are usually HTML error pages


def parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    """A Gemini error response (any body, even garbage) in the Anthropic vocabulary."""
    try:
        return _parse_error(status, body)
    except Exception:  # an error parser must never raise, whatever the upstream sent
        status = status if isinstance(status, int) and status >= 400 else 500
        return ErrorInfo(status, error_type_for_status(status), _status_phrase(status))


def _parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    data: Any = body
    text = ""
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # the non-SSE stream endpoint wraps everything in an array
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        message = text[:_MAX_TEXT_MESSAGE] if text and data is None else ""
        if not message and isinstance(error, str):
            message = error
        status = status if status >= 400 else 500
        mapped = _HTTP_STATUS.get(status, (status, error_type_for_status(status)))
        return ErrorInfo(mapped[0], mapped[1], message or _status_phrase(status))

    code = error.get("code")
    if status < 400 and isinstance(code, int) and code >= 400:
        status = code
    status = status if status >= 400 else 500
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = message.strip()[:_MAX_MESSAGE] or _status_phrase(status)
    google_status = error.get("status") if isinstance(error.get("status"), str) else ""
    details = error.get("details") if isinstance(error.get("details"), list) else []

    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if reasons & _API_KEY_REASONS or "API key not valid" in message or "API key expired" in message:
        return ErrorInfo(401, "authentication_error", message)

    if status in (400, 413) and _TOO_LONG_HINT.search(message):
        tokens = maximum = None
        for pattern in _TOO_LONG:
            match = pattern.search(message)
            if match:
                tokens, maximum = int(match.group(1)), int(match.group(2))
                break
        return ErrorInfo(400, "invalid_request_error", prompt_too_long_message(tokens, maximum))

    if google_status in _GOOGLE_STATUS:
        mapped_status, error_type = _GOOGLE_STATUS[google_status]
    else:
        mapped_status, error_type = _HTTP_STATUS.get(
            status, (status, error_type_for_status(status))
        )

    retry_after = _retry_delay(details)
    if retry_after is None and mapped_status == 429:
        match = _RETRY_IN_MESSAGE.search(message)
        if match:
            retry_after = _seconds(match.group(1), match.group(2))
    return ErrorInfo(mapped_status, error_type, message, retry_after)


def _retry_delay(details: list[Any]) -> float | None:
    for detail in details:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return _seconds(match.group(1), match.group(2))
        elif isinstance(delay, dict):  # the proto form {"seconds": 34, "nanos": 5e8}
            seconds = delay.get("seconds") or 0
            nanos = delay.get("nanos") or 0
            try:
                return float(seconds) + float(nanos) / 1e9
            except (TypeError, ValueError):
                return None
    return None


def _seconds(amount: str, unit: str | None) -> float:
    value = float(amount)
    return {"ms": value / 1000, "m": value * 60, "h": value * 3600}.get(unit or "s", value)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Upstream error (HTTP {status})"


def is_schema_rejection(info: ErrorInfo) -> bool:
    """A 400 about the tool declarations: retry once with ``schema_mode="parameters"``."""
    return info.status == 400 and bool(_SCHEMA_REJECTION.search(info.message))
