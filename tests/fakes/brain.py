"""The deterministic "model" every strict fake upstream plays, whatever its wire format.

The family modules (``anthropic_api``, ``gemini_api``, ``openai_api``) decode their own request
format into the neutral ``Turn``/``Part`` list below and encode the ``Plan`` back into their
own response format; nothing here knows HTTP or a vendor's field names. Keeping the behaviour in
one place means a cell that fails on one column and passes on another points at the proxy's
translation for that family, not at a difference between fakes.

What the model does, looking at the last user turn:
- a tool result came back: it answers with the tool's output (``TOOL OUTPUT: …``);
- an image is attached (in the prompt or in a tool result): it describes what it decoded
  (``I SEE A PNG IMAGE 3x2``), so a test sees that the bytes really arrived;
- the prompt asks to run shell commands in backticks: it calls the client's shell tool, one
  command a step, with the tool name and input fields taken from the tools the client
  declared, and once every command's result is back it answers with their outputs;
- the prompt asks to read a file: it calls the client's file-reading tool;
- anything else: it says hello.
With thinking requested it thinks first (``THINKING: …``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any

HELLO = "Hello from the fake model."
TOOL_OUTPUT = "TOOL OUTPUT: "
_RUN = re.compile(r"shell command\s*`([^`]+)`", re.IGNORECASE)
_READ = re.compile(r"read the file\s*`([^`]+)`", re.IGNORECASE)


@dataclass
class Part:
    kind: str  # text | image | tool_call | tool_result
    text: str = ""
    mime: str = ""
    data: bytes = b""
    call_id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    images: list[Part] = field(default_factory=list)  # images inside a tool result


@dataclass
class Turn:
    role: str  # user | assistant
    parts: list[Part]


@dataclass
class Tool:
    name: str
    schema: dict[str, Any]


@dataclass
class Plan:
    thinking: str = ""
    text: str = ""
    tool_name: str = ""
    tool_input: dict[str, Any] = field(default_factory=dict)

    @property
    def calls_tool(self) -> bool:
        return bool(self.tool_name)


def describe_image(mime: str, data: bytes) -> str:
    """What the model 'sees': the format and size decoded from the bytes, or that it is broken."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        if mime != "image/png":
            return f"I SEE A PNG IMAGE LABELLED {mime}"
        return f"I SEE A PNG IMAGE {width}x{height}"
    return f"I SEE A BROKEN IMAGE ({mime}, {len(data)} bytes)"


def _find_tool(tools: list[Tool], names: tuple[str, ...], field_name: str) -> Tool | None:
    for tool in tools:
        if tool.name in names and field_name in (tool.schema.get("properties") or {}):
            return tool
    return None


def _user_text(turn: Turn) -> str:
    # Claude Code puts <system-reminder> blocks first and the prompt after them, and a proxy
    # may fold a mid-conversation system message into the same turn: the prompt is the last
    # text that is not a reminder.
    texts = [p.text for p in turn.parts if p.kind == "text" and p.text.strip()]
    prompts = [t for t in texts if not t.lstrip().startswith("<system-reminder>")]
    return (prompts or texts or [""])[-1]


def think(turns: list[Turn], tools: list[Tool], *, thinking: bool) -> Plan:
    last = next((t for t in reversed(turns) if t.role == "user"), Turn("user", []))
    plan = Plan()
    results = [p for p in last.parts if p.kind == "tool_result"]
    images = [p for p in last.parts if p.kind == "image"] + [i for r in results for i in r.images]
    prompt = _user_text(last)
    # The turn that asked for commands, and the tool results that came back since: one command
    # per model step, so a prompt with two commands makes a two-step tool loop.
    asked = next(
        (
            i
            for i in range(len(turns) - 1, -1, -1)
            if turns[i].role == "user" and _RUN.search(_texts(turns[i]))
        ),
        None,
    )
    if images:
        plan.text = "; ".join(describe_image(i.mime, i.data) for i in images)
    elif asked is not None:
        commands = _RUN.findall(_texts(turns[asked]))
        done = [
            p for t in turns[asked:] if t.role == "user" for p in t.parts if p.kind == "tool_result"
        ]
        shell = _find_tool(tools, ("Bash", "bash", "shell"), "command")
        if len(done) >= len(commands):
            plan.text = TOOL_OUTPUT + " | ".join(r.text.strip() for r in done[-len(commands) :])
        elif shell is None:
            plan.text = "I have no shell tool."
        else:
            plan.tool_name = shell.name
            plan.tool_input = {"command": commands[len(done)]}
            if "description" in shell.schema.get("properties", {}):
                plan.tool_input["description"] = "Run the command the user asked for"
    elif results:
        plan.text = TOOL_OUTPUT + results[-1].text.strip()
    elif match := _READ.search(_texts(last)):
        reader = _find_tool(tools, ("Read",), "file_path")
        if reader is None:
            plan.text = "I have no file-reading tool."
        else:
            plan.tool_name = reader.name
            plan.tool_input = {"file_path": match.group(1)}
    else:
        plan.text = HELLO
    if thinking:
        goal = f"call {plan.tool_name}" if plan.calls_tool else "answer"
        plan.thinking = f"THINKING: the user wrote {len(prompt)} characters; I will {goal}."
    return plan


def _texts(turn: Turn) -> str:
    return "\n".join(p.text for p in turn.parts if p.kind == "text")


def estimate_tokens(payload: bytes) -> int:
    """The fakes' token counter: deterministic and roughly real (4 bytes a token)."""
    return max(1, len(payload) // 4)
