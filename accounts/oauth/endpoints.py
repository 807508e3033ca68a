"""The token endpoints and Claude's profile endpoint: the account layer's only network I/O.

Each call is one function with an explicit timeout; the URLs come from settings
(``CLAUDE_OAUTH_TOKEN_URL``…), so tests point them at a fake on 127.0.0.1. We send what the OAuth
server needs (grant, client id, PKCE verifier) and nothing that pretends to be another client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings

from accounts.oauth import files
from accounts.oauth.pkce import CLAUDE, CLIENTS, CODEX
from accounts.secrets import redact

logger = logging.getLogger(__name__)

CODEX_REFRESH_SCOPE = "openid profile email"


@dataclass(frozen=True, slots=True)
class Answer:
    """A token endpoint's raw answer (status 0: none arrived)."""

    status: int
    body: Any
    retry_after: str | None = None

    def __repr__(self) -> str:
        return f"Answer(status={self.status}, body hidden)"


def token_url(provider: str) -> str:
    return settings.CODEX_OAUTH_TOKEN_URL if provider == CODEX else settings.CLAUDE_OAUTH_TOKEN_URL


def authorize_base(provider: str) -> str:
    if provider == CODEX:
        return settings.CODEX_OAUTH_AUTHORIZE_URL
    return settings.CLAUDE_OAUTH_AUTHORIZE_URL


def _client(proxy_url: str = "") -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.OAUTH_TIMEOUT_SECONDS, connect=10.0)
    proxy = proxy_url if proxy_url and proxy_url != "direct" else None
    return httpx.AsyncClient(timeout=timeout, proxy=proxy, trust_env=proxy_url != "direct")


async def _post(provider: str, payload: dict[str, str], proxy_url: str) -> Answer:
    url = token_url(provider)
    headers = {"accept": "application/json"}
    try:
        async with _client(proxy_url) as client:
            if provider == CODEX:
                response = await client.post(url, data=payload, headers=headers)
            else:
                response = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        logger.warning("token endpoint %s unreachable: %s", url, type(exc).__name__)
        return Answer(0, None)
    try:
        body = response.json()
    except ValueError:
        body = {"error": "non_json_answer", "error_description": redact(response.text[:200], "")}
    return Answer(response.status_code, body, response.headers.get("retry-after"))


async def refresh(provider: str, refresh_token: str, *, proxy_url: str = "") -> Answer:
    client = CLIENTS[provider]
    payload = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
    }
    # The scope the login granted (Codex asks for less on refresh, as its CLI does).
    payload["scope"] = CODEX_REFRESH_SCOPE if provider == CODEX else client.scope
    return await _post(provider, payload, proxy_url)


async def exchange(
    provider: str, code: str, verifier: str, state: str, *, proxy_url: str = ""
) -> Answer:
    client = CLIENTS[provider]
    payload = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "client_id": client.client_id,
        "code_verifier": verifier,
    }
    if provider == CLAUDE:
        payload["state"] = state
    return await _post(provider, payload, proxy_url)


async def claude_profile(access_token: str) -> dict[str, Any]:
    """Identity after a login; advisory (a failure keeps what the token answer said)."""
    url = settings.CLAUDE_API_URL.rstrip("/") + "/api/oauth/profile"
    try:
        async with _client() as client:
            response = await client.get(
                url,
                headers={"authorization": f"Bearer {access_token}", "accept": "application/json"},
            )
        if response.status_code != 200:
            logger.info("Claude profile answered %s", response.status_code)
            return {}
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.info("Claude profile unavailable: %s", type(exc).__name__)
        return {}
    return body if isinstance(body, dict) else {}


async def claude_usage(access_token: str) -> dict[str, Any] | None:
    """The account's 5-hour / 7-day use from Claude's usage endpoint; None when it did not
    answer (advisory: the response headers of real traffic say the same)."""
    url = settings.CLAUDE_API_URL.rstrip("/") + "/api/oauth/usage"
    try:
        async with _client() as client:
            response = await client.get(
                url,
                headers={
                    "authorization": f"Bearer {access_token}",
                    "accept": "application/json",
                    "anthropic-beta": "oauth-2025-04-20",
                },
            )
        if response.status_code != 200:
            logger.info("Claude usage endpoint answered %s", response.status_code)
            return None
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.info("Claude usage endpoint unavailable: %s", type(exc).__name__)
        return None
    return body if isinstance(body, dict) else None


def account_from_answer(
    provider: str,
    body: dict[str, Any],
    now: datetime,
    *,
    previous_refresh: str = "",
    profile: dict[str, Any] | None = None,
) -> files.AccountData:
    """The token set a successful answer carries (a refresh answer without a refresh token keeps
    the previous one)."""
    expires_in = body.get("expires_in")
    expires_at = (
        now + timedelta(seconds=float(expires_in)) if isinstance(expires_in, int | float) else None
    )
    email = account_id = org_id = org_name = plan = ""
    id_token = str(body.get("id_token") or "")
    if provider == CODEX:
        claims = files.codex_identity(id_token)
        email, account_id, plan = claims["email"], claims["account_id"], claims["plan"]
    else:
        account = body.get("account") if isinstance(body.get("account"), dict) else {}
        organization = (
            body.get("organization") if isinstance(body.get("organization"), dict) else {}
        )
        email = str(account.get("email_address") or "")
        account_id = str(account.get("uuid") or "")
        org_id, org_name = str(organization.get("uuid") or ""), str(organization.get("name") or "")
        if profile:
            p_account = profile.get("account") if isinstance(profile.get("account"), dict) else {}
            p_org = (
                profile.get("organization") if isinstance(profile.get("organization"), dict) else {}
            )
            email = str(p_account.get("email") or p_account.get("email_address") or email)
            account_id = str(p_account.get("uuid") or account_id)
            org_id = str(p_org.get("uuid") or org_id)
            org_name = str(p_org.get("name") or org_name)
            plan = str(p_org.get("organization_type") or p_org.get("rate_limit_tier") or "")
    return files.AccountData(
        provider=provider,
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token") or previous_refresh),
        expires_at=expires_at,
        email=email,
        account_id=account_id,
        organization_id=org_id,
        organization_name=org_name,
        plan=plan,
        id_token=id_token,
        last_refresh_at=now.astimezone(UTC),
    )
