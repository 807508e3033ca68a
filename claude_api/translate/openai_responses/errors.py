"""Errors: a Responses error (an HTTP error body, a ``response.failed`` event's ``error``, an
``error`` event) in Anthropic's vocabulary.

On top of the OpenAI rules (openai_chat.errors: context overflow becomes 400 "prompt is too
long", 429 stays a rate limit, "overloaded" becomes 529), the Codex backend's own:

| upstream                                              | becomes                                   |
|-------------------------------------------------------|-------------------------------------------|
| ``usage_limit_reached`` (type or code)                | 429, code kept, retry after ``resets_in_seconds`` or ``resets_at`` − now |
| "selected model is at capacity", ``server_is_overloaded`` | 429 without a reset: exponential backoff |
| in-stream error without an HTTP status                | ``status_code``/``status``, else by type or code (400/401/403/404/429), else 502 |
"""

from __future__ import annotations

import json
import math
from typing import Any

from claude_api.translate.common import ErrorInfo, error_type_for_status
from claude_api.translate.openai_chat.errors import parse_error as parse_openai_error

USAGE_LIMIT = "usage_limit_reached"
CAPACITY_CODES = frozenset({"server_is_overloaded", "model_at_capacity", "slow_down"})
CAPACITY_PHRASES = ("selected model is at capacity", "model is at capacity")
# In-stream errors name no HTTP status; these words give one (the reference's table).
_STATUS_BY_WORD = (
    (("invalid_request", "bad_request", "cyber_policy", "invalid_prompt"), 400),
    (("context_length_exceeded",), 400),
    (
        ("authentication", "invalid_api_key", "unauthorized", "token_invalidated", "token_expired"),
        401,
    ),
    (("permission",), 403),
    (("not_found", "model_not_found"), 404),
    (("rate_limit", "insufficient_quota", USAGE_LIMIT), 429),
)


def _loads(body: Any) -> Any:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text
    return body


def error_object(body: Any) -> dict[str, Any]:
    """The error object inside whatever the upstream sent ({} if there is none)."""
    data = _loads(body)
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), {})
    if not isinstance(data, dict):
        return {"message": data} if isinstance(data, str) and data else {}
    response = data.get("response")
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return response["error"]  # response.failed
    error = data.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str) and error:
        return {**data, "message": error}
    if isinstance(data.get("detail"), str):  # the ChatGPT backend's FastAPI-style refusals
        return {"message": data["detail"]}
    return data


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def usage_limit_delay(error: dict[str, Any], now: float) -> float | None:
    """Seconds until a usage limit resets: ``resets_in_seconds``, else ``resets_at`` (unix)."""
    seconds = _number(error.get("resets_in_seconds"))
    if seconds is not None:
        return seconds
    resets_at = _number(error.get("resets_at"))
    if resets_at is not None:
        return max(resets_at - now, 0.0)
    return None


def _status_for(error: dict[str, Any]) -> int:
    for key in ("status_code", "status"):
        value = error.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
    words = " ".join(str(error.get(key) or "") for key in ("type", "code")).lower()
    for needles, status in _STATUS_BY_WORD:
        if any(needle in words for needle in needles):
            return status
    message = str(error.get("message") or "").lower()
    if "context window" in message or "context length" in message:
        return 400
    return 502


def parse_error(status: int, body: Any, *, now: float) -> ErrorInfo:
    """An upstream error mapped to Anthropic's vocabulary. ``status`` below 400: an error that
    arrived inside a 200 stream. Never raises."""
    try:
        return _parse_error(status, body, now)
    except Exception:  # garbage in must never become a 500 in our own error path
        status = status if isinstance(status, int) and status >= 400 else 502
        return ErrorInfo(status, error_type_for_status(status), f"upstream returned HTTP {status}")


def _parse_error(status: int, body: Any, now: float) -> ErrorInfo:
    error = error_object(body)
    if not isinstance(status, int) or status < 400:
        status = _status_for(error)
    kind = str(error.get("type") or "").lower()
    code = str(error.get("code") or "").lower()
    message = " ".join(str(error.get("message") or "").split())[:2000]
    if USAGE_LIMIT in (kind, code):
        delay = usage_limit_delay(error, now)
        plan = error.get("plan_type")
        text = message or "The usage limit has been reached"
        if isinstance(plan, str) and plan and plan not in text:
            text = f"{text} (plan: {plan})"
        return ErrorInfo(429, "rate_limit_error", text, delay, code=USAGE_LIMIT)
    if code in CAPACITY_CODES or any(phrase in message.lower() for phrase in CAPACITY_PHRASES):
        # No reset time: the cooldown policy backs off exponentially on that model.
        return ErrorInfo(429, "rate_limit_error", message or "model at capacity", code="capacity")
    info = parse_openai_error(status, {"error": {**error, "message": message}})
    return ErrorInfo(info.status, info.error_type, info.message, info.retry_after, code=code)
