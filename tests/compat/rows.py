"""The matrix's rows: one client session each, and what must be true afterwards.

Every check says why it failed in a few words (the table shows them); the reason names the
first thing that went wrong as the client saw it and, where the fake refused something, the
fake's own error message, which usually points straight at the proxy's translation.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

from tests.compat import diagnose
from tests.compat.cell import Cell, Outcome, Row
from tests.compat.claude import ClaudeRun
from tests.fakes import brain
from tests.fakes.strict import Faults

NO_THINKING = {"MAX_THINKING_TOKENS": "0"}
# $((6*7)) only becomes 42 if a shell really ran the command.
# Two commands: two model steps in one turn (Gemini 3 checks the signature of each step).
COMMANDS = ("echo compat-$((6*7))", "echo second-$((2+3))")
COMMAND_OUTPUT = "compat-42 | second-5"
TOOL_PROMPT = (
    f"Please run the shell command `{COMMANDS[0]}`, then the shell command `{COMMANDS[1]}`, "
    "and tell me what they printed."
)


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def last_body(received: bytes | bytearray) -> bytes:
    """The body of the last HTTP response in a connection's bytes, de-chunked."""
    raw = bytes(received)
    head, _, rest = raw[raw.rfind(b"HTTP/1.1 ") :].partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return rest
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return body


def why(cell: Cell, run: ClaudeRun | None = None, expected: str = "") -> str:
    """The short reason for a failure: what the client got, then what went wrong behind it
    (each only once: Claude Code often repeats the upstream's message)."""
    parts: list[str] = []

    def add(text: str) -> None:
        if text and not any(text[:60] in p for p in parts):
            parts.append(text)

    if run is not None:
        if run.returncode == 0 and not run.result.get("is_error") and expected:
            add(f"Claude Code answered {run.text[:80]!r}, expected {expected[:60]!r}")
        else:
            add(run.describe()[:200])
    assert cell.fake is not None and cell.relay is not None
    raw = cell.relay.proxy_to_client()
    for hint in diagnose.hints(raw):
        add(hint)
    if cell.fake.rejections:
        add(f"upstream refused: {cell.fake.rejections[0][:220]}")
    refused = cell.proxy_refused()
    errors = diagnose.proxy_errors(raw)
    if refused or errors:
        statuses = ", ".join(map(str, sorted(set(refused)))) or "200 + event: error"
        last = errors[-1] if errors else ""
        if last and any(last.split(": ", 1)[-1][:60] in p for p in parts):
            last = ""
        add(f"proxy answered {statuses}" + (f" ({last[:200]})" if last else ""))
    return "; ".join(parts) or "failed"


def ok_answer(run: ClaudeRun, expected: str, *, exact: bool = True) -> bool:
    if run.returncode != 0 or run.result.get("is_error"):
        return False
    return run.text.strip() == expected if exact else expected in run.text


def check_hello(cell: Cell) -> Outcome:
    run = cell.claude("-p", "say hello", "--output-format", "json", env=NO_THINKING)
    if not ok_answer(run, brain.HELLO):
        return Outcome(False, why(cell, run, brain.HELLO))
    client = cell.sdk(max_retries=0)
    try:
        message = client.messages.create(
            model=cell.model, max_tokens=256, messages=[{"role": "user", "content": "say hello"}]
        )
        text = "".join(b.text for b in message.content if b.type == "text")
        if text != brain.HELLO or message.content[-1].type != "text":
            kinds = [b.type for b in message.content]
            return Outcome(False, f"SDK create: answer {text!r} in {kinds}; {why(cell)}")
        with client.messages.stream(
            model=cell.model, max_tokens=256, messages=[{"role": "user", "content": "say hello"}]
        ) as stream:
            final = stream.get_final_message()
        text = "".join(b.text for b in final.content if b.type == "text")
        # The answer must be the last block: clients take the last block as the answer.
        if (
            text != brain.HELLO
            or final.stop_reason != "end_turn"
            or final.content[-1].type != "text"
        ):
            kinds = [b.type for b in final.content]
            return Outcome(
                False, f"SDK stream: answer {text!r} in {kinds} ({final.stop_reason}); {why(cell)}"
            )
    finally:
        client.close()
    if cell.column.account:
        # The seeded access token had expired and the fake never accepts it: every answer
        # above came through a refreshed token, exactly one refresh for the account.
        refreshes = getattr(cell.fake, "refreshes", 0)
        if refreshes != 1:
            return Outcome(False, f"expected one refresh of the expired account, saw {refreshes}")
        return Outcome(True, "Claude Code, SDK create and SDK stream, after one token refresh")
    return Outcome(True, "Claude Code, SDK create and SDK stream")


def check_tool_loop(cell: Cell) -> Outcome:
    run = cell.claude("-p", TOOL_PROMPT, "--output-format", "json", "--allowedTools", "Bash")
    expected = brain.TOOL_OUTPUT + COMMAND_OUTPUT
    if not ok_answer(run, expected, exact=False):
        return Outcome(False, why(cell, run, expected))
    return Outcome(True, "Bash ran, its output came back")


def check_thinking(cell: Cell) -> Outcome:
    run = cell.claude("-p", "say hello", "--output-format", "stream-json", "--verbose")
    if not ok_answer(run, brain.HELLO):
        return Outcome(False, why(cell, run, brain.HELLO))
    assert cell.fake is not None
    thoughts = [b.get("thinking", "") for b in run.blocks("thinking")]
    if cell.column.shows_thinking:
        if not any(t.startswith("THINKING:") for t in thoughts):
            return Outcome(
                False, f"no thinking block reached Claude Code (blocks: {len(thoughts)})"
            )
        return Outcome(True, "thinking shown, then the answer")
    asked = [
        e for e in cell.fake.log if isinstance(e.body, dict) and e.body.get("reasoning_effort")
    ]
    if not asked:
        return Outcome(False, "the upstream was not asked to reason")
    return Outcome(
        True,
        f"reasoning_effort {asked[0].body['reasoning_effort']} (reasoning not shown by the service)",
    )


def check_image(cell: Cell) -> Outcome:
    # Claude Code attaches images in -p mode through --input-format stream-json.
    image = base64.b64encode(png(3, 2)).decode()
    message = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": image},
                },
            ],
        },
    }
    run = cell.claude(
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        stdin=json.dumps(message) + "\n",
        env=NO_THINKING,
    )
    expected = brain.describe_image("image/png", png(3, 2))
    if not ok_answer(run, expected):
        return Outcome(False, why(cell, run, expected))
    return Outcome(True, "the PNG arrived intact (stream-json input)")


def check_context(cell: Cell) -> Outcome:
    run = cell.claude("-p", "/context", "--output-format", "json")
    if run.returncode != 0 or "Context Usage" not in run.text:
        return Outcome(False, why(cell, run, "## Context Usage"))
    assert cell.fake is not None
    generations = [
        e
        for e in cell.fake.log
        if e.path.endswith(("/messages", "Content", "/completions", "/responses"))
    ]
    if generations:
        # Claude Code falls back to max_tokens=1 message calls when count_tokens fails.
        return Outcome(
            False,
            f"count_tokens failed: Claude Code fell back to {len(generations)} message calls; {why(cell)}",
        )
    counted = [
        e
        for e in cell.fake.log
        if e.path.endswith(("count_tokens", ":countTokens", "/input_tokens"))
    ]
    refused = cell.proxy_refused()
    if refused:
        return Outcome(False, why(cell))
    client = cell.sdk(max_retries=0)
    try:
        tokens = client.messages.count_tokens(
            model=cell.model, messages=[{"role": "user", "content": "say hello"}]
        ).input_tokens
    finally:
        client.close()
    if tokens <= 0:
        return Outcome(False, f"SDK count_tokens gave {tokens}")
    where = (
        f"{len(counted)} upstream counts" if counted else "proxy estimate (no upstream endpoint)"
    )
    return Outcome(True, f"/context in -p works; {where}")


def check_fallback(cell: Cell) -> Outcome:
    # Claude Code waits out a 429's Retry-After (60 s for a transient cooldown): 30 s is enough
    # to tell a working fallback (seconds) from one the proxy refuses.
    run = cell.claude("-p", "say hello", "--output-format", "json", env=NO_THINKING, timeout=30)
    assert cell.fake is not None
    if not cell.fake.dropped_streams:
        return Outcome(False, "the fake never dropped a stream (no streamed request arrived)")
    if not ok_answer(run, brain.HELLO):
        return Outcome(False, why(cell, run, brain.HELLO))
    refused = cell.proxy_refused()
    if refused:
        return Outcome(
            False,
            f"answered only after the proxy refused ({', '.join(map(str, refused))}); {why(cell)}",
        )
    assert cell.relay is not None
    asked = diagnose.message_requests([bytes(sent) for sent, _ in cell.relay.connections])
    if any(not body.get("stream") for body in asked[1:]):
        how = "Claude Code's non-stream retry answered"
    elif len(asked) > 1:
        how = "Claude Code's stream retry answered"
    else:
        # Nothing had reached the client: the proxy opened the upstream stream again.
        how = "the proxy opened it again before the client saw anything"
    return Outcome(True, f"dropped stream; {how}")


def check_failover(cell: Cell) -> Outcome:
    run = cell.claude("-p", TOOL_PROMPT, "--output-format", "json", "--allowedTools", "Bash")
    assert cell.fake is not None
    expected = brain.TOOL_OUTPUT + COMMAND_OUTPUT
    if not cell.fake.rate_limited:
        return Outcome(False, "the 429 never happened: " + why(cell, run, expected))
    if not ok_answer(run, expected, exact=False):
        return Outcome(False, why(cell, run, expected))
    if cell.fake.summary()["credentials_used"] != [0, 1]:
        return Outcome(
            False,
            f"expected both credentials to serve, got {cell.fake.summary()['credentials_used']}",
        )
    return Outcome(True, "429 on the first credential, the session went on on the second")


def check_slow(cell: Cell) -> Outcome:
    run = cell.claude("-p", "say hello", "--output-format", "json", env=NO_THINKING)
    if not ok_answer(run, brain.HELLO):
        return Outcome(False, why(cell, run, brain.HELLO))
    assert cell.relay is not None
    if b": keep-alive" not in cell.relay.proxy_to_client():
        return Outcome(False, "no stream keep-alive reached the client during the pause")
    client = cell.sdk(max_retries=0, timeout=60)
    try:
        message = client.messages.create(
            model=cell.model, max_tokens=256, messages=[{"role": "user", "content": "say hello"}]
        )
    finally:
        client.close()
    text = "".join(b.text for b in message.content if b.type == "text")
    if text != brain.HELLO:
        return Outcome(False, f"SDK non-stream: answer {text!r}; {why(cell)}")
    if not last_body(cell.relay.connections[-1][1]).startswith(b"\n"):
        return Outcome(False, "no non-stream keep-alive newline before the SDK's answer")
    return Outcome(True, "4 s pause: keep-alives on both, answers intact")


SLOW = {"stream_keepalive_seconds": 1, "nonstream_keepalive_interval": 1}

ROWS: tuple[Row, ...] = (
    Row("hello", "hello", check_hello, "Claude Code + SDK"),
    Row("tool-loop", "streamed Bash tool loop", check_tool_loop, "Claude Code"),
    Row("thinking", "thinking on", check_thinking, "Claude Code"),
    Row("image", "image in the prompt", check_image, "Claude Code"),
    Row("context", "/context (token counting)", check_context, "Claude Code + SDK"),
    Row(
        "stream-fallback",
        "non-stream fallback after a dropped stream",
        check_fallback,
        "Claude Code",
        faults=lambda: Faults(drop_first_stream=True),
    ),
    Row(
        "failover-429",
        "429 on one credential mid-session",
        check_failover,
        "Claude Code",
        credentials=2,
        faults=lambda: Faults(rate_limit_first_credential=True),
        # Fill-first keeps the session on the first credential until it fails.
        settings={"routing_strategy": "fill-first"},
    ),
    Row(
        "slow-keepalive",
        "slow generation, both keep-alives on",
        check_slow,
        "Claude Code + SDK",
        faults=lambda: Faults(pause=4.0),
        settings=SLOW,
    ),
)
