"""Subscription accounts shared by several daphne processes on one database (PostgreSQL in the
PostgreSQL pass of `make test`): an expired token is refreshed exactly once for all of them, and
the rotated refresh token is what the next process (after a restart) uses."""

from __future__ import annotations

import html
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from accounts.models import OAuthToken
from tests.conftest import make_client_key
from tests.fakes.oauth import CODEX_TOKEN_PATH, TOKEN_PATH
from tests.live.conftest import DaphneProcess
from tests.oauth_helpers import make_account

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def account_env(env: dict[str, str], upstream_url: str) -> dict[str, str]:
    return {
        **env,
        "POOL_REFRESH_SECONDS": "0.5",
        "CLAUDE_OAUTH_TOKEN_URL": upstream_url + TOKEN_PATH,
        "CODEX_OAUTH_TOKEN_URL": upstream_url + CODEX_TOKEN_PATH,
        "CLAUDE_API_URL": upstream_url,
    }


@pytest.fixture(scope="module")
def account_workers(daphne_env, upstream_server):
    env = account_env(daphne_env, upstream_server.url)
    pair = [DaphneProcess(f"oauth-{n}", env) for n in "ab"]
    yield pair
    for worker in pair:
        worker.stop()


def post(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=60)


def test_it_refreshes_an_expired_token_once_for_100_concurrent_requests_on_two_workers(
    account_workers, oauth
):
    credential = make_account(oauth, expires_in=-60)
    sent_refresh = OAuthToken.objects.get(credential=credential).get_refresh_token()
    key = make_client_key()
    time.sleep(0.6)  # both workers see the new account
    oauth.token_delay = 0.5  # a slow token endpoint: every request arrives during the refresh
    urls = [worker.url for worker in account_workers] * 50
    with ThreadPoolExecutor(max_workers=50) as executor:
        responses = list(executor.map(lambda url: post(url, key), urls))
    assert [r.status_code for r in responses] == [200] * 100, {r.text for r in responses}
    assert len(oauth.token_calls) == 1
    assert oauth.token_calls[0].json()["refresh_token"] == sent_refresh
    row = OAuthToken.objects.get(credential=credential)
    assert row.get_refresh_token() == oauth.accounts[-1].live_refresh != sent_refresh
    served = {r.headers["authorization"] for r in oauth.server.requests if r.path == "/v1/messages"}
    assert served == {f"Bearer {row.get_access_token()}"}  # both workers used the new token


def test_it_uses_the_rotated_refresh_token_after_a_restart(daphne_env, upstream_server, oauth):
    env = account_env(daphne_env, upstream_server.url)
    credential = make_account(oauth, expires_in=-60)
    key = make_client_key()
    first = DaphneProcess("oauth-before", env)
    try:
        assert post(first.url, key).status_code == 200
    finally:
        first.stop()
    rotated = OAuthToken.objects.get(credential=credential).get_refresh_token()
    # The new access token expires too; the process started next has only the database.
    OAuthToken.objects.filter(credential=credential).update(expires_at="2020-01-01T00:00:00Z")
    second = DaphneProcess("oauth-after", env)
    try:
        assert post(second.url, key).status_code == 200
    finally:
        second.stop()
    assert [call.json()["refresh_token"] for call in oauth.token_calls][1] == rotated
    assert len(oauth.token_calls) == 2  # the fake refuses a reused token: both were live


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def test_it_completes_a_login_pasted_into_another_worker(account_workers, oauth):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-live-tests-9")
    a, b = account_workers
    with httpx.Client(timeout=30) as browser:
        form = browser.get(a.url + "/admin/login/?next=/admin/").text
        browser.post(
            a.url + "/admin/login/?next=/admin/",
            data={
                "username": "ops",
                "password": "pw-for-live-tests-9",
                "csrfmiddlewaretoken": csrf_token(form),
            },
        )
        shown = browser.get(a.url + "/admin/accounts/credential/login/claude/")
        assert shown.status_code == 200, shown.text[:500]
        found = re.search(r'class="oauth-authorize-url" href="([^"]+)"', shown.text)
        assert found
        params = {k: v[0] for k, v in parse_qs(urlsplit(html.unescape(found[1])).query).items()}
        code = oauth.authorize(params["code_challenge"], params["redirect_uri"], "ops@example.com")
        pasted = browser.post(
            b.url + "/admin/accounts/credential/login/claude/",  # the other worker
            data={
                "state": params["state"],
                "paste": f"http://localhost:54545/callback?code={code}&state={params['state']}",
                "csrfmiddlewaretoken": csrf_token(shown.text),
            },
        )
    assert pasted.status_code == 302, pasted.text[:2000]
    row = OAuthToken.objects.select_related("credential").get()
    assert pasted.headers["location"].endswith(f"/credential/{row.credential_id}/change/")
    assert row.email == "ops@example.com"
    row.credential.base_url = oauth.server.url  # the fake Anthropic, not api.anthropic.com
    row.credential.save()
    key = make_client_key()
    time.sleep(0.6)
    assert post(a.url, key).status_code == 200  # and the account serves on the first worker
    sent = [r for r in oauth.server.requests if r.path == "/v1/messages"][-1]
    assert sent.headers["authorization"] == f"Bearer {row.get_access_token()}"
