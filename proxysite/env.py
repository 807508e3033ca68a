"""Small typed helpers that read settings from the environment (twelve-factor, no library).

Every value has a working development default; a malformed value fails loudly at start-up.
Secrets can also come from ``<NAME>_FILE`` (Docker secrets).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def envstr(name: str, default: str = "") -> str:
    return os.getenv(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.getenv(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"Unexpected value {name}={raw!r}; use true or false")


def envint(name: str, default: int) -> int:
    raw = os.getenv(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"Unexpected value {name}={raw!r}; expected an integer"
        ) from None


def envfloat(name: str, default: float) -> float:
    raw = os.getenv(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Unexpected value {name}={raw!r}; expected a number") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def envsecret(name: str) -> str:
    """``NAME_FILE`` (a path whose content is the secret) wins over ``NAME``."""
    path = os.getenv(name + "_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.getenv(name, "")


def persistent_secret(data_dir: Path, filename: str, make: callable) -> str:  # type: ignore[valid-type]
    """A secret generated once and kept in the data directory, so a dev install survives restarts.

    Production sets the corresponding environment variable instead (several machines must share
    the same value).
    """
    path = data_dir / filename
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = make()
    # Create with owner-only permissions; a concurrent first start may race, so re-read after.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def token() -> str:
    return secrets.token_urlsafe(50)
