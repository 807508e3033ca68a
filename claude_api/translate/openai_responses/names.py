"""Names on the Responses wire: tool names (OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``, the same rule
and the same reversible aliases as Chat Completions) and tool call ids (``call_id``, which the
backend caps at 64 characters while Claude clients may send longer ids).
"""

from __future__ import annotations

import hashlib
from typing import Any

from claude_api.translate.common import iter_messages
from claude_api.translate.openai_chat.names import ToolNames, tool_names

__all__ = ["CallIds", "ToolNames", "call_ids", "short_call_id", "tool_names"]

MAX_CALL_ID = 64


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
