"""Logging an account in: PKCE + state, a pending login in the database, the paste, the exchange.

The pending login lives in the database (not process memory) because the operator's paste may
reach another worker than the one that showed the URL. It expires after ten minutes, and its
state is used once: the first paste takes it with a conditional UPDATE, a second one gets 409.

| paste                                  | answer                                   |
|----------------------------------------|------------------------------------------|
| no code / no state                     | 400                                      |
| unknown or expired state               | 404                                      |
| state already used                     | 409                                      |
| state of another provider's login      | 400                                      |
| error=… from the provider              | 400, the login is over                   |
| code the token endpoint refuses        | 400, the login is over (codes are single use) |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from accounts import crypto
from accounts.models import LoginStatus, OAuthLogin
from accounts.oauth import endpoints, pkce, store
from accounts.secrets import redact

LOGIN_TTL = timedelta(minutes=10)
PROVIDER_NAMES = {pkce.CLAUDE: "Claude", pkce.CODEX: "Codex"}
COMMAND_NAMES = {"claude": pkce.CLAUDE, "codex": pkce.CODEX}


class LoginError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Started:
    state: str
    url: str
    expires_at: datetime


def start(provider: str) -> Started:
    """A new pending login; the URL is what the operator opens to sign in."""
    if provider not in pkce.CLIENTS:
        raise LoginError(400, f"unknown provider {provider!r}")
    verifier, state = pkce.new_verifier(), pkce.new_state()
    now = timezone.now()
    OAuthLogin.objects.filter(expires_at__lt=now - LOGIN_TTL).delete()  # keep the table small
    row = OAuthLogin.objects.create(
        state=state,
        provider=provider,
        verifier_encrypted=crypto.encrypt(verifier),
        created_at=now,
        expires_at=now + LOGIN_TTL,
    )
    url = pkce.authorize_url(
        endpoints.authorize_base(provider), pkce.CLIENTS[provider], state=state, verifier=verifier
    )
    return Started(row.state, url, row.expires_at)


def _take(state: str, provider: str | None) -> tuple[str, str]:
    """(provider, verifier) of the pending login ``state``, which no other paste can take now."""
    row = OAuthLogin.objects.filter(state=state).first()
    if row is None or row.expires_at <= timezone.now():
        raise LoginError(404, "No login is waiting for this state (unknown, or older than 10 min).")
    if provider and row.provider != provider:
        raise LoginError(400, f"This state belongs to a {PROVIDER_NAMES[row.provider]} login.")
    taken = OAuthLogin.objects.filter(pk=row.pk, status=LoginStatus.PENDING).update(
        status=LoginStatus.EXCHANGING
    )
    if not taken:
        raise LoginError(409, "This login was already completed (a state is used once).")
    return row.provider, crypto.decrypt(row.verifier_encrypted)


def _finish(state: str, *, error: str = "", credential_id: int | None = None) -> None:
    OAuthLogin.objects.filter(state=state).update(
        status=LoginStatus.FAILED if error else LoginStatus.COMPLETED,
        error=error[:2000],
        credential_id=credential_id,
    )


async def complete(paste: str, *, provider: str | None = None) -> store.SaveResult:
    """Finish the login the paste belongs to: exchange the code, read the identity, store the
    account (a known identity is updated, which also clears needs login)."""
    try:
        callback = pkce.parse_paste(paste)
    except pkce.PasteError as exc:
        raise LoginError(400, str(exc)) from None
    provider, verifier = await database_sync_to_async(_take)(callback.state, provider)
    try:
        if callback.error:
            raise LoginError(400, f"The provider refused the login: {callback.error[:200]}")
        answer = await endpoints.exchange(provider, callback.code, verifier, callback.state)
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status != 200 or not body.get("access_token"):
            detail = body.get("error_description") or body.get("error") or f"HTTP {answer.status}"
            raise LoginError(400, f"The code exchange failed: {redact(str(detail))[:300]}")
        profile = None
        if provider == pkce.CLAUDE:
            profile = await endpoints.claude_profile(str(body["access_token"]))
        data = endpoints.account_from_answer(provider, body, datetime.now(UTC), profile=profile)
        if not data.email and not data.account_id:
            raise LoginError(400, "The provider's answer did not say which account this is.")
        try:
            result = await database_sync_to_async(store.save_account)(data)
        except store.AccountConflict as exc:
            raise LoginError(409, str(exc)) from None
    except LoginError as exc:
        await database_sync_to_async(_finish)(callback.state, error=exc.message)
        raise
    except BaseException:
        await database_sync_to_async(_finish)(callback.state, error="interrupted")
        raise
    await database_sync_to_async(_finish)(callback.state, credential_id=result.credential_id)
    return result
