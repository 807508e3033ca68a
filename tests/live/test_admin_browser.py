"""An operator's first session in a real browser against real daphne: log in, add a credential,
see its status and hint (never the secret), issue a client key and copy it from the page."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from accounts import keys
from accounts.models import ClientKey, Credential
from tests.live.browser import log_in, orm

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
]

SECRET = "sk-ant-api03-Browser-Canary-5e4d3c2b1a-WXYZ"
KEY_PATTERN = re.compile(r"^sk-px-[A-Za-z0-9_-]{43}$")


def test_it_adds_a_credential_and_a_client_key_in_a_browser(page, daphne, operator):
    log_in(page, daphne.url, operator)

    page.goto(f"{daphne.url}/admin/accounts/credential/add/")
    page.fill("#id_label", "browser-team")
    page.fill("#id_secret", SECRET)
    page.fill("#id_models-0-name", "claude-sonnet-4-6")
    page.fill("#id_models-0-alias", "sonnet")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")

    row = page.locator("#result_list tbody tr", has_text="browser-team")
    assert row.locator("td.field-status").inner_text().strip() == "ok"
    assert row.locator("td.field-secret_column").inner_text().strip() == "…WXYZ"
    assert "sonnet → claude-sonnet-4-6" in row.inner_text()
    assert "Browser-Canary" not in page.content()
    credential = orm(lambda: Credential.objects.get(label="browser-team"))
    assert credential.get_secret() == SECRET

    page.goto(f"{daphne.url}/admin/accounts/credential/{credential.pk}/change/")
    assert page.input_value("#id_secret") == ""
    assert "Browser-Canary" not in page.content()

    page.goto(f"{daphne.url}/admin/accounts/clientkey/add/")
    page.fill("#id_name", "browser-client")
    page.click("input[name=_save]")
    key = page.inner_text("code.issued-key").strip()

    assert KEY_PATTERN.match(key)
    assert orm(lambda: ClientKey.objects.get(digest=keys.digest(key)).name) == "browser-client"
    page.goto(f"{daphne.url}/admin/accounts/clientkey/")
    assert "browser-client" in page.content()
    assert key not in page.content()

    # The key works at once: the admin's save reached the serving process through the version
    # bump, with no restart.
    deadline = time.monotonic() + 5
    while True:
        response = httpx.get(
            f"{daphne.url}/v1/models",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            timeout=5,
        )
        if response.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code != 401, response.text


@pytest.fixture
def account_daphne(daphne_env, upstream_server):
    """A daphne whose OAuth endpoints are the fake ones (tests/fakes/oauth.py)."""
    from tests.fakes.oauth import CODEX_TOKEN_PATH, TOKEN_PATH
    from tests.live.conftest import DaphneProcess

    url = upstream_server.url
    process = DaphneProcess(
        "browser-oauth",
        {
            **daphne_env,
            "CLAUDE_OAUTH_TOKEN_URL": url + TOKEN_PATH,
            "CODEX_OAUTH_TOKEN_URL": url + CODEX_TOKEN_PATH,
            "CLAUDE_API_URL": url,
        },
    )
    yield process
    process.stop()


def test_it_logs_in_a_claude_account_from_the_admin_in_a_browser(
    page, account_daphne, operator, upstream
):
    from urllib.parse import parse_qs, urlsplit

    from accounts.models import OAuthToken
    from tests.fakes.oauth import FakeOAuth

    oauth = FakeOAuth(upstream)
    log_in(page, account_daphne.url, operator)
    page.goto(f"{account_daphne.url}/admin/accounts/credential/")
    page.click("text=Log in a Claude account")
    link = page.locator("a.oauth-authorize-url")
    authorize_url = link.get_attribute("href")
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    assert params["code_challenge_method"] == "S256"
    assert params["response_type"] == "code" and params["state"]

    # What the operator does in another tab: sign in, approve, copy what Claude shows.
    code = oauth.authorize(params["code_challenge"], params["redirect_uri"], "ops@example.com")
    page.fill("textarea[name=paste], input[name=paste]", f"{code}#{params['state']}")
    page.click("input[type=submit][value='Finish the login']")
    page.wait_for_selector("#content-main")

    account = orm(lambda: OAuthToken.objects.select_related("credential").get())
    assert account.email == "ops@example.com"
    assert page.url.endswith(f"/admin/accounts/credential/{account.credential_id}/change/")
    shown = page.content()
    assert "ops@example.com" in shown
    for token in (account.get_access_token(), account.get_refresh_token()):
        assert token not in shown  # never a token on the page

    page.goto(f"{account_daphne.url}/admin/accounts/credential/")
    row = page.locator("#result_list tbody tr", has_text="ops@example.com")
    assert "OAuth: ops@example.com" in row.inner_text()
    page.screenshot(path=str(Path(os.environ.get("DATA_DIR", "data")) / "admin-oauth-login.png"))
