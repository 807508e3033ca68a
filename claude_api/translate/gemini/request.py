"""Request: an Anthropic Messages body as a Gemini ``GenerateContentRequest``."""

from __future__ import annotations

import json
import mimetypes
import re
from typing import Any

import orjson

from claude_api.translate.common import (
    GEMINI_SIGNATURE_TAG,
    content_blocks,
    iter_messages,
    system_message_text,
    system_texts,
    tool_names_by_id,
)
from claude_api.translate.gemini.names import _custom_tools, _declared_names, gemini_tool_name
from claude_api.translate.gemini.schema import json_schema_for_gemini, sanitize_schema

# Google's documented escape hatch for history whose function calls carry no signature (turns
# produced by another model, or by a client that dropped our thinking blocks).
SKIP_SIGNATURE = "skip_thought_signature_validator"

MAX_STOP_SEQUENCES = 5

_TAG_LEN = len(GEMINI_SIGNATURE_TAG)


def build_request(
    body: dict[str, Any], *, schema_mode: str = "json_schema", model: str = ""
) -> dict[str, Any]:
    """An Anthropic Messages request body as a Gemini ``GenerateContentRequest`` (the model
    goes in the URL; ``model`` is the upstream model's name, which decides the thinking style).

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
    generation_config = _generation_config(body, model)
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


# Claude's adaptive-thinking effort, as Gemini 3's thinkingLevel. Gemini 3 Pro takes only LOW
# and HIGH ("thinking_level MEDIUM is not supported by this model"), so medium rounds up.
_EFFORT_LEVELS = {"low": "LOW", "medium": "HIGH", "high": "HIGH", "xhigh": "HIGH", "max": "HIGH"}
# The same effort as a budget, for models before Gemini 3, which refuse thinkingLevel ("Thinking
# level is not supported for this model."); -1 lets the model decide (dynamic thinking).
_EFFORT_BUDGETS = {"low": 1024, "medium": 8192, "high": -1, "xhigh": -1, "max": -1}


def uses_thinking_levels(model: str) -> bool:
    """Gemini 3 and later think by level; 2.5 and earlier by token budget."""
    name = model.rsplit("/", 1)[-1].lower()
    if not name.startswith("gemini-"):
        return False
    major = name.removeprefix("gemini-").split("-", 1)[0].split(".", 1)[0]
    return major.isdigit() and int(major) >= 3


def _generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
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
    thinking = _thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(body: dict[str, Any], model: str) -> dict[str, Any] | None:
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
        if not isinstance(effort, str) or effort not in _EFFORT_LEVELS:
            return {"thinkingBudget": -1, "includeThoughts": True}
        # Never both: Gemini 400s on a thinkingConfig with a budget and a level.
        if uses_thinking_levels(model):
            return {"thinkingLevel": _EFFORT_LEVELS[effort], "includeThoughts": True}
        return {"thinkingBudget": _EFFORT_BUDGETS[effort], "includeThoughts": True}
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
