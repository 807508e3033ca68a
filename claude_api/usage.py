"""Reading the upstream's own token counts from what the relay passes to the client.

Streams: only ``message_start`` (input and cache tokens, the first output count) and
``message_delta`` (the final output count; newer servers repeat the input counts there) are
parsed; every other event passes by on a comparison of its name. The relay's bytes are never
touched. Non-stream replies: the ``usage`` object of the body. Translated upstreams (Gemini,
OpenAI) yield the same Anthropic events, so one reader serves every provider.
"""

from __future__ import annotations

from typing import Any

import orjson

from accounts.prices import Tokens
from claude_api.sse import SSEEvent

USAGE_EVENTS = frozenset({"message_start", "message_delta"})


def _count(usage: dict[str, Any], name: str) -> int | None:
    value = usage.get(name)
    return value if isinstance(value, int) and value >= 0 else None


class StreamUsage:
    """Token counts seen so far in one stream."""

    __slots__ = ("input", "output", "cache_read", "cache_write", "finished")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0
        # The final message_delta arrived: the counts are the upstream's last word.
        self.finished = False

    def observe(self, event: SSEEvent) -> None:
        if event.name not in USAGE_EVENTS:
            return
        try:
            data = event.json()
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if event.name == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
        else:
            usage = data.get("usage")
            self.finished = True
        if isinstance(usage, dict):
            self._take(usage)

    def _take(self, usage: dict[str, Any]) -> None:
        # Counts are cumulative: a later event's count replaces an earlier one.
        for attribute, name in (
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
        ):
            value = _count(usage, name)
            if value is not None:
                setattr(self, attribute, value)

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.input, self.output, self.cache_read, self.cache_write)


def from_body(body: bytes) -> Tokens:
    """The counts of a complete Messages reply (zeros when it carries none)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Tokens()
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return Tokens()
    return Tokens(
        _count(usage, "input_tokens") or 0,
        _count(usage, "output_tokens") or 0,
        _count(usage, "cache_read_input_tokens") or 0,
        _count(usage, "cache_creation_input_tokens") or 0,
    )
