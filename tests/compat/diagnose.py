"""Reading what the proxy sent the client (the relay's bytes), to say why a cell failed."""

from __future__ import annotations

import json
import re
from typing import Any

_ERROR = re.compile(
    rb'"type":\s*"error",\s*"error":\s*\{"type":\s*"([a-z_]+)",\s*"message":\s*"((?:[^"\\]|\\.)*)"'
)


def proxy_errors(raw: bytes) -> list[str]:
    """Anthropic error envelopes (HTTP bodies or ``event: error``) the proxy sent, in order."""
    out = []
    for kind, message in _ERROR.findall(raw):
        text = json.loads(b'"' + message + b'"')
        out.append(f"{kind.decode()}: {text}")
    return out


def message_requests(sent: list[bytes]) -> list[dict[str, Any]]:
    """The JSON bodies of the client's ``POST /v1/messages`` requests (each connection's bytes
    from client to proxy, in order; count_tokens and other paths left out)."""
    bodies: list[dict[str, Any]] = []
    for raw in sent:
        rest = raw
        while (start := rest.find(b"POST /v1/messages")) >= 0:
            head, _, rest = rest[start:].partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            size = int(length.group(1)) if length else 0
            body, rest = rest[:size], rest[size:]
            if head.split(b" ", 2)[1].split(b"?")[0] != b"/v1/messages":
                continue
            try:
                bodies.append(json.loads(body))
            except ValueError:
                continue
    return bodies


def sse_messages(raw: bytes) -> list[list[dict[str, Any]]]:
    """The content blocks of every streamed message, as the client assembles them."""
    messages: list[list[dict[str, Any]]] = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            continue
        kind = event.get("type")
        if kind == "message_start":
            messages.append([])
        elif kind == "content_block_start" and messages:
            messages[-1].append(dict(event.get("content_block") or {}))
        elif kind == "content_block_delta" and messages and messages[-1]:
            block, delta = messages[-1][-1], event.get("delta") or {}
            for field in ("text", "thinking", "partial_json"):
                if field in delta:
                    block[field] = block.get(field, "") + delta[field]
    return messages


def hints(raw: bytes) -> list[str]:
    """Known ways a stream can look fine on the wire and still leave the client empty-handed."""
    found = []
    for blocks in sse_messages(raw):
        if blocks and blocks[-1].get("type") == "thinking" and not blocks[-1].get("thinking"):
            found.append(
                "the proxy's stream ends with an empty thinking block (signature only) after the answer"
            )
            break
    return found
