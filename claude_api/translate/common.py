"""Pieces shared by the translators (Anthropic Messages ⇄ Gemini / OpenAI Chat).

Everything here is pure: plain dicts in, plain dicts out, no I/O and no Django.

Streaming translators produce Anthropic events as ``(event_name, data)`` tuples, where
``data["type"] == event_name``; the provider layer encodes them as
``event: <name>\\ndata: <compact json>\\n\\n``.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Event = tuple[str, dict[str, Any]]

# Thinking blocks we synthesise carry a signature tagged with the family that produced it, so
# a later turn can tell them apart from real Anthropic signatures (base64, which never contains
# a dot). Foreign blocks are dropped before history is sent to another family.
GEMINI_SIGNATURE_TAG = "gemini."
OPENAI_SIGNATURE_TAG = "openai."
# The Responses API's encrypted reasoning travels after this tag (an "openai." signature, so
# every check for the OpenAI family still holds): the history alone carries it to the next turn.
RESPONSES_SIGNATURE_TAG = "openai.responses."
SIGNATURE_TAGS = (GEMINI_SIGNATURE_TAG, OPENAI_SIGNATURE_TAG)

# Claude Code prepends a per-request system block ("x-anthropic-billing-header: cc_version=…").
# It changes on every request, so forwarding it to a non-Anthropic upstream defeats prompt caching.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

_ID_ALPHABET = string.ascii_letters + string.digits
_TOOL_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An upstream error, already mapped to the Anthropic vocabulary.

    ``retry_after`` is only what the *body* says (e.g. Google ``RetryInfo.retryDelay``); reset
    headers are parsed centrally by the cooldown policy.
    """

    status: int
    error_type: str
    message: str
    retry_after: float | None = None
    # The upstream's error code where the policy needs it (e.g. Codex ``usage_limit_reached``).
    code: str = ""


class TranslatedStreamError(Exception):
    """Raised by a stream translator when the upstream stream carries an error object."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    if status in STATUS_ERROR_TYPES:
        return STATUS_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def prompt_too_long_message(tokens: int | None, maximum: int | None) -> str:
    """The wording Claude Code reacts to (it triggers reactive compaction)."""
    if tokens and maximum:
        return f"prompt is too long: {tokens} tokens > {maximum} maximum"
    return "prompt is too long"


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_message_id() -> str:
    return random_id("msg_")


def new_tool_use_id() -> str:
    return random_id("toolu_")


def sanitize_tool_use_id(raw: str | None) -> str:
    """Anthropic requires tool_use ids to match ``^[a-zA-Z0-9_-]+$``."""
    if not raw:
        return new_tool_use_id()
    cleaned = _TOOL_ID_INVALID.sub("_", raw)
    return cleaned or new_tool_use_id()


def is_billing_header(text: str) -> bool:
    return text.lstrip().startswith(BILLING_HEADER_PREFIX)


def system_texts(body: dict[str, Any]) -> list[str]:
    """The request's top-level system prompt as a list of texts, billing-header block dropped."""
    system = body.get("system")
    if isinstance(system, str):
        return [system] if system and not is_billing_header(system) else []
    texts = []
    if isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("type", "text") == "text":
                text = block.get("text")
                if isinstance(text, str) and text and not is_billing_header(text):
                    texts.append(text)
    return texts


def content_blocks(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is shorthand for one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def text_of(content: Any) -> str:
    """All text inside a content value (string or blocks), joined by blank lines."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content_blocks(content):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n\n".join(parts)


def system_message_text(message: dict[str, Any]) -> str:
    """A mid-conversation ``role: "system"`` message, as user-visible reminder text.

    Other upstreams have no mid-conversation system role, so the text travels in a user turn,
    wrapped the way Claude Code itself wraps injected context.
    """
    return f"<system-reminder>\n{text_of(message.get('content'))}\n</system-reminder>"


def iter_messages(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The request's messages, skipping anything that is not a dict with a role."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("role"), str):
            yield message


def tool_names_by_id(body: dict[str, Any]) -> dict[str, str]:
    """tool_use id → tool name, from every assistant tool_use block in the history."""
    names: dict[str, str] = {}
    for message in iter_messages(body):
        if message["role"] != "assistant":
            continue
        for block in content_blocks(message.get("content")):
            if block.get("type") in ("tool_use", "server_tool_use") and block.get("id"):
                names[str(block["id"])] = str(block.get("name") or "")
    return names


def thinking_signature_family(signature: Any) -> str | None:
    """``"gemini"`` / ``"openai"`` for our tagged signatures, ``"anthropic"`` otherwise."""
    if not isinstance(signature, str) or not signature:
        return None
    for tag in SIGNATURE_TAGS:
        if signature.startswith(tag):
            return tag[:-1]
    return "anthropic"
