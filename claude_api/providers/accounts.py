"""Calling upstream with a subscription account: the current token, and one refresh on a 401.

The token comes from the account layer (accounts.oauth.tokens); a provider only turns it into
headers. What cannot give a token becomes an UpstreamError, so the request moves on to the next
credential and the client sees an Anthropic envelope, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from accounts import windows
from accounts.oauth import store, tokens
from accounts.oauth.store import Token
from accounts.pool import off_path, pool
from claude_api.errors import UpstreamError
from claude_api.providers.base import UpstreamCall

NEEDS_LOGIN = "needs_login"
TOKEN_UNAVAILABLE = "token_unavailable"


def uses_account(call: UpstreamCall) -> bool:
    return call.credential.auth_kind == "oauth"


async def account_token(call: UpstreamCall) -> Token:
    credential = call.credential
    try:
        token = await tokens.current(credential.credential_id)
    except tokens.AccountUnavailable as exc:
        if exc.needs_login:
            raise UpstreamError(
                f"Account {credential.label} needs a new login.",
                status=401,
                error_type="authentication_error",
                code=NEEDS_LOGIN,
            ) from None
        # An expired token whose refresh failed for a transient reason: a short cooldown.
        raise UpstreamError(
            f"Account {credential.label}: {exc.message}.",
            status=503,
            error_type="api_error",
            code=TOKEN_UNAVAILABLE,
        ) from None
    call.token_version = token.version
    return token


async def refreshed_after_unauthorized(call: UpstreamCall, exc: UpstreamError) -> bool:
    """An upstream 401 with an account's token: refresh once (unless another worker already
    did) and say whether a retry with a newer token is worth it."""
    if (
        exc.upstream_status != 401
        or not uses_account(call)
        or call.token_version is None
        or exc.code == NEEDS_LOGIN
    ):
        return False
    try:
        token = await tokens.refresh_after_unauthorized(
            call.credential.credential_id, call.token_version
        )
    except tokens.AccountUnavailable:
        return False
    return token is not None


def note_windows(call: UpstreamCall, headers: Mapping[str, str]) -> None:
    """Keep the 5-hour / 7-day windows an account's response reported (quota-aware routing
    reads them in memory; the admin and proxy_status read what is persisted, off the path)."""
    if not uses_account(call):
        return
    credential_id = call.credential.credential_id
    now = time.time()
    if windows.board.observe(credential_id, headers, now):
        stored = [window.as_dict() for window in windows.board.windows[credential_id]]
        pool.spawn(off_path(store.save_windows)(credential_id, stored, now))
