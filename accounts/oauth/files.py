"""CLIProxyAPI account files (``claude-<email>.json``, ``codex-<hash>-<email>-<plan>.json``) read
into plain data. Pure: the caller reads the files and writes the database.

The whole JSON object is the account's metadata there; we take the tokens, expiry and identity,
and keep the remaining keys in ``extras`` so nothing the file said is silently lost.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from accounts.oauth.pkce import CLAUDE, CODEX

TYPES = {"claude": CLAUDE, "codex": CODEX}
EXPIRY_KEYS = ("expired", "expire", "expires_at", "expiresAt", "expiry", "expires")
REFRESH_KEYS = ("last_refresh", "lastRefresh", "last_refreshed_at", "lastRefreshedAt")
TOKEN_KEYS = frozenset(
    {"access_token", "refresh_token", "id_token", "type", "email", "account_id", "account_uuid"}
    | {"organization_uuid", "organization_name", "disabled", "priority", "label"}
    | set(EXPIRY_KEYS)
    | set(REFRESH_KEYS)
)
CODEX_AUTH_CLAIM = "https://api.openai.com/auth"


class AccountFileError(ValueError):
    """Not an account file we can import (the message never contains a token)."""


@dataclass(frozen=True)
class AccountData:
    """One account's token set and identity, wherever it came from (file, login, refresh)."""

    provider: str
    access_token: str
    refresh_token: str
    expires_at: datetime | None
    email: str = ""
    account_id: str = ""
    organization_id: str = ""
    organization_name: str = ""
    plan: str = ""
    id_token: str = ""
    last_refresh_at: datetime | None = None
    disabled: bool = False
    priority: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """One account per provider identity: the provider's account id, else the email.
        (Codex workspaces of one email have distinct account ids, so they stay apart.)"""
        return f"{self.provider}:{self.account_id or self.email.lower()}"

    def __repr__(self) -> str:
        return f"AccountData({self.identity!r}, tokens hidden)"


def parse_time(value: Any) -> datetime | None:
    """RFC 3339, '2006-01-02 15:04:05', '2006-01-02 15:04', or unix seconds / milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return parse_time(float(text))
    for candidate in (text.replace("Z", "+00:00"), text):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _first(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for source in (data, data.get("token"), data.get("Token")):
        if isinstance(source, dict):
            for key in keys:
                if source.get(key) not in (None, ""):
                    return source[key]
    return None


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, not verified: it only labels the account (the token endpoint that issued
    it is the authority, and the upstream checks the access token itself)."""
    try:
        payload = token.split(".")[1]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(decoded)
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def codex_identity(id_token: str) -> dict[str, str]:
    claims = jwt_claims(id_token)
    auth = claims.get(CODEX_AUTH_CLAIM)
    auth = auth if isinstance(auth, dict) else {}
    return {
        "email": str(claims.get("email") or ""),
        "account_id": str(auth.get("chatgpt_account_id") or ""),
        "plan": str(auth.get("chatgpt_plan_type") or ""),
    }


def parse_account(data: Any) -> AccountData:
    if not isinstance(data, dict):
        raise AccountFileError("not a JSON object")
    kind = str(data.get("type", "")).lower()
    if kind not in TYPES:
        raise AccountFileError(f"type {kind!r} is not claude or codex")
    provider = TYPES[kind]
    access = str(data.get("access_token") or "").strip()
    refresh = str(data.get("refresh_token") or "").strip()
    if not access and not refresh:
        raise AccountFileError("no access_token or refresh_token")
    id_token = str(data.get("id_token") or "").strip()
    email = str(data.get("email") or "").strip()
    account_id = str(data.get("account_uuid") or data.get("account_id") or "").strip()
    plan = str(data.get("plan_type") or data.get("plan") or "").strip()
    if provider == CODEX and id_token:
        claims = codex_identity(id_token)
        email = email or claims["email"]
        account_id = account_id or claims["account_id"]
        plan = plan or claims["plan"]
    if not email and not account_id:
        raise AccountFileError("no email or account id to identify the account by")
    priority = data.get("priority")
    return AccountData(
        provider=provider,
        access_token=access,
        refresh_token=refresh,
        expires_at=parse_time(_first(data, EXPIRY_KEYS)),
        email=email,
        account_id=account_id,
        organization_id=str(data.get("organization_uuid") or ""),
        organization_name=str(data.get("organization_name") or ""),
        plan=plan,
        id_token=id_token,
        last_refresh_at=parse_time(_first(data, REFRESH_KEYS)),
        disabled=data.get("disabled") is True,
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
        extras={
            key: value
            for key, value in data.items()
            if key not in TOKEN_KEYS and not _may_hold_a_secret(key)
        },
    )


def _may_hold_a_secret(key: str) -> bool:
    # extras are stored in the clear: drop anything that could carry a credential.
    lowered = key.lower()
    return lowered == "headers" or any(
        word in lowered for word in ("token", "secret", "cookie", "password", "key")
    )


def parse_account_text(text: str | bytes) -> AccountData:
    try:
        data = json.loads(text)
    except ValueError:
        raise AccountFileError("not valid JSON") from None
    return parse_account(data)
