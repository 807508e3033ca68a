"""Subscription accounts in the admin: list and page show identity and needs login, never a
token; the login pages and the account-file upload work end to end against the fake provider."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import AccountState, Credential, OAuthLogin, OAuthToken
from tests.conftest import make_credential
from tests.integration.test_account_commands import CLAUDE_FILE, CODEX_FILE
from tests.oauth_helpers import make_account

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:accounts_credential_changelist"


def test_it_lists_accounts_with_their_identity_and_needs_login_and_no_token(admin_client, oauth):
    account = make_account(oauth, "max@example.com")
    make_credential("a key")
    row = OAuthToken.objects.get(credential=account)
    OAuthToken.objects.filter(pk=row.pk).update(
        state=AccountState.NEEDS_LOGIN, state_reason="refresh refused: HTTP 400 invalid_grant"
    )
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "OAuth: max@example.com" in page
    assert "needs login: refresh refused: HTTP 400 invalid_grant" in page
    assert "Log in a Claude account" in page and "Log in a Codex account" in page
    assert "Import account files" in page
    assert row.get_access_token() not in page and row.get_refresh_token() not in page
    filtered = admin_client.get(reverse(CHANGELIST) + "?state=needs_login").content.decode()
    assert "max@example.com" in filtered and "a key" not in filtered


def test_it_shows_the_account_on_its_credential_page_without_tokens(admin_client, oauth):
    account = make_account(oauth, "max@example.com")
    row = OAuthToken.objects.get(credential=account)
    OAuthToken.objects.filter(pk=row.pk).update(
        state=AccountState.NEEDS_LOGIN, state_reason="refresh refused: HTTP 400 invalid_grant"
    )
    page = admin_client.get(
        reverse("admin:accounts_credential_change", args=[account.pk])
    ).content.decode()
    assert "Needs login: refresh refused: HTTP 400 invalid_grant" in page
    assert row.account_id in page
    for secret in (row.get_access_token(), row.get_refresh_token(), row.access_encrypted):
        assert secret not in page


def test_it_logs_in_a_claude_account_from_the_admin(admin_client, oauth):
    url = reverse("admin:accounts_credential_login", args=["claude"])
    page = admin_client.get(url)
    assert page.status_code == 200
    authorize = page.context["url"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith("https://claude.ai/oauth/authorize?")
    assert params["code_challenge_method"] == "S256"
    code = oauth.authorize(params["code_challenge"], params["redirect_uri"], "web@example.com")
    done = admin_client.post(
        url,
        {
            "state": params["state"],
            "paste": f"http://localhost:54545/callback?code={code}&state={params['state']}",
        },
    )
    credential = Credential.objects.get()
    assert done.status_code == 302
    assert done["location"] == reverse("admin:accounts_credential_change", args=[credential.pk])
    assert credential.label == "web@example.com"
    assert OAuthToken.objects.get().state == AccountState.ACTIVE


def test_it_shows_the_error_of_a_failed_paste_on_the_login_page(admin_client, oauth):
    url = reverse("admin:accounts_credential_login", args=["codex"])
    state = parse_qs(urlsplit(admin_client.get(url).context["url"]).query)["state"][0]
    page = admin_client.post(url, {"state": state, "paste": f"code=C&state={state}"})
    assert page.status_code == 200
    assert "The code exchange failed" in page.content.decode()
    assert not Credential.objects.exists()
    assert OAuthLogin.objects.get().status == "failed"


def test_it_imports_uploaded_account_files(admin_client):
    files = [
        SimpleUploadedFile(path.name, path.read_bytes(), "application/json")
        for path in (CLAUDE_FILE, CODEX_FILE)
    ]
    files.append(SimpleUploadedFile("notes.json", b"[1, 2]", "application/json"))
    page = admin_client.post(reverse("admin:accounts_credential_import"), {"files": files})
    text = page.content.decode()
    assert page.status_code == 200
    assert text.count("<td>created</td>") == 2 and "<td>skipped</td>" in text
    assert set(Credential.objects.values_list("provider", flat=True)) == {"anthropic", "codex"}
    assert "fixture-refresh" not in text


def test_it_refuses_the_login_pages_to_staff_without_add_permission(client, django_user_model):
    user = django_user_model.objects.create_user(
        "viewer", password="pw-for-tests-only", is_staff=True
    )
    client.force_login(user)
    response = client.get(reverse("admin:accounts_credential_login", args=["claude"]))
    assert response.status_code == 404
    assert not OAuthLogin.objects.exists()


def test_it_draws_a_bar_per_quota_window_on_the_account_page(admin_client, oauth):
    import time

    account = make_account(oauth, "max@example.com")
    now = time.time()
    OAuthToken.objects.filter(credential=account).update(
        quota_windows=[
            {"name": "5h", "utilization": 0.42, "reset_at": now + 7300, "status": "allowed"},
            {"name": "7d", "utilization": 0.95, "reset_at": now + 90000, "status": "allowed"},
        ]
    )
    page = admin_client.get(
        reverse("admin:accounts_credential_change", args=[account.pk])
    ).content.decode()
    assert page.count('class="quota-bar"') == 2
    assert "5-hour: 42 % used, resets in 2h 01m" in page
    assert "width:95%;height:100%;background:#ba2121" in page


def test_it_saves_an_accounts_routing_fields_without_touching_its_tokens(admin_client, oauth):
    from tests.integration.test_admin import credential_data

    account = make_account(oauth, "max@example.com")
    account.models.create(name="claude-sonnet-4-6")
    before = OAuthToken.objects.get(credential=account)
    response = admin_client.post(
        reverse("admin:accounts_credential_change", args=[account.pk]),
        credential_data(account, priority="7", label="max (team)"),
    )
    assert response.status_code == 302, (
        response.context["adminform"].form.errors,
        response.context["inline_admin_formsets"][0].formset.errors,
    )
    account.refresh_from_db()
    assert (account.priority, account.label, account.auth_kind) == (7, "max (team)", "oauth")
    after = OAuthToken.objects.get(credential=account)
    assert after.get_access_token() == before.get_access_token()
    assert after.token_version == before.token_version
