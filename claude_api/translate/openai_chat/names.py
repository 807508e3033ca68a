"""Tool names: OpenAI's ``^[a-zA-Z0-9_-]{1,64}$`` and the reversible aliases that keep longer
names (Claude Code's MCP tools) usable.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from claude_api.translate.common import (
    iter_messages,
)

_VALID_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_INVALID_TOOL_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class ToolNames:
    """A reversible alias map for one request's tool names.

    OpenAI requires ``^[a-zA-Z0-9_-]{1,64}$``; Claude Code's MCP tools (``mcp__server__tool``)
    routinely exceed 64 characters. Valid names are not stored and map to themselves.
    """

    __slots__ = ("_down", "_up")

    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self._up: dict[str, str] = dict(aliases or {})
        self._down: dict[str, str] = {alias: name for name, alias in self._up.items()}

    def to_upstream(self, name: str) -> str:
        return self._up.get(name, name)

    def to_client(self, name: str) -> str:
        return self._down.get(name, name)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._up)


def _alias(name: str, taken: set[str]) -> str:
    # Keep the head (server) and the tail (tool) of long MCP names so the model still sees a
    # meaningful name; the hash makes the alias unique and deterministic across requests,
    # which keeps upstream prompt caches warm.
    clean = _INVALID_TOOL_CHARS.sub("_", name) or "tool"
    if len(clean) > 55:
        clean = clean[:20] + "_" + clean[-34:]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    size = 8
    alias = f"{clean}_{digest[:size]}"
    while alias in taken and size < 16:
        size += 2
        alias = f"{clean[: 63 - size]}_{digest[:size]}"
    return alias


def tool_names(body: dict[str, Any]) -> ToolNames:
    """Aliases for every tool name the request mentions (tools, history, tool_choice)."""
    names: list[str] = []
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                names.append(tool["name"])
    for message in iter_messages(body):
        if message["role"] == "assistant" and isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    if isinstance(block.get("name"), str):
                        names.append(block["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        names.append(choice["name"])

    invalid = [name for name in names if not _VALID_TOOL_NAME.fullmatch(name)]
    if not invalid:
        return ToolNames()
    taken = {name for name in names if name not in invalid}
    aliases: dict[str, str] = {}
    for name in invalid:
        if name not in aliases:
            alias = _alias(name, taken)
            taken.add(alias)
            aliases[name] = alias
    return ToolNames(aliases)
