"""Keeping secrets out of messages: what upstreams and token endpoints echo back is redacted
before it reaches a client, a routing trace, a log line or the admin."""

from __future__ import annotations

import re

__all__ = ["KEY_LIKE", "Secret", "redact"]


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    @property
    def is_oauth_token(self) -> bool:
        return self._value.startswith("sk-ant-oat")


# API keys ("Incorrect API key provided: sk-…"), Claude's OAuth access and refresh tokens
# (sk-ant-oat01-…, sk-ant-ort01-…, covered by sk-), Gemini keys, OpenAI/Codex JWTs (eyJ….….…)
# and Codex refresh tokens (rt_…).
KEY_LIKE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-*.]{6,}|AIza[0-9A-Za-z_\-]{10,}|rt_[A-Za-z0-9_\-.]{10,}"
    r"|eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]+\.?[A-Za-z0-9_\-]*)"
)


def redact(message: str, secret: str = "") -> str:
    """``message`` with ``secret`` (when given) and anything key-like replaced."""
    if secret and secret in message:
        message = message.replace(secret, "[redacted]")
    return KEY_LIKE.sub("[redacted]", message)
