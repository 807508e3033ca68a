"""Keeping upstream secrets out of what the proxy shows: client errors, traces, the admin."""

from __future__ import annotations

import re

# Keys that upstreams echo back in error messages ("Incorrect API key provided: sk-…").
_KEY_LIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_\-*.]{6,}|AIza[0-9A-Za-z_\-]{10,})")


def redact(message: str, secret: str) -> str:
    """An upstream error message with the credential's secret, or anything key-like, removed:
    the message goes to the client, into the routing trace and into the admin."""
    if secret and secret in message:
        message = message.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", message)
