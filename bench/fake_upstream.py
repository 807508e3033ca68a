"""A deliberately fast fake Anthropic upstream for the benchmark (raw asyncio, keep-alive).

    python bench/fake_upstream.py PORT

POST .../v1/messages answers a fixed message; with "stream": true it sends SSE events, each
carrying the wall-clock time it was written (``sent_at``) so the client can measure relay delay.
``"bench_gap_ms"`` in the body sets the pause between streamed events, ``"bench_deltas"`` how
many text deltas a stream carries (10).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-bench",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
).encode()


def sse(name: str, data: dict) -> bytes:
    data["sent_at"] = time.time()
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            stream = b'"stream": true' in body or b'"stream":true' in body
            if not stream:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(MESSAGE), MESSAGE)
                )
                await writer.drain()
                continue
            options = json.loads(body)
            gap = options.get("bench_gap_ms", 0) / 1000
            deltas = int(options.get("bench_deltas", 10))
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            events = [
                (
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_bench",
                            "type": "message",
                            "role": "assistant",
                            "model": "claude-bench",
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {"input_tokens": 5, "output_tokens": 1},
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
                *[
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": f"w{i} "},
                        },
                    )
                    for i in range(deltas)
                ],
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": 10},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
            for index, (name, data) in enumerate(events):
                if gap and index:
                    # The first event goes out at once, like a real upstream's message_start.
                    await asyncio.sleep(gap)
                chunk = sse(name, data)
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
