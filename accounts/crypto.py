"""Encryption at rest for upstream secrets (Fernet, several keys for rotation).

``FIELD_ENCRYPTION_KEYS`` lists Fernet keys newest first: the first encrypts, all of them decrypt,
so an operator rotates by prepending a new key and later running ``rotate_encryption``.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables


class SecretUnavailable(Exception):
    """The stored secret cannot be decrypted with the configured keys."""


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])


def reset_cache() -> None:
    _fernet.cache_clear()


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnavailable(
            "the stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS"
        ) from None


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode()


@sensitive_variables("plaintext")
def hint(plaintext: str) -> str:
    """What an operator may see of a secret: its last four characters."""
    return "…" + plaintext[-4:] if len(plaintext) >= 12 else "…"
