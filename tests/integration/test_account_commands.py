"""import_auth_files (CLIProxyAPI account files) and proxy_status for subscription accounts."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AccountState, AuthKind, Credential, OAuthToken
from tests.conftest import FIXTURES

AUTH_DIR = FIXTURES / "cliproxyapi" / "auth"
CLAUDE_FILE = AUTH_DIR / "claude-max@example.com.json"
CODEX_FILE = AUTH_DIR / "codex-1a2b3c4d-dev@example.com-plus.json"

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_imports_a_directory_of_account_files():
    out = run("import_auth_files", str(AUTH_DIR))
    assert "created   " + str(CLAUDE_FILE) + ": Claude account #" in out
    assert "skipped   " + str(AUTH_DIR / "gemini-g@example.com.json") in out
    assert "2 created, 1 skipped" in out
    claude = OAuthToken.objects.select_related("credential").get(credential__provider="anthropic")
    assert claude.credential.auth_kind == AuthKind.OAUTH
    assert claude.credential.label == "max@example.com"
    assert claude.identity == "anthropic:11111111-2222-3333-4444-555555555555"
    assert claude.get_access_token() == "sk-ant-oat01-fixture-access-claude-0001"
    assert claude.get_refresh_token() == "sk-ant-ort01-fixture-refresh-claude-0001"
    assert claude.expires_at == datetime(2026, 8, 20, 10, 0, tzinfo=UTC)
    assert claude.organization_name == "Max's org"
    assert claude.extras == {"claude_device_ids": ["0123456789abcdef" * 4]}
    codex = OAuthToken.objects.get(credential__provider="codex")
    assert (codex.email, codex.account_id, codex.plan) == ("dev@example.com", "ws-7f3a", "plus")
    assert codex.get_id_token().count(".") == 2
    # Encrypted at rest: no token appears in any stored column.
    stored = json.dumps(list(OAuthToken.objects.values()), default=str)
    for secret in ("fixture-access", "fixture-refresh", "rt_fixture"):
        assert secret not in stored
    assert "fixture-" not in out and "rt_" not in out


def test_it_changes_nothing_on_a_second_import_of_the_same_files():
    run("import_auth_files", str(CLAUDE_FILE), str(CODEX_FILE))
    before = list(
        OAuthToken.objects.order_by("id").values_list("id", "token_version", "updated_at")
    )
    out = run("import_auth_files", str(CLAUDE_FILE), str(CODEX_FILE))
    assert "2 unchanged" in out
    after = list(OAuthToken.objects.order_by("id").values_list("id", "token_version", "updated_at"))
    assert after == before
    assert Credential.objects.count() == 2


def test_it_updates_the_account_when_its_file_has_new_tokens(tmp_path):
    run("import_auth_files", str(CLAUDE_FILE))
    row = OAuthToken.objects.get()
    row.state = AccountState.NEEDS_LOGIN
    row.save()
    data = json.loads(CLAUDE_FILE.read_text())
    data["access_token"] = "sk-ant-oat01-logged-in-again-0002"
    data["refresh_token"] = "sk-ant-ort01-logged-in-again-0002"
    path = tmp_path / "claude-max@example.com.json"
    path.write_text(json.dumps(data))
    assert "1 updated" in run("import_auth_files", str(path))
    row = OAuthToken.objects.get()
    assert row.get_refresh_token() == "sk-ant-ort01-logged-in-again-0002"
    assert row.state == AccountState.ACTIVE and row.token_version == 2
    assert Credential.objects.count() == 1


def test_it_refuses_a_file_whose_refresh_token_another_account_holds(tmp_path):
    run("import_auth_files", str(CLAUDE_FILE))
    data = json.loads(CLAUDE_FILE.read_text())
    data["account_uuid"], data["email"] = "other-uuid", "other@example.com"
    path = tmp_path / "claude-other@example.com.json"
    path.write_text(json.dumps(data))
    out = run("import_auth_files", str(path))
    assert "refused" in out and "already held by account 'max@example.com'" in out
    assert Credential.objects.count() == 1


def test_it_writes_nothing_on_a_dry_run(tmp_path):
    shutil.copy(CLAUDE_FILE, tmp_path)
    out = run("import_auth_files", "--dry-run", str(tmp_path))
    assert "dry run, nothing written: 1 created" in out
    assert not Credential.objects.exists()


def test_it_says_when_it_found_no_files(tmp_path):
    with pytest.raises(CommandError, match="No account files"):
        run("import_auth_files", str(tmp_path))


def test_it_shows_accounts_and_needs_login_in_proxy_status():
    run("import_auth_files", str(CLAUDE_FILE), str(CODEX_FILE))
    OAuthToken.objects.filter(credential__provider="anthropic").update(
        state=AccountState.NEEDS_LOGIN,
        state_reason="refresh refused: HTTP 400 invalid_grant",
        expires_at=timezone.now() - timedelta(minutes=5),
    )
    out = run("proxy_status")
    claude = Credential.objects.get(provider="anthropic")
    assert "needs login: refresh refused: HTTP 400 invalid_grant" in out
    assert f"#{claude.pk} max@example.com: account max@example.com; token expired" in out
    assert "Codex accounts are not served yet" in out
    assert "sk-ant" not in out and "rt_" not in out
