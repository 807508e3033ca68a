"""A fake OAuth provider plus a fake Anthropic upstream that only accepts its tokens, served by a
FakeUpstream on 127.0.0.1. Strict like the real services: refresh tokens rotate on every use and
a used one is refused with ``invalid_grant`` (Codex: ``refresh_token_reused``); codes are single
use and checked against the PKCE S256 challenge; the messages endpoint wants ``Authorization:
Bearer <live access token>``, no ``x-api-key``, and ``oauth-2025-04-20`` in ``anthropic-beta``.

    oauth = FakeOAuth(upstream)           # installs itself as the upstream's default handler
    refresh = oauth.add_account("a@example.com")
    oauth.token_calls                     # every request to the token endpoint
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.upstream import FakeUpstream, Recorded, Respond, echo_anthropic

TOKEN_PATH = "/oauth/token"
CODEX_TOKEN_PATH = "/codex/oauth/token"
PROFILE_PATH = "/api/oauth/profile"
USAGE_PATH = "/api/oauth/usage"
OAUTH_BETA = "oauth-2025-04-20"
_serial = itertools.count(1)


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def codex_id_token(email: str, account_id: str, plan: str = "plus") -> str:
    return jwt(
        {
            "email": email,
            "https://api.openai.com/auth": {
                "chatgpt_account_id": account_id,
                "chatgpt_plan_type": plan,
            },
        }
    )


@dataclass
class Account:
    email: str
    uuid: str
    provider: str = "claude"
    plan: str = "plus"
    live_refresh: str = ""
    access: set[str] = field(default_factory=set)


class FakeOAuth:
    def __init__(self, server: FakeUpstream, *, expires_in: int = 8 * 3600) -> None:
        self.server = server
        self.expires_in = expires_in
        self.token_delay = 0.0
        self.accounts: list[Account] = []
        self.used_refresh: set[str] = set()
        self.codes: dict[str, tuple[str, Account, str]] = {}
        self.access_expiry: dict[str, float] = {}
        # Per account email: extra response headers (anthropic-ratelimit-unified-*).
        self.response_headers: dict[str, dict[str, str]] = {}
        # What the usage endpoint answers (the real one's shape: percent, ISO reset times).
        soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        later = datetime.now(UTC).replace(microsecond=288804) + timedelta(days=3)
        self.usage: dict[str, Any] = {
            "five_hour": {"utilization": 42.0, "resets_at": soon.isoformat()},
            "seven_day": {"utilization": 7.5, "resets_at": later.isoformat()},
            "seven_day_opus": {"utilization": 0.0, "resets_at": None},
            "extra_usage": {"is_enabled": False, "monthly_limit": None, "used_credits": None},
        }
        server.default = self.handle

    @property
    def token_url(self) -> str:
        return self.server.url + TOKEN_PATH

    @property
    def codex_token_url(self) -> str:
        return self.server.url + CODEX_TOKEN_PATH

    @property
    def token_calls(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.path in (TOKEN_PATH, CODEX_TOKEN_PATH)]

    def add_account(self, email: str, *, provider: str = "claude", uuid: str = "") -> str:
        """A signed-in account; returns its live refresh token."""
        n = next(_serial)
        account = Account(email, uuid or f"acct-{n:04d}", provider)
        account.live_refresh = self._refresh_token(account)
        self.accounts.append(account)
        return account.live_refresh

    def issue_access(self, refresh_token: str, *, expires_in: int | None = None) -> str:
        """A valid access token for the account holding ``refresh_token`` (as if just logged in)."""
        account = self._holder(refresh_token)
        assert account is not None
        return self._access_token(
            account, expires_in if expires_in is not None else self.expires_in
        )

    def authorize(self, challenge: str, redirect_uri: str, email: str, provider: str = "claude"):
        """What the browser would get after the operator signs in: a code for ``email``."""
        account = next((a for a in self.accounts if a.email == email), None)
        if account is None:
            self.add_account(email, provider=provider)
            account = self.accounts[-1]
        code = f"code-{next(_serial):06d}"
        self.codes[code] = (challenge, account, redirect_uri)
        return code

    def _refresh_token(self, account: Account) -> str:
        prefix = "rt_" if account.provider == "codex" else "sk-ant-ort01-"
        return f"{prefix}{account.uuid}-{next(_serial):06d}-refreshsecret"

    def _access_token(self, account: Account, expires_in: int) -> str:
        if account.provider == "codex":
            token = jwt({"sub": account.uuid, "n": next(_serial)})
        else:
            token = f"sk-ant-oat01-{account.uuid}-{next(_serial):06d}-accesssecret"
        account.access.add(token)
        self.access_expiry[token] = time.time() + expires_in
        return token

    def _holder(self, refresh_token: str) -> Account | None:
        return next((a for a in self.accounts if a.live_refresh == refresh_token), None)

    def is_live(self, access_token: str) -> bool:
        return self.access_expiry.get(access_token, 0) > time.time()

    # HTTP ---------------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Respond:
        if request.path in (TOKEN_PATH, CODEX_TOKEN_PATH):
            response = self._token(request)
            response.delay = self.token_delay
            return response
        if request.path == PROFILE_PATH:
            return self._profile(request)
        if request.path == USAGE_PATH:
            return self._usage(request)
        if request.path.startswith("/v1/messages"):
            return self._messages(request)
        return Respond.json({"error": "not_found"}, 404)

    def _token(self, request: Recorded) -> Respond:
        codex = request.path == CODEX_TOKEN_PATH
        if codex:
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        else:
            form = request.json()
        grant = form.get("grant_type")
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            account = self._holder(token)
            if account is None:
                reused = token in self.used_refresh
                error = "refresh_token_reused" if codex and reused else "invalid_grant"
                return Respond.json(
                    {"error": error, "error_description": "Invalid refresh token"}, 400
                )
            self.used_refresh.add(token)
            account.live_refresh = self._refresh_token(account)
            return self._tokens(account)
        if grant == "authorization_code":
            entry = self.codes.pop(form.get("code", ""), None)
            if entry is None:
                return Respond.json(
                    {"error": "invalid_grant", "error_description": "bad code"}, 400
                )
            challenge, account, redirect_uri = entry
            verifier = form.get("code_verifier", "")
            expected = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if expected != challenge or form.get("redirect_uri") != redirect_uri:
                return Respond.json({"error": "invalid_grant", "error_description": "PKCE"}, 400)
            return self._tokens(account)
        return Respond.json({"error": "unsupported_grant_type"}, 400)

    def _tokens(self, account: Account) -> Respond:
        body: dict[str, Any] = {
            "access_token": self._access_token(account, self.expires_in),
            "refresh_token": account.live_refresh,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        if account.provider == "codex":
            body["id_token"] = codex_id_token(account.email, account.uuid, account.plan)
        else:
            body["account"] = {"uuid": account.uuid, "email_address": "from-token@example.com"}
            body["organization"] = {"uuid": f"org-{account.uuid}", "name": "Org"}
        return Respond.json(body)

    def _profile(self, request: Recorded) -> Respond:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        account = next((a for a in self.accounts if token in a.access), None)
        if account is None or not self.is_live(token):
            return Respond.json({"error": "unauthorized"}, 401)
        return Respond.json(
            {
                "account": {"uuid": account.uuid, "email": account.email},
                "organization": {"uuid": f"org-{account.uuid}", "name": "Org"},
            }
        )

    def _usage(self, request: Recorded) -> Respond:
        """Claude's usage endpoint, as strict as the real one: a live Bearer token and the OAuth
        beta, or 401; windows in percent with ISO reset times."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        betas = request.headers.get("anthropic-beta", "")
        if OAUTH_BETA not in betas.split(",") or not self.is_live(token):
            return Respond.error(401, "authentication_error", "OAuth authentication required")
        return Respond.json(self.usage)

    def _messages(self, request: Recorded) -> Respond:
        betas = request.headers.get("anthropic-beta", "")
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if "x-api-key" in request.headers or OAUTH_BETA not in betas.split(","):
            return Respond.error(401, "authentication_error", "x-api-key header is required")
        if not self.is_live(token):
            return Respond.error(401, "authentication_error", "OAuth token has expired")
        response = echo_anthropic(request)
        account = next((a for a in self.accounts if token in a.access), None)
        if account is not None:
            response.headers.update(self.response_headers.get(account.email, {}))
        return response
