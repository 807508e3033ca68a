"""Names on the Responses wire: tool names (OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``, the same rule
and the same reversible aliases as Chat Completions), tool call ids (``call_id``, which the
backend caps at 64 characters while Claude clients may send longer ids), and the thinking
block signature that carries encrypted reasoning through the client and back.

A signature is ``RESPONSES_SIGNATURE_TAG`` + ``<origin>:`` + the encrypted reasoning. The origin
(16 hex digits, from the provider) names the credential that issued it: only that credential's
backend can verify it, and a backend that issued reasoning together with a function call
refuses the call without it. So a conversation that moved between credentials sends back
each credential only its own reasoning. Signatures without an origin (issued before it
existed) are sent as they are.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from claude_api.translate.common import RESPONSES_SIGNATURE_TAG, iter_messages
from claude_api.translate.openai_chat.names import ToolNames, tool_names

__all__ = [
    "CallIds",
    "ToolNames",
    "call_ids",
    "read_signature",
    "reasoning_signature",
    "short_call_id",
    "tool_names",
]

MAX_CALL_ID = 64
_TAG_LEN = len(RESPONSES_SIGNATURE_TAG)
# Encrypted reasoning is base64, which has no ':'; the origin is lower-case hex.
_ORIGIN = re.compile(r"([0-9a-f]{16}):(.+)", re.DOTALL)


def reasoning_signature(encrypted: str, origin: str = "") -> str:
    """The thinking block signature for encrypted reasoning ``origin`` issued."""
    if not encrypted:
        return RESPONSES_SIGNATURE_TAG
    if not origin:
        return RESPONSES_SIGNATURE_TAG + encrypted
    return f"{RESPONSES_SIGNATURE_TAG}{origin}:{encrypted}"


def read_signature(signature: Any) -> tuple[str, str] | None:
    """(origin, encrypted reasoning) from a signature we produced ("" origin: not recorded);
    None for anything else (another family's, or a block with nothing encrypted)."""
    if not isinstance(signature, str) or not signature.startswith(RESPONSES_SIGNATURE_TAG):
        return None
    rest = signature[_TAG_LEN:]
    if not rest:
        return None
    match = _ORIGIN.fullmatch(rest)
    return (match.group(1), match.group(2)) if match else ("", rest)


def short_call_id(raw: str) -> str:
    """``raw`` if it fits, else a 47-character head, ``_`` and 16 hex digits of its SHA-256.

    Deterministic, so the same history always sends the same ids (prompt caches stay warm),
    and the head keeps the id readable in upstream logs.
    """
    if len(raw) <= MAX_CALL_ID:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{raw[:47]}_{digest[:16]}"


class CallIds:
    """The shortened call ids of one request, mapped back to the client's ids."""

    __slots__ = ("_down",)

    def __init__(self, shortened: dict[str, str] | None = None) -> None:
        self._down = dict(shortened or {})

    def to_upstream(self, raw: str) -> str:
        return short_call_id(raw)

    def to_client(self, call_id: str) -> str:
        return self._down.get(call_id, call_id)


def call_ids(body: dict[str, Any]) -> CallIds:
    """Every long tool id in the history, by its short form."""
    shortened: dict[str, str] = {}
    for message in iter_messages(body):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            raw = block.get("id") if block.get("type") == "tool_use" else block.get("tool_use_id")
            if isinstance(raw, str) and len(raw) > MAX_CALL_ID:
                shortened[short_call_id(raw)] = raw
    return CallIds(shortened)
