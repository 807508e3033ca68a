"""Logging accounts in: PKCE and state, the paste in each shape, single use, the exchange, the
identity, and the headless command — against the strict fake OAuth provider."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AccountState, LoginStatus, OAuthLogin, OAuthToken
from accounts.oauth import pkce, sessions
from tests.fakes.oauth import CODEX_TOKEN_PATH
from tests.oauth_helpers import make_account

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


def sign_in(oauth, url: str, email: str, provider: str = "claude") -> tuple[str, str]:
    """What the operator's browser does: (code, state) for ``email``."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    code = oauth.authorize(params["code_challenge"], params["redirect_uri"], email, provider)
    return code, params["state"]


async def test_it_logs_in_a_claude_account_from_the_pasted_redirect_url(oauth):
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    code, state = sign_in(oauth, started.url, "max@example.com")
    assert state == started.state
    before = time.time()
    result = await sessions.complete(f"http://localhost:54545/callback?code={code}&state={state}")
    assert result.action == "created"
    exchange = oauth.token_calls[-1].json()
    assert list(exchange) == [
        "grant_type",
        "code",
        "redirect_uri",
        "client_id",
        "code_verifier",
        "state",
    ]
    assert exchange["grant_type"] == "authorization_code" and exchange["code"] == code
    assert exchange["redirect_uri"] == "http://localhost:54545/callback"
    assert exchange["client_id"] == pkce.CLIENTS[pkce.CLAUDE].client_id
    row = await database_sync_to_async(OAuthToken.objects.select_related("credential").get)()
    assert row.email == "max@example.com"  # the profile overrides the token answer's email
    assert row.credential.label == "max@example.com"
    assert abs(row.expires_at.timestamp() - (before + oauth.expires_in)) < 5
    assert oauth.is_live(row.get_access_token())
    login = await database_sync_to_async(OAuthLogin.objects.get)()
    assert (login.status, login.credential_id) == (LoginStatus.COMPLETED, row.credential_id)


async def test_it_accepts_claudes_code_hash_state_and_uses_a_state_once(oauth):
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    code, state = sign_in(oauth, started.url, "max@example.com")
    await sessions.complete(f"{code}#{state}")
    assert oauth.token_calls[-1].json()["code"] == code
    with pytest.raises(sessions.LoginError) as again:
        await sessions.complete(f"{code}#{state}")
    assert again.value.status == 409


async def test_it_answers_404_for_unknown_or_expired_states_and_400_for_the_wrong_provider(oauth):
    with pytest.raises(sessions.LoginError) as unknown:
        await sessions.complete("code=C&state=nobody-started-this")
    assert unknown.value.status == 404
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    with pytest.raises(sessions.LoginError) as wrong:
        await sessions.complete(f"code=C&state={started.state}", provider=pkce.CODEX)
    assert wrong.value.status == 400
    await database_sync_to_async(OAuthLogin.objects.update)(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(sessions.LoginError) as expired:
        await sessions.complete(f"code=C&state={started.state}")
    assert expired.value.status == 404
    assert oauth.token_calls == []


async def test_it_stores_nothing_when_the_provider_reports_an_error(oauth):
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    with pytest.raises(sessions.LoginError, match="access_denied") as refused:
        await sessions.complete(
            f"http://localhost:54545/callback?error=access_denied&state={started.state}"
        )
    assert refused.value.status == 400
    assert not await database_sync_to_async(OAuthToken.objects.exists)()
    login = await database_sync_to_async(OAuthLogin.objects.get)()
    assert login.status == LoginStatus.FAILED and "access_denied" in login.error


async def test_it_fails_the_login_when_the_code_does_not_match_the_verifier(oauth):
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    other = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    code, _ = sign_in(oauth, other.url, "max@example.com")  # a code for the other challenge
    with pytest.raises(sessions.LoginError, match="code exchange failed"):
        await sessions.complete(f"code={code}&state={started.state}")
    assert not await database_sync_to_async(OAuthToken.objects.exists)()


async def test_it_logs_in_codex_workspaces_of_one_email_as_two_accounts(oauth):
    for workspace in ("ws-one", "ws-two"):
        started = await database_sync_to_async(sessions.start)(pkce.CODEX)
        params = {k: v[0] for k, v in parse_qs(urlsplit(started.url).query).items()}
        assert params["prompt"] == "login"
        oauth.add_account("dev@example.com", provider="codex", uuid=workspace)
        account = oauth.accounts.pop()
        oauth.accounts.insert(0, account)  # authorize() picks the first with this email
        code = oauth.authorize(
            params["code_challenge"], params["redirect_uri"], "dev@example.com", "codex"
        )
        await sessions.complete(
            f"http://localhost:1455/auth/callback?code={code}&state={params['state']}"
        )
        exchange = oauth.token_calls[-1]
        assert exchange.path == CODEX_TOKEN_PATH
        assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "state" not in parse_qs(exchange.body.decode())
    rows = await database_sync_to_async(list)(
        OAuthToken.objects.order_by("id").values_list("identity", "email", "plan")
    )
    assert rows == [
        ("codex:ws-one", "dev@example.com", "plus"),
        ("codex:ws-two", "dev@example.com", "plus"),
    ]


async def test_it_clears_needs_login_when_the_account_logs_in_again(api, oauth):
    credential = await database_sync_to_async(make_account)(oauth, "max@example.com")
    await database_sync_to_async(OAuthToken.objects.update)(state=AccountState.NEEDS_LOGIN)
    started = await database_sync_to_async(sessions.start)(pkce.CLAUDE)
    code, state = sign_in(oauth, started.url, "max@example.com")
    result = await sessions.complete(f"code={code}&state={state}")
    assert (result.action, result.credential_id) == ("updated", credential.pk)
    row = await database_sync_to_async(OAuthToken.objects.get)()
    assert row.state == AccountState.ACTIVE
    response = await api.message()
    assert response.status_code == 200, response.content


class BrowserOnStdin:
    """stdin for login_account: reads the URL the command printed, signs in, pastes back."""

    def __init__(self, oauth, out: StringIO, email: str) -> None:
        self.oauth, self.out, self.email = oauth, out, email

    def readline(self) -> str:
        url = next(line for line in self.out.getvalue().splitlines() if line.startswith("http"))
        code, state = sign_in(self.oauth, url, self.email)
        return f"http://localhost:54545/callback?code={code}&state={state}\n"


def test_it_logs_in_from_the_command_line(oauth, monkeypatch):
    out = StringIO()
    monkeypatch.setattr("sys.stdin", BrowserOnStdin(oauth, out, "cli@example.com"))
    call_command("login_account", "claude", stdout=out)
    assert "created account #" in out.getvalue() and "cli@example.com" in out.getvalue()
    assert OAuthToken.objects.get().email == "cli@example.com"
    assert "sk-ant" not in out.getvalue()


def test_it_reports_a_bad_paste_on_the_command_line(oauth, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO("not a callback\n"))
    with pytest.raises(CommandError, match="no code|no state|Expected"):
        call_command("login_account", "codex", stdout=StringIO())
    assert json.dumps(list(OAuthLogin.objects.values("status"))) == '[{"status": "pending"}]'
