"""A real HTTP server on 127.0.0.1 (random port) that plays an upstream, scripted per test.

It runs its own event loop in a background thread, so it serves the proxy whether the proxy runs
in-process (Django's AsyncClient) or as a daphne subprocess. Each response is a ``Respond``:
a status, headers, and a body given whole or as timed chunks (to split SSE at odd byte
boundaries, pause between events, or drop the connection mid-stream).

    upstream.script("/v1/messages", Respond.json({...}, status=429, headers={"retry-after": "30"}))
    upstream.default = lambda request: Respond.anthropic_message("hi", request)
    upstream.requests[-1].json()["model"]
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

DROP = object()  # in a chunk list: close the connection right there


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    finished: bool = False  # the whole response was written
    client_gone: bool = False  # the proxy closed the connection before the response ended

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Respond:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[Any] | None = None  # bytes | float (sleep seconds) | DROP
    delay: float = 0.0  # before the status line

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None, **kw):
        return cls(
            status,
            {"content-type": "application/json", **(headers or {})},
            json.dumps(data).encode(),
            **kw,
        )

    @classmethod
    def gzipped_json(cls, data: Any, status: int = 200, content_encoding: bool = False):
        headers = {"content-type": "application/json"}
        if content_encoding:
            headers["content-encoding"] = "gzip"
        return cls(status, headers, gzip.compress(json.dumps(data).encode()))

    @classmethod
    def error(cls, status: int, error_type: str, message: str, headers=None, **kw):
        return cls.json(
            {"type": "error", "error": {"type": error_type, "message": message}},
            status,
            headers,
            **kw,
        )

    @classmethod
    def sse(
        cls,
        events: Iterable[tuple[str | None, Any]],
        *,
        gap: float = 0.0,
        split: int | None = None,
        headers: dict[str, str] | None = None,
        terminator: bytes = b"\n\n",
        tail: list[Any] | None = None,
    ):
        """SSE from (event name or None, data) pairs; ``split`` cuts every event into pieces of
        that many bytes (written as separate chunks), ``gap`` sleeps between events."""
        chunks: list[Any] = []
        for name, data in events:
            payload = data if isinstance(data, bytes | str) else json.dumps(data)
            if isinstance(payload, str):
                payload = payload.encode()
            raw = (f"event: {name}\n".encode() if name else b"") + b"data: " + payload + terminator
            if split:
                chunks.extend(raw[i : i + split] for i in range(0, len(raw), split))
            else:
                chunks.append(raw)
            if gap:
                chunks.append(gap)
        chunks.extend(tail or [])
        return cls(200, {"content-type": "text/event-stream", **(headers or {})}, chunks=chunks)

    # Anthropic-shaped helpers --------------------------------------------------------------

    @classmethod
    def anthropic_message(cls, text: str = "Hello!", model: str = "claude-test", **kw):
        return cls.json(anthropic_message(text, model), **kw)

    @classmethod
    def anthropic_stream(cls, text: str = "Hello!", model: str = "claude-test", **kw):
        return cls.sse(anthropic_events(text, model), **kw)


def anthropic_message(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def anthropic_events(text: str, model: str) -> list[tuple[str, dict[str, Any]]]:
    words = text.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    return [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake01",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
            for p in pieces
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def echo_anthropic(request: Recorded) -> Respond:
    """Default behaviour: answer like Anthropic, streaming when asked to."""
    if request.path.endswith("/count_tokens"):
        return Respond.json({"input_tokens": 42})
    try:
        body = request.json()
    except ValueError:
        return Respond.error(400, "invalid_request_error", "bad json")
    model = body.get("model", "claude-test")
    if body.get("stream"):
        return Respond.anthropic_stream("Hello from the fake upstream", model)
    return Respond.anthropic_message("Hello from the fake upstream", model)


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default: Callable[[Recorded], Respond] = echo_anthropic
        self._scripts: dict[str, deque[Respond | Callable[[Recorded], Respond]]] = defaultdict(
            deque
        )
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.open_connections = 0
        self.port = 0

    # Lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Scripting ------------------------------------------------------------------------------

    def script(self, path: str, *responses: Respond | Callable[[Recorded], Respond]) -> None:
        """Queue responses for requests whose path starts with ``path`` (first in, first out)."""
        self._scripts[path].extend(responses)

    def reset(self) -> None:
        self.requests.clear()
        self._scripts.clear()
        self.default = echo_anthropic

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def _next_response(self, request: Recorded) -> Respond:
        for prefix in sorted(self._scripts, key=len, reverse=True):
            queue = self._scripts[prefix]
            if request.path.startswith(prefix) and queue:
                item = queue.popleft()
                return item(request) if callable(item) else item
        return self.default(request)

    # HTTP -----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                keep_open = await self._respond(request, reader, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self.open_connections -= 1
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Recorded | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip() or b"0", 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        elif headers.get("content-length"):
            body = await reader.readexactly(int(headers["content-length"]))
        parts = urlsplit(target)
        return Recorded(method, parts.path, parse_qs(parts.query), headers, body)

    async def _respond(
        self, request: Recorded, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        response = self._next_response(request)
        if response.delay:
            await asyncio.sleep(response.delay)
        head = [f"HTTP/1.1 {response.status} Fake"]
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.chunks is None:
            headers["content-length"] = str(len(response.body))
        else:
            headers["transfer-encoding"] = "chunked"
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if response.chunks is None:
            writer.write(response.body)
            await writer.drain()
            request.finished = True
            return True
        try:
            for chunk in response.chunks:
                if chunk is DROP:
                    writer.transport.abort()
                    return False
                if isinstance(chunk, int | float):
                    if await _client_left_during(reader, chunk):
                        request.client_gone = True
                        return False
                    continue
                if not chunk:
                    continue
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                if writer.transport.is_closing():
                    request.client_gone = True
                    return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, RuntimeError):
            request.client_gone = True
            return False
        request.finished = True
        return True


async def _client_left_during(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Sleep, but notice at once when the proxy closes the connection (EOF on our side)."""
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=seconds)
    except TimeoutError:
        return False
    return data == b""
