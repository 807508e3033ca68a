"""When an account's token is refreshed and what a token endpoint's answer means. Pure.

| answer of the token endpoint                     | effect                                       |
|--------------------------------------------------|----------------------------------------------|
| 200 with access_token                            | store (rotated refresh token first), use     |
| 400/401/403 invalid_grant, refresh_token_reused, | needs login, but only when the stored        |
|   …_expired, …_invalidated, any other 4xx        | refresh token is still the one we sent       |
| 408, 429 (Retry-After clamped 5 s–5 min)         | back off; keep serving the current token     |
| 5xx, network, timeout                            | back off 5 s·2^n ≤ 5 min; same               |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.oauth.pkce import CLAUDE, CODEX
from accounts.secrets import redact

# A token this close to its expiry is treated as expired: the request would outlive it.
EXPIRY_SKEW_SECONDS = 30.0
MIN_BACKOFF_SECONDS = 5.0
# The background refresh leaves an account alone this long after its last refresh.
MIN_REFRESH_INTERVAL = 300.0
MAX_BACKOFF_SECONDS = 300.0
TRANSIENT_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))


def refresh_lead(provider: str, *, claude_lead: float, codex_lead: float) -> float:
    return codex_lead if provider == CODEX else claude_lead if provider == CLAUDE else 0.0


def is_expired(expires_at: float | None, now: float) -> bool:
    """No known expiry: assume valid (a pasted setup token), the upstream's 401 will tell."""
    return expires_at is not None and expires_at - EXPIRY_SKEW_SECONDS <= now


def is_due(expires_at: float | None, now: float, lead: float) -> bool:
    return expires_at is not None and expires_at - lead <= now


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """The meaning of one token-endpoint answer."""

    ok: bool
    rejected: bool  # the refresh token (or code) is dead: needs login if it is still ours
    retry_after: float | None  # transient: seconds to wait before the next try
    message: str


def classify_answer(
    status: int, body: Any, retry_after_header: str | None, failures: int
) -> TokenAnswer:
    """``status`` 0 = no HTTP answer (network error, timeout); ``failures`` = earlier consecutive
    transient failures of this account's refresh."""
    error, description = _error_fields(body)
    message = f"HTTP {status}" if status else "no answer"
    if error:
        message += f" {error}"
    if description:
        # Token endpoints may echo what they were sent: never let a token into a message.
        message += f": {redact(description)[:300]}"
    if status == 200:
        if isinstance(body, dict) and body.get("access_token"):
            return TokenAnswer(True, False, None, "ok")
        return TokenAnswer(False, False, backoff(failures, None), "HTTP 200 without access_token")
    if status in TRANSIENT_STATUSES or status == 0:
        return TokenAnswer(False, False, backoff(failures, retry_after_header), message)
    return TokenAnswer(False, True, None, message)


def backoff(failures: int, retry_after_header: str | None) -> float:
    if retry_after_header:
        try:
            seconds = float(retry_after_header)
        except ValueError:
            seconds = 0.0
        if seconds > 0:
            return min(max(seconds, MIN_BACKOFF_SECONDS), MAX_BACKOFF_SECONDS)
    return min(MIN_BACKOFF_SECONDS * 2 ** max(failures, 0), MAX_BACKOFF_SECONDS)


def _error_fields(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        return "", ""
    error = body.get("error")
    if isinstance(error, dict):
        # Anthropic-style {"error": {"type": …, "message": …}} and OpenAI's {"error": {"code"}}.
        return (
            str(error.get("code") or error.get("type") or ""),
            str(error.get("message") or ""),
        )
    return str(error or ""), str(body.get("error_description") or body.get("message") or "")
