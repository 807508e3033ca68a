"""Shared set-up for subscription-account tests: a fake OAuth provider wired into the settings,
and accounts stored the way an import or a login stores them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from accounts.models import Credential, OAuthToken
from accounts.oauth import store
from accounts.oauth.files import AccountData
from tests.fakes.oauth import FakeOAuth


@pytest.fixture
def oauth(upstream, settings) -> FakeOAuth:
    fake = FakeOAuth(upstream)
    settings.CLAUDE_OAUTH_TOKEN_URL = fake.token_url
    settings.CODEX_OAUTH_TOKEN_URL = fake.codex_token_url
    settings.CLAUDE_API_URL = upstream.url
    settings.OAUTH_TIMEOUT_SECONDS = 5
    settings.OAUTH_SWEEP_SECONDS = 0  # tests that want the background refresh turn it on
    return fake


def make_account(
    oauth: FakeOAuth,
    email: str = "max@example.com",
    *,
    expires_in: int = 8 * 3600,
    base_url: str | None = None,
    **fields,
) -> Credential:
    """A Claude account whose access token expires in ``expires_in`` s (negative: expired)."""
    refresh = oauth.add_account(email)
    access = oauth.issue_access(refresh, expires_in=expires_in)
    data = AccountData(
        provider="anthropic",
        access_token=access,
        refresh_token=refresh,
        expires_at=datetime.fromtimestamp(time.time() + expires_in, tz=UTC),
        email=email,
        account_id=oauth.accounts[-1].uuid,
    )
    result = store.save_account(data)
    credential = Credential.objects.get(pk=result.credential_id)
    credential.base_url = base_url if base_url is not None else oauth.server.url
    for name, value in fields.items():
        setattr(credential, name, value)
    credential.save()
    return credential


def token_row(credential: Credential) -> OAuthToken:
    return OAuthToken.objects.get(credential=credential)
