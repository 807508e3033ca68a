"""Parsing and validating a client's request: just enough to route it and to fail clearly.

The body is otherwise forwarded as received (unknown fields included); translators cope with
anything that passes here. Error messages name the field the way the Anthropic API does
(``messages.0.content: …``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from claude_api.errors import InvalidRequest

MESSAGES = "messages"
COUNT_TOKENS = "count_tokens"
ROLES = ("user", "assistant", "system")


@dataclass(slots=True)
class ClientRequest:
    endpoint: str  # MESSAGES | COUNT_TOKENS
    raw: bytes
    body: dict[str, Any]
    model: str
    stream: bool
    headers: Mapping[str, str]  # case-insensitive (Django's HttpHeaders)
    beta_query: bool  # the client called ...?beta=true
    request_id: str
    client_key_name: str = ""
    client_key_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate(body: dict[str, Any], endpoint: str) -> None:
    """Raise InvalidRequest naming the first field that is missing or of the wrong type."""
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model: Field required")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: Input should be a non-empty string")

    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: Input should be an object")
        if message.get("role") not in ROLES:
            raise InvalidRequest(f"{where}.role: Input should be 'user', 'assistant' or 'system'")
        content = message.get("content")
        if content is None:
            raise InvalidRequest(f"{where}.content: Field required")
        if isinstance(content, list):
            for block_index, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise InvalidRequest(
                        f"{where}.content.{block_index}: Input should be an object with a 'type'"
                    )
        elif not isinstance(content, str):
            raise InvalidRequest(f"{where}.content: Input should be a string or a list of blocks")

    if endpoint == MESSAGES:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise InvalidRequest("max_tokens: Field required")
        if not _is_int(max_tokens) or max_tokens < 0:
            raise InvalidRequest("max_tokens: Input should be a non-negative integer")

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean")

    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest("system: Input should be a string or a list of text blocks")
    if isinstance(system, list):
        for index, block in enumerate(system):
            if not isinstance(block, dict) or not isinstance(block.get("text", ""), str):
                raise InvalidRequest(f"system.{index}: Input should be a text block")

    for name in ("temperature", "top_p"):
        if body.get(name) is not None and not _is_number(body[name]):
            raise InvalidRequest(f"{name}: Input should be a valid number")
    if body.get("top_k") is not None and not _is_int(body["top_k"]):
        raise InvalidRequest("top_k: Input should be a valid integer")

    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)
    ):
        raise InvalidRequest("stop_sequences: Input should be a list of strings")

    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools: Input should be a valid list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise InvalidRequest(f"tools.{index}.name: Field required")
            schema = tool.get("input_schema")
            if schema is not None and not isinstance(schema, dict):
                raise InvalidRequest(f"tools.{index}.input_schema: Input should be an object")

    for name in ("tool_choice", "thinking", "metadata"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise InvalidRequest(f"{name}: Input should be an object")
    for name in ("tool_choice", "thinking"):
        value = body.get(name)
        if isinstance(value, dict) and not isinstance(value.get("type"), str):
            raise InvalidRequest(f"{name}.type: Field required")


def is_streaming(body: dict[str, Any]) -> bool:
    """Non-streaming iff ``stream`` is absent or false (Claude Code's fallback omits it)."""
    return body.get("stream") is True


SESSION_HEADERS = (
    "session-id",
    "session_id",
    "x-session-id",
    "x-session-affinity",
    "x-client-request-id",
)


def session_id(headers: Mapping[str, str], body: dict[str, Any]) -> str | None:
    """A stable identifier of the client's conversation, for session affinity.

    Sources in order: Claude Code's ``X-Claude-Code-Session-Id``; the session inside
    ``metadata.user_id`` (Claude Code sends a JSON string with ``session_id``, older versions
    ``user_<hash>_account_<id>_session_<uuid>``); generic session headers; body fields; and last
    a hash of the conversation's first texts, which stays the same as the conversation grows.
    """
    value = (headers.get("x-claude-code-session-id") or "").strip()
    if value:
        return value
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        found = _session_from_user_id(user_id)
        if found:
            return found
    for name in SESSION_HEADERS:
        value = (headers.get(name) or "").strip()
        if value:  # a blank header is no session at all
            return value
    for name in ("session_id", "sessionId", "prompt_cache_key", "conversation_id"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    conversation = body.get("conversation")
    if isinstance(conversation, dict) and isinstance(conversation.get("id"), str):
        return conversation["id"]
    if isinstance(conversation, str) and conversation:
        return conversation
    if isinstance(user_id, str) and user_id:
        return user_id
    return _conversation_fingerprint(body)


def _session_from_user_id(user_id: str) -> str | None:
    if user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        value = parsed.get("session_id") if isinstance(parsed, dict) else None
        return value if isinstance(value, str) and value else None
    marker = "_session_"
    if marker in user_id:
        return user_id.rsplit(marker, 1)[1] or None
    return None


def _first_text(content: Any) -> str:
    if isinstance(content, str):
        return content[:100]
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str) and block["text"]:
                return block["text"][:100]
    return ""


def _conversation_fingerprint(body: dict[str, Any]) -> str | None:
    # Only what the first request of a conversation already has: the system prompt, a system
    # message before the first user message, and the first user text. The first assistant text
    # appears from the second turn on, so hashing it would move every conversation to another
    # credential after its first answer.
    texts = {"": _first_text(body.get("system"))}
    for message in body.get("messages") or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("user", "system") and role not in texts:
            texts[role] = _first_text(message.get("content"))
        if role == "user":
            break
    if not any(texts.values()):
        return None
    parts = [f"{role}:{texts.get(role, '')}" for role in ("", "system", "user")]
    return "fp-" + hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).hexdigest()
