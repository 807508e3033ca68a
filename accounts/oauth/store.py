"""Subscription accounts in the database. Synchronous, each function one short transaction;
async code calls them through ``database_sync_to_async``.

The refresh lock is a lease on the token row, taken with a conditional UPDATE that also names
the token version the taker saw: of several workers (processes, hosts) that saw the same version,
exactly one gets the row; the others wait and then find a newer version. Results are written
fenced by the refresh token that was sent, so a holder whose lease ran out cannot overwrite what
a later holder stored. Works the same on PostgreSQL (row locks) and SQLite (the write lock).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import crypto, versions
from accounts.models import (
    AccountState,
    AuthKind,
    Credential,
    OAuthToken,
    QuotaState,
)
from accounts.oauth import policy
from accounts.oauth.files import AccountData
from accounts.secrets import Secret, redact

logger = logging.getLogger(__name__)


class AccountConflict(Exception):
    """The refresh token is already held by another account."""


@dataclass(frozen=True, slots=True)
class Token:
    """What a worker needs to call upstream with an account, as the cache holds it."""

    credential_id: int
    provider: str
    access: Secret
    expires_at: float | None
    version: int
    state: str
    backoff_until: float | None
    can_refresh: bool
    # The provider's id of the account (Codex: the ChatGPT workspace, sent as Chatgpt-Account-Id).
    account_id: str = ""

    @property
    def needs_login(self) -> bool:
        return self.state == AccountState.NEEDS_LOGIN


@dataclass(frozen=True, slots=True)
class SaveResult:
    action: str  # created | updated | unchanged
    credential_id: int | None
    label: str


def fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest() if refresh_token else ""


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def token_of(row: OAuthToken) -> Token:
    return Token(
        credential_id=row.credential_id,
        provider=row.credential.provider,
        access=Secret(row.get_access_token()),
        expires_at=_epoch(row.expires_at),
        version=row.token_version,
        state=row.state,
        backoff_until=_epoch(row.refresh_backoff_until),
        can_refresh=bool(row.refresh_encrypted),
        account_id=row.account_id,
    )


def _tokens_changed(*, config: bool = False) -> None:
    transaction.on_commit(lambda: versions.bump(tokens=True, config=config))


def load_tokens() -> dict[int, Token]:
    """Every account's current token (one query; decrypts access tokens only)."""
    rows = OAuthToken.objects.select_related("credential").filter(
        credential__auth_kind=AuthKind.OAUTH
    )
    tokens = {}
    for row in rows:
        try:
            tokens[row.credential_id] = token_of(row)
        except crypto.SecretUnavailable:
            logger.error("account %s skipped: its tokens cannot be decrypted", row.identity)
    return tokens


def load_token(credential_id: int) -> Token | None:
    row = OAuthToken.objects.select_related("credential").filter(credential_id=credential_id)
    found = row.first()
    return token_of(found) if found else None


# Import and login -----------------------------------------------------------------------------


def save_account(data: AccountData, *, dry_run: bool = False, label: str = "") -> SaveResult:
    """Create or update the account ``data`` identifies. A new token set clears needs login and
    the account's cooldowns; the same tokens again change nothing (imports are idempotent)."""
    digest = fingerprint(data.refresh_token)
    with transaction.atomic():
        row = (
            OAuthToken.objects.select_for_update()
            .select_related("credential")
            .filter(identity=data.identity)
            .first()
        )
        if digest:
            holder = OAuthToken.objects.filter(refresh_fingerprint=digest)
            if row is not None:
                holder = holder.exclude(pk=row.pk)
            other = holder.select_related("credential").first()
            if other is not None:
                raise AccountConflict(
                    f"this refresh token is already held by account {other.credential.label!r} "
                    f"(#{other.credential_id}); one owner per token family"
                )
        if row is not None:
            same = (
                row.refresh_fingerprint == digest
                and row.get_access_token() == data.access_token
                and row.get_id_token() == data.id_token
            )
            if same:
                return SaveResult("unchanged", row.credential_id, row.credential.label)
            if dry_run:
                return SaveResult("updated", row.credential_id, row.credential.label)
            _write_tokens(row, data)
            row.token_version = F("token_version") + 1
            row.state, row.state_reason = AccountState.ACTIVE, ""
            row.save()
            QuotaState.objects.filter(credential_id=row.credential_id).delete()
            transaction.on_commit(lambda: versions.bump(quota=True))
            credential = row.credential
            if data.disabled and credential.enabled:
                credential.enabled = False
            credential.save()  # bumps config: a needs-login account may serve again
            _tokens_changed()
            return SaveResult("updated", credential.pk, credential.label)
        name = label or data.email or data.account_id
        if dry_run:
            return SaveResult("created", None, name)
        credential = Credential(
            provider=data.provider,
            auth_kind=AuthKind.OAUTH,
            label=name[:100],
            enabled=not data.disabled,
            priority=data.priority or 0,
        )
        credential.save()
        row = OAuthToken(credential=credential, identity=data.identity)
        _write_tokens(row, data)
        row.save()
        _tokens_changed()
        return SaveResult("created", credential.pk, credential.label)


def _write_tokens(row: OAuthToken, data: AccountData) -> None:
    row.access_encrypted = crypto.encrypt(data.access_token) if data.access_token else ""
    row.refresh_encrypted = crypto.encrypt(data.refresh_token) if data.refresh_token else ""
    if data.id_token:  # a refresh answer without one keeps the login's
        row.id_token_encrypted = crypto.encrypt(data.id_token)
    row.refresh_fingerprint = fingerprint(data.refresh_token)
    row.expires_at = data.expires_at
    row.last_refresh_at = data.last_refresh_at
    for name in ("email", "account_id", "organization_id", "organization_name", "plan"):
        value = getattr(data, name)
        if value:
            setattr(row, name, value)
    if data.extras:
        row.extras = {**(row.extras or {}), **data.extras}
    row.refresh_backoff_until = None
    row.refresh_failures = 0
    row.last_refresh_error = ""
    row.lease_until, row.lease_owner = None, ""


# The refresh lease ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """``job`` set: this worker holds the lease and must call the token endpoint with
    ``refresh_token``; else ``token`` is the answer (already refreshed, not due, backing off,
    needs login), or both are None while another worker holds the lease."""

    token: Token | None = None
    refresh_token: str = ""
    proxy_url: str = ""
    failures: int = 0

    @property
    def job(self) -> bool:
        return bool(self.refresh_token)

    def __repr__(self) -> str:
        return f"Claim(job={self.job}, token={self.token!r})"


def lease_seconds() -> float:
    # Longer than a token-endpoint call may take, so a live holder never loses it.
    return settings.OAUTH_TIMEOUT_SECONDS + 30.0


def claim(
    credential_id: int, owner: str, *, seen_version: int | None, due_before: float | None
) -> Claim:
    """Take the lease when a refresh is still needed.

    ``seen_version``: the version whose token failed (401); the refresh happens only while the
    row still holds it. ``due_before``: refresh only if the token expires before this epoch.
    """
    now = timezone.now()
    row = OAuthToken.objects.select_related("credential").filter(credential_id=credential_id)
    found = row.first()
    if found is None:
        return Claim()
    token = token_of(found)
    settled = (
        found.state == AccountState.NEEDS_LOGIN
        or not found.refresh_encrypted
        or (seen_version is not None and found.token_version != seen_version)
        or (due_before is not None and not policy.is_due(token.expires_at, due_before, 0.0))
        or (found.refresh_backoff_until is not None and found.refresh_backoff_until > now)
    )
    if settled:
        return Claim(token=token)
    taken = (
        OAuthToken.objects.filter(pk=found.pk, token_version=found.token_version)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + timedelta(seconds=lease_seconds()), lease_owner=owner)
    )
    if not taken:
        return Claim()  # another worker holds it (or just finished): look again shortly
    proxy_url = found.credential.proxy_url.strip()
    return Claim(
        token=token,
        refresh_token=found.get_refresh_token(),
        proxy_url=proxy_url,
        failures=found.refresh_failures,
    )


def release(credential_id: int, owner: str) -> None:
    OAuthToken.objects.filter(credential_id=credential_id, lease_owner=owner).update(
        lease_until=None, lease_owner=""
    )


def store_refreshed(
    credential_id: int, owner: str, sent_refresh: str, data: AccountData
) -> Token | None:
    """Commit the new token set (the rotated refresh token with it) before anyone uses it.
    None if the row no longer holds the refresh token we sent (someone else stored a newer one)."""
    with transaction.atomic():
        row = (
            OAuthToken.objects.select_for_update()
            .select_related("credential")
            .filter(credential_id=credential_id, refresh_fingerprint=fingerprint(sent_refresh))
            .first()
        )
        if row is None:
            logger.warning("account #%s changed during its refresh; kept the newer", credential_id)
            release(credential_id, owner)
            return None
        _write_tokens(row, data)
        row.token_version += 1
        row.save()
        _tokens_changed()
        return token_of(row)


def store_rejected(credential_id: int, owner: str, sent_refresh: str, message: str) -> Token | None:
    """The token endpoint refused our refresh token. Needs login only if the row still holds
    it: otherwise another worker rotated it first, and its token is the answer."""
    message = redact(message, sent_refresh)
    with transaction.atomic():
        updated = OAuthToken.objects.filter(
            credential_id=credential_id, refresh_fingerprint=fingerprint(sent_refresh)
        ).update(
            state=AccountState.NEEDS_LOGIN,
            state_reason=f"refresh refused: {message}"[:2000],
            last_refresh_error=message[:2000],
            lease_until=None,
            lease_owner="",
            updated_at=timezone.now(),
        )
        if updated:
            logger.warning("account #%s needs login: %s", credential_id, message)
            # config too: the snapshot leaves needs-login accounts out of the rotation.
            _tokens_changed(config=True)
        else:
            release(credential_id, owner)
    return load_token(credential_id)


def store_transient(
    credential_id: int, owner: str, retry_seconds: float, message: str
) -> Token | None:
    OAuthToken.objects.filter(credential_id=credential_id, lease_owner=owner).update(
        refresh_backoff_until=timezone.now() + timedelta(seconds=retry_seconds),
        refresh_failures=F("refresh_failures") + 1,
        last_refresh_error=redact(message)[:2000],
        lease_until=None,
        lease_owner="",
    )
    transaction.on_commit(lambda: versions.bump(tokens=True))
    return load_token(credential_id)


def due_accounts(now: float) -> list[tuple[int, int, float]]:
    """(credential id, token version, due-before epoch) of accounts the background refresh
    should renew now: active, refreshable, not backing off. Cooling accounts included: they
    must serve the moment their window resets."""
    leads = {
        "anthropic": settings.CLAUDE_REFRESH_LEAD_SECONDS,
        "codex": settings.CODEX_REFRESH_LEAD_SECONDS,
    }
    moment = _moment(now)
    rows = (
        OAuthToken.objects.filter(
            credential__auth_kind=AuthKind.OAUTH,
            credential__enabled=True,
            state=AccountState.ACTIVE,
            expires_at__isnull=False,
        )
        .exclude(refresh_encrypted="")
        .filter(Q(refresh_backoff_until__isnull=True) | Q(refresh_backoff_until__lte=moment))
        .values_list(
            "credential_id",
            "token_version",
            "expires_at",
            "last_refresh_at",
            "credential__provider",
        )
    )
    due = []
    for credential_id, version, expires_at, last_refresh_at, provider in rows:
        lead = float(leads.get(provider, 0))
        if last_refresh_at and now - last_refresh_at.timestamp() < policy.MIN_REFRESH_INTERVAL:
            # A provider whose tokens live shorter than the lead would otherwise be asked on
            # every sweep; an expired token still refreshes on demand.
            continue
        if policy.is_due(expires_at.timestamp(), now, lead):
            due.append((credential_id, version, now + lead))
    return due


def claim_usage_polls(now: float, interval: float) -> list[int]:
    """Claude accounts whose windows nobody has seen for ``interval`` seconds, claimed for this
    worker (a conditional update per account: with several workers, one polls each)."""
    cutoff = _moment(now - interval)
    candidates = OAuthToken.objects.filter(
        credential__auth_kind=AuthKind.OAUTH,
        credential__provider="anthropic",
        credential__enabled=True,
        state=AccountState.ACTIVE,
    ).filter(Q(windows_observed_at__isnull=True) | Q(windows_observed_at__lt=cutoff))
    claimed = []
    for credential_id in candidates.values_list("credential_id", flat=True):
        won = (
            OAuthToken.objects.filter(credential_id=credential_id)
            .filter(Q(windows_observed_at__isnull=True) | Q(windows_observed_at__lt=cutoff))
            .update(windows_observed_at=_moment(now))
        )
        if won:
            claimed.append(credential_id)
    return claimed


def save_windows(credential_id: int, stored: list[dict], observed_at: float) -> None:
    """The latest quota windows, for display: no counter bump (nobody routes on the row)."""
    OAuthToken.objects.filter(credential_id=credential_id).update(
        quota_windows=stored, windows_observed_at=_moment(observed_at)
    )
