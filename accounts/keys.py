"""Client keys: generated once, shown once, stored as an HMAC.

A key looks like ``sk-px-<43 url-safe characters>``. What is stored:
- ``prefix``: the first 12 characters, so operators can tell keys apart;
- ``digest``: hex HMAC-SHA256(CLIENT_KEY_PEPPER, key), unique-indexed for lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

KEY_PREFIX = "sk-px-"
VISIBLE_PREFIX_LENGTH = 12


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@sensitive_variables("key")
def digest(key: str) -> str:
    return hmac.new(settings.CLIENT_KEY_PEPPER.encode(), key.encode(), hashlib.sha256).hexdigest()


@sensitive_variables("key")
def visible_prefix(key: str) -> str:
    return key[:VISIBLE_PREFIX_LENGTH]


def same_digest(stored: str, computed: str) -> bool:
    return hmac.compare_digest(stored, computed)
