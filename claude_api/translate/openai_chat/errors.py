"""Errors: an upstream error body in Anthropic's vocabulary (``parse_error``), and which field a
server refused (``rejected_fields``) that the proxy may go without (``omission_for``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from claude_api.translate.common import (
    ErrorInfo,
    error_type_for_status,
    prompt_too_long_message,
)
from claude_api.translate.openai_chat.request import OpenAIOptions, _dumps

_CONTEXT_PHRASES = (
    "maximum context length",
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the available context size",
    "exceed_context_size",
    "exceeds the maximum number of tokens",
)
_MAXIMUM_PATTERNS = (
    re.compile(r"maximum context length is (?:about )?([\d,]+)"),
    re.compile(r"context length of (?:only )?([\d,]+)"),
    re.compile(r"context (?:window|size|limit)(?: is| of)? ([\d,]+)"),
    re.compile(r"[\d,]+ tokens? > ([\d,]+)"),
    re.compile(r"maximum number of tokens allowed \(([\d,]+)\)"),
    re.compile(r"([\d,]+) maximum context length"),
)
_PROMPT_PATTERNS = (
    re.compile(r"\(([\d,]+) (?:in the messages|of text input)"),
    re.compile(r"has ([\d,]+) input tokens"),
    re.compile(r"resulted in ([\d,]+) tokens"),
    re.compile(r"requested (?:about )?([\d,]+) tokens"),
    re.compile(r"([\d,]+) tokens? > [\d,]+"),
    re.compile(r"keep the first ([\d,]+) tokens"),
    re.compile(r"input token count \(([\d,]+)\)"),
    re.compile(r"prompt contains ([\d,]+) tokens"),
)
_COMPLETION_PATTERNS = (
    re.compile(r"([\d,]+) in the (?:completion|output)"),
    re.compile(r"max_(?:completion_)?tokens'? is too large: ([\d,]+)"),
)
_RETRY_PATTERN = re.compile(
    r"(?:try again|retry) (?:in|after) (?:about )?((?:\d+(?:\.\d+)?(?:ms|h|m|s)?)+)(?: ?(seconds?|secs?))?"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")
# Google's OpenAI-compatible endpoint reports status names.
_STATUS_NAMES = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if not match:
        return None
    digits = match.group(1).replace(",", "")
    return int(digits) if digits.isdigit() else None


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        value = _number(pattern, text)
        if value:
            return value
    return None


def _context_message(message: str, error: dict[str, Any]) -> str:
    low = message.lower()
    maximum = _first_number(_MAXIMUM_PATTERNS, low) or _int(error.get("n_ctx")) or None
    prompt = _first_number(_PROMPT_PATTERNS, low) or _int(error.get("n_prompt_tokens")) or None
    completion = _first_number(_COMPLETION_PATTERNS, low)
    if prompt and maximum and completion and prompt <= maximum:
        # The messages fit; messages + max_tokens do not. Anthropic's wording for that case
        # makes Claude Code lower max_tokens instead of compacting.
        return f"input length and `max_tokens` exceed context limit: {prompt} + {completion} > {maximum}"
    return prompt_too_long_message(prompt, maximum)


def _retry_after(message: str) -> float | None:
    match = _RETRY_PATTERN.search(message.lower())
    if not match:
        return None
    total = 0.0
    for amount, unit in _DURATION_PART.findall(match.group(1)):
        value = float(amount)
        total += {"ms": value / 1000, "m": value * 60, "h": value * 3600}.get(unit, value)
    return total if total > 0 else None


def _status_from_code(code: Any, status_name: Any) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)
    if isinstance(status_name, str) and status_name in _STATUS_NAMES:
        return _STATUS_NAMES[status_name]
    if code in ("rate_limit_exceeded", "insufficient_quota"):
        return 429
    return 500


def _error_fields(
    body: bytes | str | dict[str, Any] | list[Any] | None,
) -> tuple[str, dict[str, Any]]:
    """(message, error object) from whatever an upstream sent."""
    data: Any = body
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        text = data.strip()
        try:
            data = json.loads(text) if text[:1] in ("{", "[") else text
        except ValueError:
            data = text
        if isinstance(data, str):
            return data, {}
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), {})
    if not isinstance(data, dict):
        return "", {}
    error = data.get("error")
    if isinstance(error, dict):
        obj = error
    elif isinstance(error, str):
        obj = {**data, "message": error}
    else:
        obj = data
    message = obj.get("message") or obj.get("msg")
    if not message:
        detail = obj.get("detail")
        if isinstance(detail, list):  # FastAPI-style validation errors (vLLM, LM Studio…)
            message = "; ".join(
                str(d.get("msg")) if isinstance(d, dict) else str(d) for d in detail
            )
        elif detail:
            message = detail
    message = message if isinstance(message, str) else _dumps(message) if message else ""
    metadata = obj.get("metadata")
    raw = metadata.get("raw") if isinstance(metadata, dict) else None
    if isinstance(raw, str) and raw and raw not in message:
        # OpenRouter wraps the provider's real error as "Provider returned error" + raw.
        message = f"{message}: {raw}" if message else raw
    return message, obj


def parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    """An upstream error mapped to Anthropic's vocabulary. Never raises.

    ``status`` below 400 (an error inside a 200 stream or body) is derived from the body's code.
    """
    try:
        return _parse_error(status, body)
    except Exception:  # garbage in must never become a 500 in our own error path
        status = status if isinstance(status, int) and status >= 400 else 500
        return ErrorInfo(status, error_type_for_status(status), f"upstream returned HTTP {status}")


def _parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    message, error = _error_fields(body)
    message = " ".join(message.split())[:2000]
    code = error.get("code")
    if not isinstance(status, int) or status < 400:
        status = _status_from_code(code, error.get("status"))
    code_text = str(code).lower() if code is not None else ""
    kind = str(error.get("type") or "").lower()
    low = message.lower()

    if status != 429 and (
        code_text in ("context_length_exceeded", "string_above_max_length")
        or "exceed_context_size" in kind
        or any(phrase in low for phrase in _CONTEXT_PHRASES)
    ):
        # Claude Code reacts to this exact wording by compacting; never a 5xx (retried forever).
        return ErrorInfo(400, "invalid_request_error", _context_message(message, error))
    if not message:
        message = f"upstream returned HTTP {status}"
    retry_after = _retry_after(message) if status == 429 or status >= 500 else None
    if status == 429:
        if "insufficient_quota" in (code_text, kind) and "quota" not in low:
            message = f"upstream quota exhausted (insufficient_quota): {message}"
        return ErrorInfo(429, "rate_limit_error", message, retry_after)
    if (
        status >= 500
        and status != 529
        and ("overloaded" in kind or "overloaded" in code_text or "overloaded" in low)
    ):
        # 503 alone is usually a gateway/maintenance problem (api_error); an explicit
        # "overloaded" maps to 529 so clients apply their overload handling (backoff, fallback model).
        return ErrorInfo(529, "overloaded_error", message, retry_after)
    return ErrorInfo(status, error_type_for_status(status), message, retry_after)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    return 0


# --------------------------------------------------------------------------------------------
# Fields a server refuses
# --------------------------------------------------------------------------------------------

# Fields the proxy adds on its own initiative and can go without (or, for the max-tokens pair,
# spell the other way). A field the client chose (temperature, stop, tools…) is never dropped:
# a server refusing it gets its 400 passed back to the client.
OMITTABLE = frozenset(
    {
        "reasoning_content",
        "reasoning",
        "reasoning_effort",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "parallel_tool_calls",
        "user",
    }
)
_REASONING_FIELDS = frozenset({"reasoning_content", "reasoning"})
_TOP_LEVEL_OMITTABLE = OMITTABLE - _REASONING_FIELDS


@dataclass(frozen=True, slots=True)
class RejectedField:
    """A field an upstream named as not allowed, with where it sat: ``("messages", "2",
    "reasoning_content")`` or ``("reasoning_effort",)`` (only the name when the server said no
    more)."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path[-1]


_NAME = r"[A-Za-z_][\w.\[\]-]*"
# Each pattern captures the refused field (possibly a path such as messages[2].reasoning_content);
# some also capture a location the server reported separately.
_REJECTION_PATTERNS = (
    # OpenAI: "Unrecognized request argument supplied: reasoning_effort" (also a comma list).
    re.compile(r"unrecognized request arguments? supplied:\s*(?P<list>[\w, ]+)", re.I),
    # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. …"
    # and "Unsupported value: 'stream_options' …", "Unknown parameter: 'messages[2].reasoning'."
    re.compile(
        rf"(?:unsupported|unknown|unrecognized) (?:parameter|value|field|argument)s?:?\s*"
        rf"[`'\"](?P<name>{_NAME})[`'\"]",
        re.I,
    ),
    # OpenAI's JSON-schema validator: "Additional properties are not allowed ('reasoning_content'
    # was unexpected) - 'messages[2]'" (a list with "were unexpected").
    re.compile(
        r"additional properties are not allowed \((?P<list>[^)]*?)\s*(?:was|were) unexpected\)"
        r"(?:\s*-\s*'(?P<where>[^']*)')?",
        re.I,
    ),
    # Groq: "'messages.2' : property 'reasoning_content' is unsupported"
    re.compile(
        rf"(?:'(?P<where>[^']*)'\s*:\s*)?property [`'\"](?P<name>{_NAME})[`'\"] is "
        r"(?:unsupported|not supported|not allowed)",
        re.I,
    ),
    # Go servers: json: unknown field "reasoning_content"
    re.compile(rf"unknown field [`'\"](?P<name>{_NAME})[`'\"]", re.I),
    # DeepSeek's reasoner: "… Please remove the reasoning_content from your message …"
    re.compile(rf"please remove (?:the )?[`'\"]?(?P<name>{_NAME}?)[`'\"]? (?:field )?from", re.I),
    # "'reasoning_effort' is not supported", "reasoning_effort is not allowed", "… not permitted"
    re.compile(
        rf"[`'\"](?P<name>{_NAME})[`'\"] (?:parameter |field )?is (?:not supported|not allowed|"
        r"not permitted|unsupported|unexpected)",
        re.I,
    ),
)
# pydantic (vLLM, SGLang, LiteLLM, Mistral) as Python reprs inside a message string:
# [{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), 'msg': 'Extra inputs …'}]
_PYDANTIC_REPR = re.compile(r"'type':\s*'extra_forbidden',\s*'loc':\s*[(\[](?P<loc>[^)\]]*)[)\]]")
_PATH_SPLIT = re.compile(r"[.\[\]]+")
_CODES_NAMING_PARAM = frozenset({"unsupported_parameter", "unknown_parameter", "unknown_field"})


def _split_path(text: str) -> tuple[str, ...]:
    return tuple(part for part in _PATH_SPLIT.split(text.strip().strip("'\"`")) if part)


def _walk(value: Any, found: list[RejectedField], strings: list[str]) -> None:
    if isinstance(value, str):
        strings.append(value)
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            # A JSON document inside a message string (vLLM, OpenRouter's metadata.raw).
            try:
                _walk(json.loads(text), found, strings)
            except ValueError:
                pass
    elif isinstance(value, list):
        for item in value:
            _walk(item, found, strings)
    elif isinstance(value, dict):
        loc = value.get("loc")
        if value.get("type") == "extra_forbidden" and isinstance(loc, list):
            path = tuple(str(part) for part in loc if part != "body")
            if path:
                found.append(RejectedField(path))
        param = value.get("param")
        if value.get("code") in _CODES_NAMING_PARAM and isinstance(param, str) and param:
            path = _split_path(param)
            if path:
                found.append(RejectedField(path))
        for item in value.values():
            _walk(item, found, strings)


def rejected_fields(body: bytes | str | dict[str, Any] | list[Any] | None) -> list[RejectedField]:
    """Every field an upstream's 4xx body says is not allowed, in the order it names them.

    Only phrasings that refuse a field count; a message that merely mentions one ("'max_tokens' is
    too large", DeepSeek's "Missing reasoning_content field") names nothing. Never raises.
    """
    data: Any = body
    if isinstance(data, bytes | bytearray):
        data = data.decode("utf-8", "replace")
    found: list[RejectedField] = []
    strings: list[str] = []
    if isinstance(data, str):
        _walk(data, found, strings)  # parses the JSON if it is JSON
    else:
        _walk(data, found, strings)
    for text in strings:
        for match in _PYDANTIC_REPR.finditer(text):
            parts = [p.strip().strip("'\"") for p in match.group("loc").split(",")]
            path = tuple(p for p in parts if p and p != "body")
            if path:
                found.append(RejectedField(path))
        for pattern in _REJECTION_PATTERNS:
            for match in pattern.finditer(text):
                groups = match.groupdict()
                where = _split_path(groups.get("where") or "")
                if groups.get("list") is not None:
                    names = [n.strip().strip("'\"[]` ") for n in groups["list"].split(",")]
                else:
                    names = [groups.get("name") or ""]
                for name in names:
                    path = _split_path(name)
                    if path:
                        found.append(RejectedField(where + path))
    unique: list[RejectedField] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def omission_for(
    rejected: list[RejectedField], payload: dict[str, Any], options: OpenAIOptions
) -> str | None:
    """The proxy-added field to go without after ``rejected``, or None when the server refused
    something the client asked for (or something this payload did not carry).

    Only fields this payload actually carried, at the place the proxy puts them, qualify: the
    reasoning field on a message, the others at the top level. A field of the same name inside a
    tool schema is the client's.
    """
    for item in rejected:
        top, name = item.path[0], item.name
        if name in _REASONING_FIELDS and top in ("messages", name):
            messages = payload.get("messages")
            if not isinstance(messages, list) or not any(
                isinstance(m, dict) and name in m for m in messages
            ):
                continue
            candidate = name
        elif top in _TOP_LEVEL_OMITTABLE and top in payload:
            # The knob itself, or a key inside it ("stream_options.include_usage"): it all goes.
            candidate = top
        else:
            continue
        if candidate not in options.omit:
            return candidate
    return None
