"""Management commands: import_config (CLIProxyAPI's config.yaml), reset_quota, proxy_status."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import keys
from accounts.models import (
    ClientKey,
    Credential,
    CredentialModel,
    PoolVersion,
    ProxySettings,
    QuotaState,
)
from tests.conftest import FIXTURES, Api, make_credential, set_proxy_settings

SAMPLE = FIXTURES / "cliproxyapi" / "config.yaml"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def snapshot() -> dict:
    return {
        "credentials": list(Credential.objects.order_by("id").values_list("id", "updated_at")),
        "models": list(CredentialModel.objects.order_by("id").values_list("id", flat=True)),
        "keys": list(ClientKey.objects.order_by("id").values_list("id", flat=True)),
        "settings": ProxySettings.objects.get(pk=1).updated_at,
        "config_version": PoolVersion.objects.get(pk=1).config,
    }


# import_config


@pytest.mark.django_db
def test_it_imports_the_sample_config():
    out, _ = run("import_config", str(SAMPLE))

    assert ClientKey.objects.count() == 3
    assert Credential.objects.count() == 5
    assert CredentialModel.objects.count() == 8
    assert "  api-keys: 3 created, 0 unchanged" in out
    assert "  claude-api-key: 2 created, 0 updated, 0 unchanged" in out
    assert "  gemini-api-key: 1 created, 0 updated, 0 unchanged" in out
    assert "  openai-compatibility: 2 created, 0 updated, 0 unchanged" in out
    assert "Total: 8 created, 0 updated, 0 unchanged; settings changed." in out
    # disable-cooling: false and transient-error-cooldown-seconds: 0 (= 60 s) are the defaults.
    assert (
        "  settings: 12 changed (request-retry, max-retry-credentials, max-retry-interval, "
        "nonstream-keepalive-interval, passthrough-headers, proxy-url, force-model-prefix, "
        "streaming.keepalive-seconds, streaming.bootstrap-retries, routing.strategy, "
        "routing.session-affinity, routing.session-affinity-ttl)"
    ) in out


@pytest.mark.django_db
def test_it_changes_nothing_on_a_second_run(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as first_commit:
        run("import_config", str(SAMPLE))
    before = snapshot()

    with django_capture_on_commit_callbacks(execute=True) as second_commit:
        out, _ = run("import_config", str(SAMPLE))

    assert first_commit  # the first run did bump the config version
    assert second_commit == []
    assert snapshot() == before
    assert "  api-keys: 0 created, 3 unchanged" in out
    assert "  claude-api-key: 0 created, 0 updated, 2 unchanged" in out
    assert "  settings: unchanged" in out
    assert "Total: 0 created, 0 updated, 8 unchanged; settings unchanged." in out


@pytest.mark.django_db
def test_it_stores_client_keys_as_digests_only():
    run("import_config", str(SAMPLE))

    alice = ClientKey.objects.get(digest=keys.digest("cpa-client-key-alice-0001"))
    assert (alice.name, alice.enabled) == ("imported-1", True)
    # A short key keeps at most a third of itself visible.
    assert alice.prefix == "cpa-clie"
    assert ClientKey.objects.filter(digest=keys.digest("cpa-client-key-ci-0000003")).exists()
    assert not ClientKey.objects.filter(digest=keys.digest("cpa-client-key-nobody")).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_pool")
async def test_it_lets_clients_in_with_the_imported_keys():
    await sync_to_async(run)("import_config", str(SAMPLE))

    accepted = await Api("cpa-client-key-bob-000002").get("/v1/models")
    refused = await Api("cpa-client-key-mallory-01").get("/v1/models")

    assert accepted.status_code == 200
    assert refused.status_code == 401


@pytest.mark.django_db
def test_it_maps_the_global_settings():
    run("import_config", str(SAMPLE))

    row = ProxySettings.load()
    assert row.request_retry == 2
    assert row.max_retry_credentials == 3
    assert row.max_retry_interval == 20
    assert row.disable_cooling is False
    assert row.transient_error_cooldown_seconds == 60  # 0 in the file means CLIProxyAPI's 60 s
    assert row.nonstream_keepalive_interval == 10
    assert row.stream_keepalive_seconds == 15
    assert row.bootstrap_retries == 1
    assert row.routing_strategy == "weighted-round-robin"
    assert row.session_affinity is True
    assert row.session_affinity_ttl == 1800
    assert row.passthrough_headers is True
    assert row.proxy_url == "socks5://127.0.0.1:1080"
    assert row.force_model_prefix is True


@pytest.mark.django_db
def test_it_only_changes_the_settings_present_in_the_file(tmp_path):
    set_proxy_settings(request_retry=7, upstream_read_timeout=120, routing_strategy="fill-first")

    out, _ = run("import_config", write_config(tmp_path, "transient-error-cooldown-seconds: -1\n"))

    row = ProxySettings.load()
    assert (row.request_retry, row.upstream_read_timeout) == (7, 120)
    assert row.routing_strategy == "fill-first"
    assert row.transient_error_cooldown_seconds == -1
    assert "settings: 1 changed (transient-error-cooldown-seconds)" in out


@pytest.mark.django_db
def test_it_stores_credentials_with_models_aliases_and_exclusions():
    run("import_config", str(SAMPLE))

    first = Credential.objects.get(label="claude #1")
    assert first.provider == "anthropic"
    assert first.get_secret() == "sk-ant-api03-first-key-0000000001"
    assert first.source_key == keys.digest("claude-api-key||sk-ant-api03-first-key-0000000001")
    assert (first.priority, first.weight, first.prefix) == (10, 3, "team")
    assert first.extra_headers == {"X-Team": "platform"}
    assert first.excluded_list == ["claude-3-*", "*haiku*"]
    assert (first.disable_cooling, first.request_retry, first.enabled) == (True, 1, True)
    assert list(first.models.values_list("name", "alias", "display_name", "max_input_tokens")) == [
        ("claude-sonnet-4-6", "sonnet", "Claude Sonnet", 200000),
        ("claude-opus-4-6", "opus", "", None),
    ]

    second = Credential.objects.get(label="claude #2")
    assert (second.base_url, second.proxy_url) == ("https://gateway.example.com", "direct")
    assert (second.request_retry, second.disable_cooling) == (None, None)

    gemini = Credential.objects.get(label="gemini #1")
    assert (gemini.provider, gemini.prefix, gemini.excluded_models) == (
        "gemini",
        "g",
        "gemini-2.5-pro",
    )

    router_1, router_2 = Credential.objects.filter(provider="openai").order_by("id")
    assert (router_1.label, router_2.label) == ("openrouter #1", "openrouter #2")
    assert router_1.get_secret() == "sk-or-v1-fake-0000000000000001"
    assert (router_1.weight, router_1.proxy_url, router_2.weight) == (5, "http://10.0.0.1:3128", 1)
    assert router_1.base_url == router_2.base_url == "https://openrouter.ai/api/v1"
    assert list(router_2.models.values_list("alias", flat=True)) == ["kimi-k2", "deepseek"]


@pytest.mark.django_db
def test_it_warns_about_unknown_and_ignored_keys_on_stderr():
    _, err = run("import_config", str(SAMPLE))

    assert "warning: request-retries: unknown key, ignored" in err
    assert "warning: port: ignored: not applicable to this proxy" in err
    assert "warning: claude-api-key[0].cloak: ignored" in err


BAD_ENTRY_AFTER_GOOD_ONES = """\
api-keys: ["cpa-client-key-alice-0001"]
request-retry: 9
claude-api-key:
  - api-key: "sk-ant-good"
    priority: 1
  - api-key: "sk-ant-bad"
    priority: "high"
"""


@pytest.mark.django_db
def test_it_rejects_a_wrong_type_naming_the_key_and_writes_nothing(tmp_path):
    with pytest.raises(CommandError) as caught:
        run("import_config", write_config(tmp_path, BAD_ENTRY_AFTER_GOOD_ONES))

    assert "claude-api-key[1].priority: expected an integer, got 'high'" in str(caught.value)
    assert (ClientKey.objects.count(), Credential.objects.count()) == (0, 0)
    assert not ProxySettings.objects.exists()


@pytest.mark.django_db
def test_it_rolls_back_everything_when_a_later_entry_fails_validation(tmp_path):
    text = BAD_ENTRY_AFTER_GOOD_ONES.replace(
        'priority: "high"', f'base-url: "https://{"x" * 300}.example"'
    )

    with pytest.raises(CommandError) as caught:
        run("import_config", write_config(tmp_path, text))

    message = str(caught.value)
    assert ": claude-api-key[1].base-url: Ensure this value has at most 300 characters" in message
    assert message.endswith("nothing was imported")
    assert (ClientKey.objects.count(), Credential.objects.count()) == (0, 0)
    assert not ProxySettings.objects.exists()


@pytest.mark.django_db
def test_it_reports_bad_yaml_with_its_line(tmp_path):
    path = write_config(tmp_path, "request-retry: 3\nrouting:\n  strategy: [round-robin\n")

    with pytest.raises(CommandError, match=r"invalid YAML at line \d+.*'strategy: \[round-robin'"):
        run("import_config", path)

    assert not ProxySettings.objects.exists()


@pytest.mark.django_db
def test_it_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*missing.yaml"):
        run("import_config", str(tmp_path / "missing.yaml"))


@pytest.mark.django_db
def test_it_updates_a_changed_entry_in_place(tmp_path):
    path = write_config(tmp_path, SAMPLE.read_text())
    run("import_config", path)
    first = Credential.objects.get(label="claude #1")
    others = list(Credential.objects.exclude(pk=first.pk).values_list("id", "updated_at"))

    Path(path).write_text(
        SAMPLE.read_text()
        .replace("priority: 10", "priority: 20")
        .replace('alias: "opus"', 'alias: "opus-latest"')
    )
    out, _ = run("import_config", path)

    first.refresh_from_db()
    assert first.priority == 20
    assert list(first.models.values_list("alias", flat=True)) == ["sonnet", "opus-latest"]
    assert Credential.objects.count() == 5
    assert list(Credential.objects.exclude(pk=first.pk).values_list("id", "updated_at")) == others
    assert "  claude-api-key: 0 created, 1 updated, 1 unchanged" in out


@pytest.mark.django_db
def test_it_keeps_a_label_the_operator_changed(tmp_path):
    run("import_config", str(SAMPLE))
    Credential.objects.filter(label="claude #1").update(label="team sonnet")

    out, _ = run("import_config", str(SAMPLE))

    assert Credential.objects.filter(label="team sonnet").count() == 1
    assert not Credential.objects.filter(label="claude #1").exists()
    assert "Total: 0 created, 0 updated, 8 unchanged" in out


@pytest.mark.django_db
def test_it_says_which_imported_credentials_left_the_file(tmp_path):
    run("import_config", str(SAMPLE))

    out, _ = run(
        "import_config", write_config(tmp_path, "claude-api-key:\n  - api-key: sk-ant-other\n")
    )

    assert Credential.objects.count() == 6
    assert "5 credential(s) imported earlier are not in this file; left as they are" in out


@pytest.mark.django_db
def test_it_writes_nothing_on_a_dry_run():
    out, _ = run("import_config", str(SAMPLE), "--dry-run")

    assert out.startswith("Dry run of ")
    assert "  claude-api-key: 2 created, 0 updated, 0 unchanged" in out
    assert (ClientKey.objects.count(), Credential.objects.count()) == (0, 0)
    assert not ProxySettings.objects.exists()


# reset_quota


def cool(credential: Credential, model: str = "", *, status: str = "cooling", **fields):
    fields.setdefault("next_retry_at", timezone.now() + timedelta(minutes=5))
    fields.setdefault("reason", "rate_limited")
    return QuotaState.objects.create(credential=credential, model=model, status=status, **fields)


@pytest.fixture
def pool_with_cooldowns(db) -> tuple[Credential, Credential]:
    primary = make_credential("primary")
    backup = make_credential("backup")
    cool(primary, "claude-sonnet-4-6")
    cool(primary, "claude-opus-4-6", reason="transient")
    cool(backup, status="attention", reason="unauthorized")
    return primary, backup


def test_it_resets_one_credential_by_id(pool_with_cooldowns):
    primary, backup = pool_with_cooldowns

    out, _ = run("reset_quota", "--credential", str(primary.pk))

    assert out.splitlines() == [
        "cleared primary (claude-opus-4-6): cooling down",
        "cleared primary (claude-sonnet-4-6): cooling down",
        "2 state(s) cleared",
    ]
    assert list(QuotaState.objects.values_list("credential_id", flat=True)) == [backup.pk]


def test_it_resets_one_credential_by_label(pool_with_cooldowns):
    out, _ = run("reset_quota", "--credential", "backup")

    assert out.splitlines() == [
        "cleared backup (whole credential): needs attention",
        "1 state(s) cleared",
    ]
    assert QuotaState.objects.count() == 2


def test_it_resets_several_credentials(pool_with_cooldowns):
    primary, _ = pool_with_cooldowns

    out, _ = run("reset_quota", "--credential", "backup", "--credential", str(primary.pk))

    assert out.splitlines()[-1] == "3 state(s) cleared"
    assert not QuotaState.objects.exists()


def test_it_resets_one_model(pool_with_cooldowns):
    out, _ = run("reset_quota", "--all", "--model", "claude-sonnet-4-6")

    # The credential-wide block on backup stops that model too, so it is cleared as well.
    assert out.splitlines() == [
        "cleared primary (claude-sonnet-4-6): cooling down",
        "cleared backup (whole credential): needs attention",
        "2 state(s) cleared",
    ]
    assert list(QuotaState.objects.values_list("model", flat=True)) == ["claude-opus-4-6"]


def test_it_resets_everything(pool_with_cooldowns):
    out, _ = run("reset_quota", "--all")

    assert out.splitlines()[-1] == "3 state(s) cleared"
    assert not QuotaState.objects.exists()


def test_it_says_when_there_is_nothing_to_reset(db):
    make_credential("primary")

    out, _ = run("reset_quota", "--all")

    assert out.strip() == "nothing to reset"


def test_it_needs_a_credential_or_all(db):
    with pytest.raises(CommandError, match="--credential ID\\|LABEL .* or --all"):
        run("reset_quota")
    with pytest.raises(CommandError, match="either --all or --credential"):
        run("reset_quota", "--all", "--credential", "primary")


def test_it_refuses_an_unknown_or_ambiguous_label(db):
    first = make_credential("twin")
    second = make_credential("twin")

    with pytest.raises(CommandError, match="No credential has the id or label 'nobody'"):
        run("reset_quota", "--credential", "nobody")
    with pytest.raises(
        CommandError, match=f"matches credentials {first.pk}, {second.pk}; use an id"
    ):
        run("reset_quota", "--credential", "twin")


# proxy_status


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def read_table(out: str) -> dict[str, dict[str, str]]:
    """proxy_status's table as {id: {column: cell}}, cut at the header's column starts."""
    header, rule, *rest = out.splitlines()
    assert set(rule) <= {"-", " "}
    starts = [match.start() for match in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    table = {}
    for line in rest:
        if not line[:1].isdigit():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        table[cells[0]] = dict(zip(names, cells, strict=True))
    return table


def test_it_prints_the_pool_and_its_states(db):
    now = timezone.now()
    healthy = make_credential(
        "healthy", models=[("claude-sonnet-4-6", "sonnet"), "claude-opus-4-6"]
    )
    cooling = make_credential("cooling", priority=5)
    locked = make_credential("locked", provider="gemini", enabled=False)
    recovered = make_credential("recovered")
    busy = make_credential("busy")
    in_3m = cool(cooling, "claude-sonnet-4-6", next_retry_at=now + timedelta(minutes=3, seconds=5))
    cool(
        locked, status="attention", reason="unauthorized", next_retry_at=now + timedelta(minutes=30)
    )
    cool(recovered, "claude-sonnet-4-6", next_retry_at=now - timedelta(seconds=1))
    cool(busy, "claude-sonnet-4-6", next_retry_at=now + timedelta(minutes=1, seconds=5))
    cool(busy, "claude-opus-4-6", reason="transient", next_retry_at=now + timedelta(minutes=2))

    out, _ = run("proxy_status")
    table = read_table(out)

    assert out.splitlines()[0].split("  ")[0] == "id"
    assert table[str(healthy.pk)] == {
        "id": str(healthy.pk),
        "label": "healthy",
        "provider": "anthropic",
        "enabled": "yes",
        "priority": "0",
        "models": "sonnet, claude-opus-4-6",
        "state": "ok",
        "next retry": "-",
    }
    assert table[str(cooling.pk)]["priority"] == "5"
    assert table[str(cooling.pk)]["models"] == "(catalogue)"
    assert table[str(cooling.pk)]["state"] == (
        f"claude-sonnet-4-6: cooling until {utc(in_3m.next_retry_at)} because rate_limited"
    )
    assert table[str(cooling.pk)]["next retry"].startswith("in 3m ")
    assert table[str(locked.pk)]["enabled"] == "no"
    assert table[str(locked.pk)]["provider"] == "gemini"
    assert table[str(locked.pk)]["state"] == "needs attention: unauthorized"
    assert table[str(locked.pk)]["next retry"].startswith("in 29m ")
    assert table[str(recovered.pk)]["state"] == "ok"  # an expired cooldown no longer counts
    assert table[str(recovered.pk)]["next retry"] == "-"
    assert table[str(busy.pk)]["state"] == "2 models blocked"
    assert table[str(busy.pk)]["next retry"].startswith("in 1m ")
    assert f"  #{busy.pk} busy: claude-opus-4-6: cooling until " in out
    assert f"  #{busy.pk} busy: claude-sonnet-4-6: cooling until " in out
    assert "because transient" in out
    assert out.splitlines()[-1] == "5 credential(s), 2 enabled and ok."


def test_it_says_when_the_pool_is_empty(db):
    out, _ = run("proxy_status")

    assert out.strip() == "No credentials configured."


@pytest.mark.django_db
def test_it_creates_openai_credentials_that_echo_no_reasoning(tmp_path, monkeypatch):
    run("import_config", str(SAMPLE))
    imported = Credential.objects.filter(provider="openai")
    assert imported.exists()
    assert {c.openai_reasoning_field for c in imported} == {""}

    monkeypatch.setenv("LOCAL_KEY", "sk-local-1234567890")
    run(
        "add_credential",
        "--provider=openai",
        "--label=local",
        "--secret-env=LOCAL_KEY",
        "--base-url=http://localhost:8000/v1",
    )
    assert Credential.objects.get(label="local").openai_reasoning_field == ""


@pytest.mark.django_db
def test_it_prints_the_fields_a_credential_learned_to_omit():
    credential = make_credential(
        "strict",
        provider="openai",
        base_url="https://llm.example/v1",
        learned_omissions={
            "reasoning_effort": {
                "at": "2026-12-02T01:10:07Z",
                "error": "Unrecognized request argument supplied: reasoning_effort",
            }
        },
    )
    out, _ = run("proxy_status")
    assert read_table(out)[str(credential.pk)]["state"] == "ok"
    assert (
        f"  #{credential.pk} strict: omits reasoning_effort (learned 2026-12-02 01:10 UTC from: "
        "Unrecognized request argument supplied: reasoning_effort)"
    ) in out
