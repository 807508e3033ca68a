"""PKCE (S256), state, authorize URLs and the operator's paste. Pure: no I/O, no Django models."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

CLAUDE = "anthropic"
CODEX = "codex"


@dataclass(frozen=True, slots=True)
class Client:
    """What a provider's OAuth server knows us as (Claude Code's and Codex CLI's public clients:
    the operator signs in to the same consent screen those tools show)."""

    provider: str
    client_id: str
    redirect_uri: str
    scope: str
    extra_authorize_params: tuple[tuple[str, str], ...] = ()


CLIENTS = {
    CLAUDE: Client(
        CLAUDE,
        "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
        "http://localhost:54545/callback",
        "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload",
        (("code", "true"),),
    ),
    CODEX: Client(
        CODEX,
        "app_EMoamEEZ73f0CkXaXp7hrann",
        "http://localhost:1455/auth/callback",
        "openid email profile offline_access",
        (
            ("prompt", "login"),
            ("id_token_add_organizations", "true"),
            ("codex_cli_simplified_flow", "true"),
        ),
    ),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_verifier() -> str:
    return b64url(secrets.token_bytes(96))  # 128 characters, the RFC 7636 maximum


def challenge(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode()).digest())


def new_state() -> str:
    return secrets.token_hex(16)


def authorize_url(base: str, client: Client, *, state: str, verifier: str) -> str:
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": client.redirect_uri,
        "scope": client.scope,
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
        **dict(client.extra_authorize_params),
    }
    return base + ("&" if "?" in base else "?") + urlencode(sorted(params.items()))


@dataclass(frozen=True, slots=True)
class Callback:
    code: str
    state: str
    error: str = ""


class PasteError(ValueError):
    """The pasted text holds no code (or error) we can use."""


def parse_paste(text: str) -> Callback:
    """What the browser showed after sign-in: the redirect URL (or its query), or Claude's
    hosted-page ``code#state``."""
    text = text.strip()
    if not text:
        raise PasteError("Nothing was pasted.")
    if "=" not in text and "#" in text and " " not in text:
        code, _, state = text.partition("#")
        if code and state:
            return Callback(code, state)
        raise PasteError("Expected code#state.")
    parts = urlsplit(text if "://" in text or text.startswith("?") else "?" + text.split("?")[-1])
    values = {**parse_qs(parts.fragment), **parse_qs(parts.query)}
    first = {key: items[0].strip() for key, items in values.items() if items}
    code, state, error = first.get("code", ""), first.get("state", ""), first.get("error", "")
    if error:
        return Callback("", state, first.get("error_description") or error)
    if "#" in code and not state:
        code, _, state = code.partition("#")
    elif "#" in code:
        code = code.partition("#")[0]
    if not code:
        raise PasteError("The pasted URL has no code.")
    if not state:
        raise PasteError("The pasted URL has no state.")
    return Callback(code, state)
