"""The pure parts of subscription accounts: PKCE, pastes, account files, refresh policy."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.oauth import files, pkce, policy
from accounts.secrets import Secret, redact
from tests.fakes.oauth import codex_id_token


def test_it_builds_the_claude_authorize_url_with_an_s256_challenge_of_the_verifier():
    verifier, state = pkce.new_verifier(), pkce.new_state()
    url = pkce.authorize_url(
        "https://claude.ai/oauth/authorize",
        pkce.CLIENTS[pkce.CLAUDE],
        state=state,
        verifier=verifier,
    )
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "claude.ai" and parts.path == "/oauth/authorize"
    assert len(verifier) == 128 and len(state) == 32
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert params == {
        "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
        "code": "true",
        "code_challenge": digest.decode(),
        "code_challenge_method": "S256",
        "redirect_uri": "http://localhost:54545/callback",
        "response_type": "code",
        "scope": "user:profile user:inference user:sessions:claude_code user:mcp_servers "
        "user:file_upload",
        "state": state,
    }
    assert list(params) == sorted(params)


def test_it_builds_the_codex_authorize_url_with_its_login_flags():
    url = pkce.authorize_url(
        "https://auth.openai.com/oauth/authorize", pkce.CLIENTS[pkce.CODEX], state="s", verifier="v"
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["prompt"] == "login"
    assert params["id_token_add_organizations"] == "true"
    assert params["codex_cli_simplified_flow"] == "true"
    assert params["redirect_uri"] == "http://localhost:1455/auth/callback"
    assert params["scope"] == "openid email profile offline_access"


@pytest.mark.parametrize(
    "paste",
    [
        "http://localhost:54545/callback?code=C1&state=S1",
        "  localhost:54545/callback?code=C1&state=S1\n",
        "code=C1&state=S1",
        "C1#S1",
        "http://localhost:54545/callback?code=C1%23S1",
        "http://localhost:1455/auth/callback#code=C1&state=S1",
    ],
)
def test_it_reads_code_and_state_from_every_paste_shape(paste):
    assert pkce.parse_paste(paste) == pkce.Callback("C1", "S1")


def test_it_reads_an_error_from_the_paste():
    callback = pkce.parse_paste("http://localhost:54545/callback?error=access_denied&state=S")
    assert callback.error == "access_denied" and callback.state == "S" and not callback.code


@pytest.mark.parametrize("paste", ["", "http://localhost:54545/callback?state=S", "code=C"])
def test_it_refuses_a_paste_without_code_or_state(paste):
    with pytest.raises(pkce.PasteError):
        pkce.parse_paste(paste)


def test_it_reads_a_claude_account_file():
    data = files.parse_account(
        {
            "id_token": "",
            "access_token": "sk-ant-oat01-aaaa",
            "refresh_token": "sk-ant-ort01-bbbb",
            "last_refresh": "2026-08-20T10:00:00+08:00",
            "email": "a@b.c",
            "account_uuid": "uuid-1",
            "organization_uuid": "org-1",
            "organization_name": "Org",
            "claude_device_ids": ["ab" * 32],
            "type": "claude",
            "expired": "2026-08-20T18:00:00+08:00",
            "disabled": False,
            "headers": {"x-secret": "no"},
        }
    )
    assert data.provider == "anthropic" and data.identity == "anthropic:uuid-1"
    assert data.expires_at == datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
    assert data.last_refresh_at == datetime(2026, 8, 20, 2, 0, tzinfo=UTC)
    assert (data.email, data.organization_id, data.organization_name) == ("a@b.c", "org-1", "Org")
    assert data.extras == {"claude_device_ids": ["ab" * 32]}  # headers may carry secrets: dropped
    assert "sk-ant" not in repr(data)


def test_it_reads_a_codex_account_file_and_its_identity_from_the_id_token():
    data = files.parse_account_text(
        json.dumps(
            {
                "id_token": codex_id_token("c@d.e", "ws-42", "pro"),
                "access_token": "eyJx.eyJy.z",
                "refresh_token": "rt_abcdefghijkl",
                "account_id": "",
                "email": "",
                "type": "codex",
                "expired": 1787000000,
            }
        )
    )
    assert data.provider == "codex"
    assert (data.email, data.account_id, data.plan) == ("c@d.e", "ws-42", "pro")
    assert data.identity == "codex:ws-42"
    assert data.expires_at == datetime.fromtimestamp(1787000000, tz=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02 03:04", datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1767323045000, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1767323045", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("soon", None),
    ],
)
def test_it_parses_every_expiry_format_of_the_reference_files(value, expected):
    assert files.parse_time(value) == expected


@pytest.mark.parametrize(
    "data",
    [[], {"type": "gemini", "access_token": "x", "email": "a"}, {"type": "claude", "email": "a"}],
)
def test_it_refuses_what_is_not_a_claude_or_codex_account(data):
    with pytest.raises(files.AccountFileError):
        files.parse_account(data)


def test_it_treats_a_refused_refresh_token_as_dead_and_429_or_5xx_as_transient():
    dead = policy.classify_answer(400, {"error": "invalid_grant"}, None, 0)
    assert dead.rejected and not dead.ok and "invalid_grant" in dead.message
    reused = policy.classify_answer(401, {"error": {"code": "refresh_token_reused"}}, None, 0)
    assert reused.rejected
    limited = policy.classify_answer(429, {}, "120", 0)
    assert not limited.rejected and limited.retry_after == 120
    assert policy.classify_answer(429, {}, "1", 0).retry_after == policy.MIN_BACKOFF_SECONDS
    assert policy.classify_answer(429, {}, "9999", 0).retry_after == policy.MAX_BACKOFF_SECONDS
    down = policy.classify_answer(503, None, None, 2)
    assert not down.rejected and down.retry_after == 20
    assert policy.classify_answer(0, None, None, 10).retry_after == policy.MAX_BACKOFF_SECONDS
    assert policy.classify_answer(200, {"access_token": "a"}, None, 0).ok
    echoed = policy.classify_answer(
        400, {"error": "invalid_grant", "error_description": "bad sk-ant-ort01-abcdefgh"}, None, 0
    )
    assert echoed.message == "HTTP 400 invalid_grant: bad [redacted]"


def test_it_calls_a_token_due_within_its_lead_and_expired_within_the_skew():
    assert policy.is_due(1000 + 4 * 3600 - 60, 1000, 4 * 3600)
    assert not policy.is_due(1000 + 4 * 3600 + 60, 1000, 4 * 3600)
    assert policy.is_expired(1010, 1000) and not policy.is_expired(1100, 1000)
    assert not policy.is_expired(None, 1000)


def test_it_redacts_refresh_tokens_and_jwts_as_well_as_keys():
    message = (
        "bad sk-ant-ort01-abcdefgh and rt_abcdefghijklmnop and "
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln and AIzaSyA-1234567890"
    )
    assert redact(message) == "bad [redacted] and [redacted] and [redacted] and [redacted]"
    assert repr(Secret("sk-ant-oat01-x")) == "Secret('****')"
