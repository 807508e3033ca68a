"""Client tool names as valid Gemini function names, and the map back."""

from __future__ import annotations

import hashlib
import re
from typing import Any

_VALID_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.:-]")
_MAX_NAME = 128


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]


def gemini_tool_name(name: str) -> str:
    """A client tool name as a valid Gemini function name (unchanged when already valid)."""
    if _VALID_NAME.fullmatch(name):
        return name
    cleaned = _INVALID_NAME_CHARS.sub("_", name)
    if not cleaned or not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = "_" + cleaned
    if len(cleaned) > _MAX_NAME:
        # Keep names distinct after truncation (long MCP names often share a prefix).
        cleaned = cleaned[: _MAX_NAME - 9] + "_" + _short_hash(name)
    return cleaned


def _declared_names(body: dict[str, Any]) -> dict[str, str]:
    """client name -> Gemini name for every declared custom tool, collisions disambiguated."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for tool in _custom_tools(body):
        original = tool["name"]
        if original in names:
            continue
        sanitised = gemini_tool_name(original)
        if sanitised in used:
            sanitised = sanitised[: _MAX_NAME - 9] + "_" + _short_hash(original)
        names[original] = sanitised
        used.add(sanitised)
    return names


def tool_name_map(body: dict[str, Any]) -> dict[str, str]:
    """Gemini function name -> client tool name, for names ``build_request`` had to change.

    Pass it as ``tool_names=`` to ``translate_response`` / ``StreamTranslator``.
    """
    return {
        gemini: original for original, gemini in _declared_names(body).items() if gemini != original
    }


def _custom_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    custom = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            continue
        # Server tools (web_search_20250305, bash_20250124, …) have a versioned type and no
        # input_schema; Gemini cannot run them, so they are dropped.
        if tool.get("type") in (None, "custom") or "input_schema" in tool:
            custom.append(tool)
    return custom
