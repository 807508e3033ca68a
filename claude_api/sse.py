"""Server-sent events: an incremental parser for upstream bytes and the Anthropic encoder.

The parser accepts whatever framing upstreams use (``\\n\\n``, ``\\r\\n\\r\\n``, ``\\r\\r``), events
split at any byte boundary, comment lines (``: keep-alive``), multi-line ``data:`` and events
without an ``event:`` line (Gemini and OpenAI send only ``data:``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class SSEEvent:
    name: str  # "" when the upstream sent no event: line
    data: bytes

    def encode(self) -> bytes:
        data = self.data
        if b"\n" in data:
            # One data: line per line, or the lines after the first would be lost on re-parsing.
            data = data.replace(b"\n", b"\ndata: ")
        return b"event: " + self.name.encode() + b"\ndata: " + data + b"\n\n"

    def json(self) -> Any:
        return orjson.loads(self.data)


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


KEEPALIVE_COMMENT = b": keep-alive\n\n"


class SSEParser:
    """Feed bytes, get complete events. Keeps the unfinished tail for the next feed."""

    __slots__ = ("_buffer", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._pending_cr:
            # The previous chunk ended with \r, already taken as a line end: a \n right after it
            # belongs to the same \r\n.
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            # Normalise CRLF / CR line endings. A trailing \r ends its line now (holding it back
            # would delay a \r\r-framed event until the next chunk); remember it instead.
            self._pending_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n\n" not in buffer:
            self._buffer = buffer
            return []
        *blocks, self._buffer = buffer.split(b"\n\n")
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: an unterminated last event still counts (some servers omit it)."""
        block, self._buffer = self._buffer, b""
        self._pending_cr = False
        event = _parse_block(block.strip(b"\n")) if block.strip() else None
        return [event] if event is not None else []

    @property
    def pending(self) -> bytes:
        return self._buffer


def _parse_block(block: bytes) -> SSEEvent | None:
    name = ""
    data: list[bytes] = []
    stray: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0:1] == b":":
            continue
        field, colon, value = line.partition(b":")
        if value[0:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace").strip()
        elif field not in (b"id", b"retry") or not colon:
            stray.append(line)
        # id: and retry: are ignored, like the SDKs do.
    if not data and not name:
        # Not SSE at all: Google, for one, sends a bare (multi-line) JSON error object mid-stream.
        # Hand it over as data so the provider can report it instead of losing it.
        return SSEEvent("", b"\n".join(stray)) if stray else None
    return SSEEvent(name, b"\n".join(data))
