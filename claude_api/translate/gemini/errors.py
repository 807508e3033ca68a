"""Errors: any Gemini error response in the Anthropic vocabulary."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from claude_api.translate.common import ErrorInfo, error_type_for_status, prompt_too_long_message

_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "INTERNAL": (500, "api_error"),
    "UNAVAILABLE": (529, "overloaded_error"),
    "DEADLINE_EXCEEDED": (504, "timeout_error"),
}
# HTTP statuses that differ from a 1:1 pass-through when the body names no Google status.
_HTTP_STATUS = {503: (529, "overloaded_error")}

_API_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_TOO_LONG = (
    # "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
    re.compile(
        r"input token count\D{0,10}(\d+)\D{0,10}exceeds the maximum number of tokens allowed\D{0,10}(\d+)",
        re.I,
    ),
    # Vertex: "the input token count is 1234567 but model only supports up to 1048576"
    re.compile(r"input token count is (\d+) but (?:the )?model only supports up to (\d+)", re.I),
)
_TOO_LONG_HINT = re.compile(
    r"exceeds the maximum number of tokens|input token count is \d+ but|prompt is too long", re.I
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_RETRY_IN_MESSAGE = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.I)
_SCHEMA_REJECTION = re.compile(r"parameters_?json_?schema|function_?declarations?|\bschema\b", re.I)
_MAX_MESSAGE = 2000
_MAX_TEXT_MESSAGE = 500  # non-JSON bodies are usually HTML error pages


def parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    """A Gemini error response (any body, even garbage) in the Anthropic vocabulary."""
    try:
        return _parse_error(status, body)
    except Exception:  # an error parser must never raise, whatever the upstream sent
        status = status if isinstance(status, int) and status >= 400 else 500
        return ErrorInfo(status, error_type_for_status(status), _status_phrase(status))


def _parse_error(status: int, body: bytes | str | dict[str, Any] | None) -> ErrorInfo:
    data: Any = body
    text = ""
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # the non-SSE stream endpoint wraps everything in an array
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        message = text[:_MAX_TEXT_MESSAGE] if text and data is None else ""
        if not message and isinstance(error, str):
            message = error
        status = status if status >= 400 else 500
        mapped = _HTTP_STATUS.get(status, (status, error_type_for_status(status)))
        return ErrorInfo(mapped[0], mapped[1], message or _status_phrase(status))

    code = error.get("code")
    if status < 400 and isinstance(code, int) and code >= 400:
        status = code
    status = status if status >= 400 else 500
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    message = message.strip()[:_MAX_MESSAGE] or _status_phrase(status)
    google_status = error.get("status") if isinstance(error.get("status"), str) else ""
    details = error.get("details") if isinstance(error.get("details"), list) else []

    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if reasons & _API_KEY_REASONS or "API key not valid" in message or "API key expired" in message:
        return ErrorInfo(401, "authentication_error", message)

    if status in (400, 413) and _TOO_LONG_HINT.search(message):
        tokens = maximum = None
        for pattern in _TOO_LONG:
            match = pattern.search(message)
            if match:
                tokens, maximum = int(match.group(1)), int(match.group(2))
                break
        return ErrorInfo(400, "invalid_request_error", prompt_too_long_message(tokens, maximum))

    if google_status in _GOOGLE_STATUS:
        mapped_status, error_type = _GOOGLE_STATUS[google_status]
    else:
        mapped_status, error_type = _HTTP_STATUS.get(
            status, (status, error_type_for_status(status))
        )

    retry_after = _retry_delay(details)
    if retry_after is None and mapped_status == 429:
        match = _RETRY_IN_MESSAGE.search(message)
        if match:
            retry_after = _seconds(match.group(1), match.group(2))
    return ErrorInfo(mapped_status, error_type, message, retry_after)


def _retry_delay(details: list[Any]) -> float | None:
    for detail in details:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            if match:
                return _seconds(match.group(1), match.group(2))
        elif isinstance(delay, dict):  # the proto form {"seconds": 34, "nanos": 5e8}
            seconds = delay.get("seconds") or 0
            nanos = delay.get("nanos") or 0
            try:
                return float(seconds) + float(nanos) / 1e9
            except (TypeError, ValueError):
                return None
    return None


def _seconds(amount: str, unit: str | None) -> float:
    value = float(amount)
    return {"ms": value / 1000, "m": value * 60, "h": value * 3600}.get(unit or "s", value)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Upstream error (HTTP {status})"


def is_schema_rejection(info: ErrorInfo) -> bool:
    """A 400 about the tool declarations: retry once with ``schema_mode="parameters"``."""
    return info.status == 400 and bool(_SCHEMA_REJECTION.search(info.message))
