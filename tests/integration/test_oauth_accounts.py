"""Claude subscription accounts end to end, in-process, against a strict fake OAuth provider and
a fake Anthropic that only takes its live tokens as Bearer with the OAuth beta."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AccountState, Credential, OAuthToken, QuotaState
from accounts.oauth import store, tokens
from accounts.oauth.files import AccountData
from accounts.pool import pool
from tests.conftest import make_credential, set_proxy_settings
from tests.fakes.oauth import TOKEN_PATH
from tests.fakes.upstream import Respond
from tests.oauth_helpers import make_account, token_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]


async def test_it_sends_the_account_token_as_bearer_with_the_oauth_beta_and_the_body_as_sent(
    api, oauth
):
    credential = make_account(oauth)
    raw = (
        b'{"model":"claude-sonnet-4-6","max_tokens":5,  "messages":[{"role":"user","content":"x"}]}'
    )
    response = await api.post(
        "/v1/messages",
        raw,
        headers={"anthropic-beta": "claude-code-20250219", "user-agent": "claude-cli/2.1.197"},
    )
    assert response.status_code == 200, response.content
    sent = oauth.server.requests[-1]
    access = token_row(credential).get_access_token()
    assert sent.headers["authorization"] == f"Bearer {access}"
    assert "x-api-key" not in sent.headers
    assert sent.headers["anthropic-beta"] == "claude-code-20250219,oauth-2025-04-20"
    assert sent.headers["user-agent"] == "claude-cli/2.1.197"
    assert sent.body == raw  # byte for byte: no rewritten system prompt, no added identity


async def test_it_refreshes_an_expired_token_first_and_stores_the_rotated_refresh_token(api, oauth):
    credential = make_account(oauth, expires_in=-60)
    old = token_row(credential)
    response = await api.message()
    assert response.status_code == 200, response.content
    assert len(oauth.token_calls) == 1
    call = oauth.token_calls[0].json()
    assert (
        call["grant_type"] == "refresh_token" and call["refresh_token"] == old.get_refresh_token()
    )
    new = token_row(credential)
    assert new.get_refresh_token() == oauth.accounts[-1].live_refresh != old.get_refresh_token()
    assert new.token_version == old.token_version + 1
    assert new.expires_at > timezone.now() + timedelta(minutes=50)
    assert oauth.server.requests[-1].headers["authorization"] == f"Bearer {new.get_access_token()}"


async def test_it_makes_one_refresh_for_many_concurrent_requests_on_an_expired_token(api, oauth):
    make_account(oauth, expires_in=-60)
    oauth.token_delay = 0.3
    responses = await asyncio.gather(*(api.message() for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert len(oauth.token_calls) == 1


async def test_it_refreshes_once_after_a_401_and_retries_on_the_same_account(api, oauth):
    set_proxy_settings(routing_strategy="fill-first", request_retry=0)
    credential = make_account(oauth, priority=1)
    other = make_credential("key", base_url=oauth.server.url + "/other")
    oauth.access_expiry.clear()  # the provider revoked the access token early
    response = await api.message()
    assert response.status_code == 200, response.content
    assert len(oauth.token_calls) == 1
    served = [r for r in oauth.server.requests if r.path.endswith("/v1/messages")]
    assert [r.path for r in served] == ["/v1/messages", "/v1/messages"]  # same account twice
    assert not QuotaState.objects.filter(credential=credential).exists()
    assert other.pk  # never needed


async def test_it_moves_on_when_the_account_still_gets_401_after_its_refresh(api, oauth):
    set_proxy_settings(routing_strategy="fill-first", request_retry=0)
    credential = make_account(oauth, priority=1)
    make_credential("key", base_url=oauth.server.url + "/other")
    oauth.server.script(
        "/v1/messages",
        Respond.error(401, "authentication_error", "OAuth token has expired"),
        Respond.error(401, "authentication_error", "OAuth token has expired"),
    )
    oauth.server.script("/other/", Respond.anthropic_message("from the key"))
    response = await api.message()
    assert response.status_code == 200
    assert json.loads(response.content)["content"][0]["text"] == "from the key"
    assert len(oauth.token_calls) == 1  # one refresh, not one per 401
    await pool.settle()
    assert QuotaState.objects.get(credential=credential).reason == "unauthorized"


async def test_it_marks_the_account_needs_login_when_its_refresh_token_is_refused(api, oauth):
    set_proxy_settings(routing_strategy="fill-first", request_retry=0)
    credential = make_account(oauth, expires_in=-60, priority=1)
    oauth.accounts[-1].live_refresh = "revoked"  # the stored refresh token is dead
    make_credential("key", base_url=oauth.server.url + "/other")
    oauth.server.script("/other/", Respond.anthropic_message("from the key"))
    response = await api.message()
    assert response.status_code == 200
    row = token_row(credential)
    assert row.state == AccountState.NEEDS_LOGIN
    assert "invalid_grant" in row.state_reason
    assert "sk-ant" not in row.state_reason
    calls = len(oauth.token_calls)
    for _ in range(3):
        oauth.server.script("/other/", Respond.anthropic_message("from the key"))
        assert (await api.message()).status_code == 200
    await tokens.sweep()
    assert len(oauth.token_calls) == calls == 1  # terminal: never refreshed again
    snapshot = await pool.current()
    assert credential.pk not in [c.credential_id for c in snapshot.credentials]


async def test_it_clears_needs_login_with_a_new_import_of_the_account(api, oauth):
    credential = make_account(oauth)
    OAuthToken.objects.filter(credential=credential).update(state=AccountState.NEEDS_LOGIN)
    QuotaState.objects.create(credential=credential, status="attention", reason="unauthorized")
    refresh = oauth.accounts[-1].live_refresh = "sk-ant-ort01-relogged-in-000001"
    result = store.save_account(
        AccountData(
            provider="anthropic",
            access_token=oauth.issue_access(refresh),
            refresh_token=refresh,
            expires_at=timezone.now() + timedelta(hours=1),
            email="max@example.com",
            account_id=oauth.accounts[-1].uuid,
        )
    )
    assert (result.action, result.credential_id) == ("updated", credential.pk)
    assert token_row(credential).state == AccountState.ACTIVE
    assert not QuotaState.objects.filter(credential=credential).exists()
    assert (await api.message()).status_code == 200


async def test_it_does_not_call_a_lost_race_needs_login_when_the_row_changed_meanwhile(oauth):
    credential = make_account(oauth, expires_in=-60)
    claim = store.claim(credential.pk, "worker-a", seen_version=None, due_before=time.time())
    assert claim.job
    sent = claim.refresh_token
    # Worker B's refresh lands first (its lease taken after A's ran out, say).
    winner = AccountData(
        provider="anthropic",
        access_token="sk-ant-oat01-from-worker-b-0001",
        refresh_token="sk-ant-ort01-from-worker-b-0001",
        expires_at=timezone.now() + timedelta(hours=8),
        email="max@example.com",
    )
    assert store.store_refreshed(credential.pk, "worker-b", sent, winner) is not None
    token = store.store_rejected(credential.pk, "worker-a", sent, "HTTP 400 invalid_grant")
    assert token is not None and not token.needs_login
    assert token.access.reveal() == "sk-ant-oat01-from-worker-b-0001"
    assert token_row(credential).state == AccountState.ACTIVE


async def test_it_backs_off_a_rate_limited_refresh_and_keeps_serving_the_current_token(api, oauth):
    credential = make_account(oauth, expires_in=3600)  # inside the 4 h lead, still valid
    oauth.server.script(
        TOKEN_PATH, Respond.json({"error": "rate_limited"}, 429, headers={"retry-after": "120"})
    )
    await tokens.sweep()
    row = token_row(credential)
    assert len(oauth.token_calls) == 1
    assert 115 <= (row.refresh_backoff_until - timezone.now()).total_seconds() <= 121
    assert row.state == AccountState.ACTIVE and "429" in row.last_refresh_error
    await tokens.sweep()
    assert (await api.message()).status_code == 200
    assert len(oauth.token_calls) == 1  # nothing asked the token endpoint during the back-off


async def test_it_refreshes_in_the_background_ahead_of_expiry(api, oauth, settings):
    settings.OAUTH_SWEEP_SECONDS = 0.01
    credential = make_account(oauth, expires_in=4 * 3600 - 60)
    before = token_row(credential).get_access_token()
    await pool.current()  # the periodic check starts the sweep, off the request path
    await pool.settle()
    assert len(oauth.token_calls) == 1
    after = token_row(credential).get_access_token()
    assert after != before
    assert (await api.message()).status_code == 200
    assert oauth.server.requests[-1].headers["authorization"] == f"Bearer {after}"


async def test_it_keeps_the_old_refresh_token_when_the_answer_has_none(oauth):
    credential = make_account(oauth, expires_in=60)
    old_refresh = token_row(credential).get_refresh_token()
    oauth.server.script(
        TOKEN_PATH, Respond.json({"access_token": "sk-ant-oat01-new-0000001", "expires_in": 3600})
    )
    await tokens.sweep()
    row = token_row(credential)
    assert row.get_access_token() == "sk-ant-oat01-new-0000001"
    assert row.get_refresh_token() == old_refresh


async def test_it_finishes_and_stores_a_refresh_whose_caller_went_away(oauth):
    credential = make_account(oauth, expires_in=-60)
    oauth.token_delay = 0.3
    caller = asyncio.ensure_future(tokens.current(credential.pk))
    await asyncio.sleep(0.1)
    caller.cancel()  # the client disconnected mid-refresh
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(60):
        if token_row(credential).token_version > 1:
            break
        await asyncio.sleep(0.05)
    row = token_row(credential)
    assert row.token_version == 2
    assert row.get_refresh_token() == oauth.accounts[-1].live_refresh
    assert len(oauth.token_calls) == 1


async def test_it_refuses_a_refresh_token_another_account_already_holds(oauth):
    credential = make_account(oauth)
    held = token_row(credential).get_refresh_token()
    with pytest.raises(store.AccountConflict, match="already held"):
        store.save_account(
            AccountData(
                provider="anthropic",
                access_token="sk-ant-oat01-copy",
                refresh_token=held,
                expires_at=None,
                email="someone-else@example.com",
            )
        )
    assert Credential.objects.count() == 1


async def test_it_answers_an_envelope_not_a_500_when_no_account_has_a_token(api, oauth):
    set_proxy_settings(request_retry=0)
    credential = make_account(oauth, expires_in=-60)
    oauth.server.script(TOKEN_PATH, Respond.json({"error": "server_error"}, 503))
    response = await api.message()
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert token_row(credential).refresh_backoff_until is not None


async def test_it_reads_no_database_per_request_with_an_account_while_nothing_changes(
    api, oauth, settings, monkeypatch
):
    from django.db.backends import utils

    make_account(oauth)
    settings.POOL_REFRESH_SECONDS = 60
    settings.STATS_FLUSH_SECONDS = 60
    assert (await api.message()).status_code == 200
    await pool.settle()
    seen: list[str] = []
    original = utils.CursorWrapper._execute

    def counting(self, sql, params, *rest):
        seen.append(sql)
        return original(self, sql, params, *rest)

    monkeypatch.setattr(utils.CursorWrapper, "_execute", counting)
    for _ in range(10):
        assert (await api.message()).status_code == 200
    assert seen == []


def window_headers(five: float, seven: float) -> dict[str, str]:
    reset = int(time.time())
    return {
        "anthropic-ratelimit-unified-5h-utilization": str(five),
        "anthropic-ratelimit-unified-5h-reset": str(reset + 3600),
        "anthropic-ratelimit-unified-5h-status": "allowed",
        "anthropic-ratelimit-unified-7d-utilization": str(seven),
        "anthropic-ratelimit-unified-7d-reset": str(reset + 86400 * 3),
        "anthropic-ratelimit-unified-7d-status": "allowed",
    }


async def test_it_routes_quota_aware_to_the_account_with_the_most_window_left(api, oauth):
    from io import StringIO

    from django.core.management import call_command
    from django.db import connections

    set_proxy_settings(routing_strategy="quota-aware")
    busy = make_account(oauth, "busy@example.com")
    fresh = make_account(oauth, "fresh@example.com")
    oauth.response_headers["busy@example.com"] = window_headers(0.8, 0.3)
    oauth.response_headers["fresh@example.com"] = window_headers(0.1, 0.05)
    for _ in range(2):  # round-robin until both have reported their windows
        assert (await api.message()).status_code == 200
    await pool.settle()
    fresh_token = token_row(fresh).get_access_token()
    before = len(oauth.server.requests)
    for _ in range(4):
        assert (await api.message()).status_code == 200
    used = [r.headers["authorization"] for r in oauth.server.requests[before:]]
    assert used == [f"Bearer {fresh_token}"] * 4
    row = token_row(busy)
    assert [w["utilization"] for w in row.quota_windows] == [0.8, 0.3]
    out = StringIO()

    def proxy_status() -> None:
        try:
            call_command("proxy_status", stdout=out)
        finally:
            connections.close_all()  # this thread's own connection (PostgreSQL keeps it open)

    await asyncio.to_thread(proxy_status)
    assert "5-hour: 80 % used, resets in 59m" in out.getvalue()
    assert "7-day: 30 % used, resets in 2d 23h" in out.getvalue()


async def test_it_waits_for_another_workers_refresh_and_uses_its_token(oauth):
    credential = make_account(oauth)
    version = token_row(credential).token_version
    # Another worker holds the lease: it is refreshing this account right now.
    OAuthToken.objects.filter(credential=credential).update(
        lease_owner="other-worker", lease_until=timezone.now() + timedelta(seconds=60)
    )
    waiting = asyncio.ensure_future(tokens.refresh_after_unauthorized(credential.pk, version))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    sent = token_row(credential).get_refresh_token()
    stored = store.store_refreshed(
        credential.pk,
        "other-worker",
        sent,
        AccountData(
            provider="anthropic",
            access_token="sk-ant-oat01-other-workers-token",
            refresh_token="sk-ant-ort01-other-workers-token",
            expires_at=timezone.now() + timedelta(hours=8),
            email="max@example.com",
        ),
    )
    assert stored is not None and stored.version == version + 1
    token = await asyncio.wait_for(waiting, 5)
    assert token is not None and token.access.reveal() == "sk-ant-oat01-other-workers-token"
    assert oauth.token_calls == []  # this worker never called the token endpoint
    assert token_row(credential).lease_owner == ""


async def test_it_keeps_refreshing_an_account_that_is_cooling_for_quota(api, oauth, settings):
    credential = make_account(oauth, expires_in=600)
    QuotaState.objects.create(
        credential=credential,
        status="cooling",
        reason="credential_quota",
        next_retry_at=timezone.now() + timedelta(hours=2),
    )
    await tokens.sweep()
    assert len(oauth.token_calls) == 1
    assert token_row(credential).expires_at > timezone.now() + timedelta(hours=7)


async def test_it_refreshes_codex_accounts_form_encoded_and_five_days_ahead(oauth):
    from urllib.parse import parse_qs

    refresh = oauth.add_account("dev@example.com", provider="codex", uuid="ws-9")
    store.save_account(
        AccountData(
            provider="codex",
            access_token=oauth.issue_access(refresh),
            refresh_token=refresh,
            expires_at=timezone.now() + timedelta(days=4),
            email="dev@example.com",
            account_id="ws-9",
        )
    )
    await tokens.sweep()
    call = oauth.token_calls[-1]
    assert call.path == "/codex/oauth/token"
    form = {k: v[0] for k, v in parse_qs(call.body.decode()).items()}
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
        "scope": "openid profile email",
    }
    row = OAuthToken.objects.get(identity="codex:ws-9")
    assert row.get_refresh_token() == oauth.accounts[-1].live_refresh != refresh
    assert row.get_id_token().count(".") == 2 and row.plan == "plus"


async def test_it_marks_a_codex_account_needs_login_on_refresh_token_reused(oauth):
    refresh = oauth.add_account("dev@example.com", provider="codex", uuid="ws-8")
    result = store.save_account(
        AccountData(
            provider="codex",
            access_token="eyJa.eyJb.c",
            refresh_token=refresh,
            expires_at=timezone.now() + timedelta(days=1),
            email="dev@example.com",
            account_id="ws-8",
        )
    )
    oauth.used_refresh.add(refresh)
    oauth.accounts[-1].live_refresh = "rt_rotated-elsewhere-0000001"
    await tokens.sweep()
    row = OAuthToken.objects.get(credential_id=result.credential_id)
    assert row.state == AccountState.NEEDS_LOGIN
    assert "refresh_token_reused" in row.state_reason
    await tokens.sweep()
    assert len(oauth.token_calls) == 1
