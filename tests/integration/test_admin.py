"""The admin as an operations console: write-only secrets, once-shown keys, the settings singleton,
quota state and routing traces, and the version bumps that make workers notice admin edits."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import keys, versions
from accounts.admin import _utc, status_lines
from accounts.models import (
    ClientKey,
    Credential,
    CredentialModel,
    CredentialStats,
    ProxySettings,
    QuotaState,
    RoutingTrace,
)
from tests.conftest import make_client_key, make_credential

pytestmark = pytest.mark.django_db

# Distinctive enough that finding any part of it in a page means it leaked.
SECRET = "sk-ant-api03-Leak-Canary-9f8e7d6c5b4a-WXYZ"
SECRET_MIDDLE = "Leak-Canary-9f8e7d6c5b4a"
NEW_SECRET = "sk-ant-api03-Second-Canary-0a1b2c3d-QRST"
KEY_PATTERN = re.compile(r"sk-px-[A-Za-z0-9_-]{43}")

CREDENTIALS = "admin:accounts_credential_changelist"
CLIENT_KEYS = "admin:accounts_clientkey_changelist"


def credential_data(credential: Credential | None = None, **overrides: Any) -> dict[str, Any]:
    """The POST body of the credential form, inline management form included."""
    data: dict[str, Any] = {
        "provider": "anthropic",
        "label": "team-a",
        "secret": "",
        "base_url": "",
        "enabled": "on",
        "priority": "5",
        "weight": "1",
        "prefix": "",
        "excluded_models": "",
        "proxy_url": "",
        "extra_headers": "{}",
        "initial-extra_headers": "{}",  # JSONField's hidden initial, as a browser sends it
        "disable_cooling": "unknown",
        "request_retry": "",
        "openai_max_tokens_field": "max_tokens",
        "openai_include_usage": "on",
        "openai_reasoning_field": "reasoning_content",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    models = list(credential.models.all()) if credential else []
    if credential:
        data.update(label=credential.label, priority=str(credential.priority))
    for index, model in enumerate(models):
        data[f"models-{index}-id"] = str(model.pk)
        data[f"models-{index}-credential"] = str(credential.pk)
        data[f"models-{index}-name"] = model.name
        data[f"models-{index}-alias"] = model.alias
    if not models:
        models = [None]
        data["models-0-name"] = "claude-sonnet-4-6"
        data["models-0-alias"] = "sonnet"
    data["models-TOTAL_FORMS"] = str(len(models))
    data["models-INITIAL_FORMS"] = "0" if credential is None else str(len(models))
    data.update(overrides)
    return data


def add_credential(admin_client, **overrides: Any) -> Credential:
    response = admin_client.post(
        reverse("admin:accounts_credential_add"), credential_data(secret=SECRET, **overrides)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    return Credential.objects.get(label=overrides.get("label", "team-a"))


def credential_pages(credential: Credential) -> list[str]:
    return [
        reverse(CREDENTIALS),
        reverse(CREDENTIALS) + "?q=team",
        reverse(CREDENTIALS) + f"?q={credential.secret_hint[1:]}",
        reverse("admin:accounts_credential_change", args=[credential.pk]),
        reverse("admin:accounts_credential_history", args=[credential.pk]),
        reverse("admin:accounts_quotastate_changelist"),
        reverse("admin:index"),  # its "Recent actions" lists log entries
    ]


def assert_nowhere(admin_client, urls: list[str], *needles: str) -> None:
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        for needle in needles:
            assert needle not in content, f"{needle!r} leaked on {url}"


def versions_now() -> tuple[int, int]:
    return versions.read_from_database()[:2]


def post_action(admin_client, changelist: str, action: str, ids: list[int], **extra: Any):
    return admin_client.post(
        reverse(changelist), {"action": action, "_selected_action": [str(i) for i in ids], **extra}
    )


# Credentials: write-only secrets -----------------------------------------------------------


def test_it_stores_a_new_credential_encrypted(admin_client):
    credential = add_credential(admin_client)

    assert credential.get_secret() == SECRET
    assert SECRET not in credential.secret_encrypted
    assert credential.secret_hint == "…WXYZ"
    model = CredentialModel.objects.get(credential=credential)
    assert (model.name, model.alias) == ("claude-sonnet-4-6", "sonnet")


def test_it_never_shows_the_secret_on_any_page(admin_client):
    credential = add_credential(admin_client)

    assert_nowhere(admin_client, credential_pages(credential), SECRET, SECRET_MIDDLE)
    changelist = admin_client.get(reverse(CREDENTIALS)).content.decode()
    assert "…WXYZ" in changelist
    assert "sonnet → claude-sonnet-4-6" in changelist
    change_page = admin_client.get(
        reverse("admin:accounts_credential_change", args=[credential.pk])
    )
    assert "…WXYZ" in change_page.content.decode()
    for entry in LogEntry.objects.all():
        assert SECRET_MIDDLE not in entry.change_message
        assert SECRET_MIDDLE not in entry.object_repr


def test_it_does_not_echo_the_secret_when_the_form_has_errors(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_credential_add"), credential_data(secret=SECRET, label="")
    )

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert SECRET_MIDDLE not in response.content.decode()
    assert not Credential.objects.exists()


def test_it_requires_a_secret_on_add(admin_client):
    response = admin_client.post(reverse("admin:accounts_credential_add"), credential_data())

    assert response.status_code == 200
    assert not Credential.objects.exists()


def test_it_refuses_a_secret_with_inner_whitespace(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_credential_add"), credential_data(secret="sk-ant-api03 abc def")
    )

    assert response.status_code == 200
    assert "cannot contain spaces" in response.content.decode()


def test_it_keeps_the_secret_when_the_field_is_left_blank(admin_client):
    credential = add_credential(admin_client)
    url = reverse("admin:accounts_credential_change", args=[credential.pk])

    response = admin_client.post(url, credential_data(credential, secret="", priority="9"))

    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.priority == 9
    assert credential.get_secret() == SECRET
    assert credential.secret_hint == "…WXYZ"


def test_it_replaces_the_secret_when_a_new_one_is_given(admin_client):
    credential = add_credential(admin_client)
    url = reverse("admin:accounts_credential_change", args=[credential.pk])

    response = admin_client.post(url, credential_data(credential, secret=NEW_SECRET))

    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.get_secret() == NEW_SECRET
    assert credential.secret_hint == "…QRST"
    assert_nowhere(admin_client, credential_pages(credential), NEW_SECRET, "Second-Canary")
    # The history names the field that changed, never its value.
    assert LogEntry.objects.latest("action_time").get_change_message() == "Changed Secret."


@pytest.mark.parametrize(
    "query",
    [
        "secret_encrypted__startswith=gAAAA",
        "secret_hint=%E2%80%A6WXYZ",
        "secret_hint__endswith=Z",
    ],
)
def test_it_refuses_lookups_on_secrets(admin_client, query):
    make_credential("matching", secret=SECRET)

    response = admin_client.get(reverse(CREDENTIALS) + "?" + query)

    assert response.status_code == 400
    assert "matching" not in response.content.decode()


def test_it_refuses_secret_lookups_through_a_relation(admin_client):
    credential = make_credential("matching", secret=SECRET)
    QuotaState.objects.create(credential=credential, model="m", status="cooling")

    response = admin_client.get(
        reverse("admin:accounts_quotastate_changelist")
        + "?credential__secret_encrypted__startswith=gAAAA"
    )

    assert response.status_code == 400


def test_it_still_allows_ordinary_lookups(admin_client):
    make_credential("visible", secret=SECRET)

    response = admin_client.get(reverse(CREDENTIALS) + "?enabled__exact=1")

    assert response.status_code == 200
    assert "visible" in response.content.decode()


def test_it_marks_the_secret_as_sensitive_for_error_reports(admin_client):
    from django.views.debug import SafeExceptionReporterFilter

    request = admin_client.post(
        reverse("admin:accounts_credential_add"), credential_data(secret=SECRET)
    ).wsgi_request

    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert cleaned["secret"] != SECRET
    assert cleaned["label"] == "team-a"


# Credentials: the console ------------------------------------------------------------------


def test_it_shows_plain_status_for_each_state():
    now = timezone.now()
    credential = Credential(pk=1)
    cooling = QuotaState(
        credential=credential,
        model="claude-a",
        status="cooling",
        reason="rate_limited",
        next_retry_at=now + timedelta(minutes=5),
    )
    attention = QuotaState(
        credential=credential,
        model="",
        status="attention",
        reason="unauthorized",
        next_retry_at=now + timedelta(minutes=30),
    )
    expired = QuotaState(
        credential=credential,
        model="claude-b",
        status="cooling",
        reason="transient",
        next_retry_at=now - timedelta(seconds=1),
    )

    assert status_lines([], now) == ["ok"]
    assert status_lines([expired], now) == ["ok"]
    assert status_lines([cooling, expired, attention], now) == [
        f"needs attention: unauthorized (until {_utc(attention.next_retry_at)})",
        f"claude-a: cooling until {_utc(cooling.next_retry_at)} (rate_limited)",
    ]


def test_it_lists_status_hint_models_and_recent_counts(admin_client):
    now = timezone.now()
    cooling = make_credential("cooling-one", models=[("claude-opus-4-1", "opus")])
    QuotaState.objects.create(
        credential=cooling,
        model="claude-opus-4-1",
        status="cooling",
        reason="rate_limited",
        next_retry_at=now + timedelta(minutes=10),
    )
    attention = make_credential("attention-one")
    QuotaState.objects.create(
        credential=attention,
        status="attention",
        reason="unauthorized",
        next_retry_at=now + timedelta(minutes=30),
    )
    expired = make_credential("expired-one")
    QuotaState.objects.create(
        credential=expired,
        model="m",
        status="cooling",
        reason="transient",
        next_retry_at=now - timedelta(minutes=1),
    )
    hour = now.replace(minute=0, second=0, microsecond=0)
    CredentialStats.objects.create(credential=cooling, hour=hour, successes=5, failures=2)
    CredentialStats.objects.create(
        credential=cooling, hour=hour - timedelta(hours=1), successes=1, failures=0
    )
    CredentialStats.objects.create(
        credential=cooling, hour=hour - timedelta(hours=30), successes=100, failures=100
    )

    content = admin_client.get(reverse(CREDENTIALS)).content.decode()

    assert "claude-opus-4-1: cooling until" in content
    assert "(rate_limited)" in content
    assert "needs attention: unauthorized (until" in content
    assert "6 / 2" in content  # the 30-hour-old row is outside the window
    assert "opus → claude-opus-4-1" in content
    row = re.search(r"<tr>.*?expired-one.*?</tr>", content, re.S).group(0)
    assert '<td class="field-status">ok</td>' in row


def test_it_filters_credentials_by_state(admin_client):
    now = timezone.now()
    blocked = make_credential("blocked-one")
    QuotaState.objects.create(
        credential=blocked, status="attention", next_retry_at=now + timedelta(minutes=5)
    )
    make_credential("healthy-one")

    blocked_page = admin_client.get(reverse(CREDENTIALS) + "?state=blocked").content.decode()
    ok_page = admin_client.get(reverse(CREDENTIALS) + "?state=ok").content.decode()

    assert "blocked-one" in blocked_page and "healthy-one" not in blocked_page
    assert "healthy-one" in ok_page and "blocked-one" not in ok_page


def test_it_renders_the_changelist_without_a_query_per_row(admin_client):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse(CREDENTIALS)).status_code == 200
        return len(captured)

    for index in range(2):
        credential = make_credential(f"c{index}", models=["m1", "m2"])
        QuotaState.objects.create(credential=credential, model="m1", status="cooling")
    few = queries_for_page()
    for index in range(2, 10):
        credential = make_credential(f"c{index}", models=["m1", "m2"])
        QuotaState.objects.create(credential=credential, model="m1", status="cooling")

    assert queries_for_page() == few


def test_it_shows_quota_state_counts_and_traces_on_the_change_page(admin_client):
    credential = make_credential("detailed")
    other = make_credential("other")
    QuotaState.objects.create(
        credential=credential,
        model="claude-x",
        status="cooling",
        reason="rate_limited",
        last_status=429,
        last_error="rate_limit_error: slow down <b>now</b>",
        next_retry_at=timezone.now() + timedelta(minutes=3),
        backoff_level=2,
        reset_source="retry-after",
    )
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    CredentialStats.objects.create(credential=credential, hour=hour, successes=7, failures=3)
    mine = RoutingTrace.objects.create(
        request_id="req_mine",
        endpoint="messages",
        model="claude-x",
        status=429,
        steps=[{"credential": "detailed", "credential_id": credential.pk, "outcome": "failed"}],
    )
    RoutingTrace.objects.create(
        request_id="req_theirs",
        endpoint="messages",
        model="claude-x",
        status=500,
        steps=[{"credential": "other", "credential_id": other.pk, "outcome": "failed"}],
    )

    content = admin_client.get(
        reverse("admin:accounts_credential_change", args=[credential.pk])
    ).content.decode()

    assert "retry-after" in content and "rate_limited" in content and "429" in content
    assert "slow down &lt;b&gt;now&lt;/b&gt;" in content
    assert "7 successes, 3 failures" in content
    assert reverse("admin:accounts_routingtrace_change", args=[mine.pk]) in content
    assert "req_mine" in content and "req_theirs" not in content

    filtered = admin_client.get(
        reverse("admin:accounts_routingtrace_changelist") + f"?credential={credential.pk}"
    ).content.decode()
    assert "req_mine" in filtered and "req_theirs" not in filtered


def test_it_clears_cooldowns_and_bumps_the_quota_version(admin_client):
    credential = make_credential("cooling")
    untouched = make_credential("untouched")
    for model in ("", "m1"):
        QuotaState.objects.create(credential=credential, model=model, status="cooling")
    QuotaState.objects.create(credential=untouched, model="m1", status="cooling")
    versions.bump(quota=True)
    config_before, quota_before = versions_now()

    response = post_action(admin_client, CREDENTIALS, "clear_cooldown", [credential.pk])

    assert response.status_code == 302
    assert not QuotaState.objects.filter(credential=credential).exists()
    assert QuotaState.objects.filter(credential=untouched).count() == 1
    assert versions_now() == (config_before, quota_before + 1)
    page = admin_client.get(response.url).content.decode()
    assert "Cleared 2 quota states on 1 credential." in page


def test_it_disables_and_enables_and_bumps_the_config_version(
    admin_client, django_capture_on_commit_callbacks
):
    first, second = make_credential("first"), make_credential("second")
    versions.bump(config=True)
    before = versions_now()[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, CREDENTIALS, "disable", [first.pk, second.pk])
    assert response.status_code == 302
    assert not Credential.objects.filter(enabled=True).exists()
    assert versions_now()[0] > before
    assert "Disabled 2 credentials." in admin_client.get(response.url).content.decode()

    middle = versions_now()[0]
    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, CREDENTIALS, "enable", [first.pk])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.enabled, second.enabled) == (True, False)
    assert versions_now()[0] > middle


def test_it_disables_from_a_search_result(admin_client, django_capture_on_commit_callbacks):
    # A search over the models relation makes the changelist queryset distinct().
    credential = make_credential("searched", models=["claude-a", "claude-b"])

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(CREDENTIALS) + "?q=claude",
            {"action": "disable", "_selected_action": [str(credential.pk)]},
        )

    assert response.status_code == 302
    credential.refresh_from_db()
    assert not credential.enabled


# Client keys -----------------------------------------------------------------------------


def issue_through_admin(admin_client, name: str = "bob", allowed: str = "") -> tuple[Any, str]:
    response = admin_client.post(
        reverse("admin:accounts_clientkey_add"),
        {"name": name, "allowed_models": allowed, "enabled": "on"},
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    found = KEY_PATTERN.findall(response.content.decode())
    assert found, "the new key is not on the page"
    return response, found[0]


def test_it_shows_a_new_client_key_once(admin_client):
    response, key = issue_through_admin(admin_client, allowed="claude-*")

    client_key = ClientKey.objects.get(name="bob")
    assert client_key.digest == keys.digest(key)
    assert ClientKey.objects.get(digest=keys.digest(key)).allowed_list == ["claude-*"]
    assert client_key.prefix == key[: keys.VISIBLE_PREFIX_LENGTH]
    assert "no-store" in response["Cache-Control"]
    assert "admin/accounts/clientkey/issued.html" in [t.name for t in response.templates]

    pages = [
        reverse(CLIENT_KEYS),
        reverse("admin:accounts_clientkey_change", args=[client_key.pk]),
        reverse("admin:accounts_clientkey_history", args=[client_key.pk]),
        reverse(CLIENT_KEYS) + "?q=bob",
        reverse("admin:index"),
    ]
    assert_nowhere(admin_client, pages, key, client_key.digest)
    # Messages live in the session: the key must not be there either.
    assert key not in str(dict(admin_client.session.items()))
    assert client_key.prefix in admin_client.get(reverse(CLIENT_KEYS)).content.decode()


def test_it_does_not_regenerate_or_show_a_key_on_change(admin_client):
    _, key = issue_through_admin(admin_client)
    client_key = ClientKey.objects.get(name="bob")
    url = reverse("admin:accounts_clientkey_change", args=[client_key.pk])

    response = admin_client.post(url, {"name": "bob-renamed", "allowed_models": "", "enabled": ""})

    assert response.status_code == 302
    client_key.refresh_from_db()
    assert (client_key.name, client_key.enabled) == ("bob-renamed", False)
    assert client_key.digest == keys.digest(key)
    assert not KEY_PATTERN.search(admin_client.get(url).content.decode())


def test_it_refuses_lookups_on_the_digest(admin_client):
    key = make_client_key("carol")

    response = admin_client.get(reverse(CLIENT_KEYS) + f"?digest={keys.digest(key)}")

    assert response.status_code == 400


def test_it_regenerates_a_key_after_confirmation(admin_client):
    old_key = make_client_key("dave")
    client_key = ClientKey.objects.get(name="dave")

    confirm = post_action(admin_client, CLIENT_KEYS, "regenerate", [client_key.pk])
    assert confirm.status_code == 200
    assert "Yes, regenerate" in confirm.content.decode()
    client_key.refresh_from_db()
    assert client_key.digest == keys.digest(old_key)

    done = post_action(admin_client, CLIENT_KEYS, "regenerate", [client_key.pk], confirmed="yes")

    assert done.status_code == 200
    new_key = KEY_PATTERN.findall(done.content.decode())[0]
    client_key.refresh_from_db()
    assert new_key != old_key
    assert client_key.digest == keys.digest(new_key)
    assert not ClientKey.objects.filter(digest=keys.digest(old_key)).exists()


def test_it_disables_and_enables_client_keys(admin_client, django_capture_on_commit_callbacks):
    make_client_key("erin")
    client_key = ClientKey.objects.get(name="erin")
    versions.bump(config=True)
    before = versions_now()[0]

    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, CLIENT_KEYS, "disable", [client_key.pk])
    client_key.refresh_from_db()
    assert not client_key.enabled
    assert versions_now()[0] > before

    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, CLIENT_KEYS, "enable", [client_key.pk])
    client_key.refresh_from_db()
    assert client_key.enabled


# Settings --------------------------------------------------------------------------------


def settings_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "nonstream_keepalive_interval": "0",
        "stream_keepalive_seconds": "0",
        "bootstrap_retries": "0",
        "request_retry": "3",
        "max_retry_credentials": "0",
        "max_retry_interval": "30",
        "routing_strategy": "round-robin",
        "session_affinity_ttl": "3600",
        "transient_error_cooldown_seconds": "60",
        "proxy_url": "",
        "upstream_connect_timeout": "10",
        "upstream_read_timeout": "600",
        "max_request_body_bytes": str(32 * 1024 * 1024),
    }
    data.update(overrides)
    return data


def test_it_redirects_the_settings_list_to_the_singleton(admin_client):
    response = admin_client.get(reverse("admin:accounts_proxysettings_changelist"))

    assert response.status_code == 302
    assert response.url == reverse("admin:accounts_proxysettings_change", args=[1])
    assert ProxySettings.objects.count() == 1


def test_it_offers_no_add_or_delete_for_settings(admin_client):
    ProxySettings.load()

    assert admin_client.get(reverse("admin:accounts_proxysettings_add")).status_code == 403
    delete = reverse("admin:accounts_proxysettings_delete", args=[1])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert ProxySettings.objects.count() == 1


def test_it_redirects_other_settings_ids_to_the_singleton(admin_client):
    response = admin_client.get(reverse("admin:accounts_proxysettings_change", args=[7]))

    assert response.status_code == 302
    assert response.url == reverse("admin:accounts_proxysettings_change", args=[1])


def test_it_saves_settings_and_bumps_the_config_version(
    admin_client, django_capture_on_commit_callbacks
):
    url = reverse("admin:accounts_proxysettings_change", args=[1])
    page = admin_client.get(url).content.decode()
    for heading in ("Keep-alive", "Retries", "Routing", "Cooldowns", "Upstream", "Headers"):
        assert f">{heading}<" in page
    versions.bump(config=True)
    before = versions_now()[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            settings_data(
                routing_strategy="fill-first", session_affinity="on", stream_keepalive_seconds="15"
            ),
        )

    assert response.status_code == 302
    assert response.url == url
    row = ProxySettings.load()
    assert (row.routing_strategy, row.session_affinity, row.stream_keepalive_seconds) == (
        "fill-first",
        True,
        15,
    )
    assert versions_now()[0] > before


# Quota state -----------------------------------------------------------------------------


def test_it_keeps_quota_state_read_only(admin_client):
    credential = make_credential("read-only")
    row = QuotaState.objects.create(
        credential=credential,
        model="",
        status="cooling",
        reason="rate_limited",
        last_error="x" * 300,
    )
    change = reverse("admin:accounts_quotastate_change", args=[row.pk])

    assert admin_client.get(reverse("admin:accounts_quotastate_add")).status_code == 403
    page = admin_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(change, {"status": "ok"}).status_code == 403
    listing = admin_client.get(reverse("admin:accounts_quotastate_changelist")).content.decode()
    assert '<td class="field-model_scope">*</td>' in listing
    assert "x" * 80 + "…" in listing
    row.refresh_from_db()
    assert row.status == "cooling"


def test_it_shows_expired_quota_state_as_not_blocking(admin_client):
    credential = make_credential("expired")
    QuotaState.objects.create(
        credential=credential,
        model="m",
        status="cooling",
        next_retry_at=timezone.now() - timedelta(minutes=1),
    )

    listing = admin_client.get(reverse("admin:accounts_quotastate_changelist")).content.decode()

    assert "Cooling down (expired: not blocking)" in listing


def test_it_clears_quota_state_rows_from_their_own_list(admin_client):
    credential = make_credential("rows")
    first = QuotaState.objects.create(credential=credential, model="a", status="cooling")
    second = QuotaState.objects.create(credential=credential, model="b", status="cooling")
    versions.bump(quota=True)
    before = versions_now()[1]

    response = post_action(
        admin_client, "admin:accounts_quotastate_changelist", "clear_cooldown", [first.pk]
    )

    assert response.status_code == 302
    assert list(QuotaState.objects.values_list("pk", flat=True)) == [second.pk]
    assert versions_now()[1] == before + 1


def test_it_bumps_the_quota_version_when_rows_are_deleted(admin_client):
    credential = make_credential("deleted")
    first = QuotaState.objects.create(credential=credential, model="a", status="cooling")
    second = QuotaState.objects.create(credential=credential, model="b", status="cooling")
    versions.bump(quota=True)
    before = versions_now()[1]

    response = admin_client.post(
        reverse("admin:accounts_quotastate_delete", args=[first.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert versions_now()[1] == before + 1

    post_action(
        admin_client,
        "admin:accounts_quotastate_changelist",
        "delete_selected",
        [second.pk],
        post="yes",
    )
    assert not QuotaState.objects.exists()
    assert versions_now()[1] == before + 2


# Routing traces ---------------------------------------------------------------------------


def test_it_renders_trace_steps_escaped(admin_client):
    credential = make_credential("traced")
    trace = RoutingTrace.objects.create(
        request_id="req_0123",
        endpoint="messages",
        client_key_name="alice",
        model="claude-sonnet-4-6",
        status=529,
        attempts=2,
        duration_ms=1234,
        steps=[
            {
                "credential": "<i>traced</i>",
                "credential_id": credential.pk,
                "model": "claude-sonnet-4-6",
                "outcome": "failed",
                "status": 529,
                "round": 0,
                "ms": 12.5,
                "error": "overloaded_error: <script>alert(1)</script>",
                "classified": "transient",
                "cooling_until": "2026-11-25T16:40:00Z",
            },
            {"outcome": "waited", "seconds": 1.5},
            "not a step",
            {
                "credential": "traced",
                "credential_id": credential.pk,
                "model": "claude-sonnet-4-6",
                "outcome": "skipped",
                "reason": "cooling until later (transient)",
            },
        ],
    )

    response = admin_client.get(reverse("admin:accounts_routingtrace_change", args=[trace.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)" not in content
    assert "overloaded_error: &lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&lt;i&gt;traced&lt;/i&gt;" in content
    assert reverse("admin:accounts_credential_change", args=[credential.pk]) in content
    assert "waited 1.5 s for a cooldown to end" in content
    assert "cooling until later (transient)" in content
    assert "2026-11-25T16:40:00Z" in content
    assert 'name="_save"' not in content


def test_it_lists_and_searches_traces_read_only(admin_client):
    RoutingTrace.objects.create(
        request_id="req_find_me", endpoint="messages", model="m", status=429
    )
    RoutingTrace.objects.create(request_id="req_other", endpoint="messages", model="n", status=500)

    found = admin_client.get(
        reverse("admin:accounts_routingtrace_changelist") + "?q=req_find"
    ).content.decode()

    assert "req_find_me" in found and "req_other" not in found
    assert admin_client.get(reverse("admin:accounts_routingtrace_add")).status_code == 403


def test_it_names_the_site(admin_client):
    assert "Claude proxy" in admin_client.get(reverse("admin:index")).content.decode()


# Learned omissions (OpenAI-compatible) ------------------------------------------------------

LEARNED = {
    "reasoning_content": {
        "at": "2026-12-02T01:10:07Z",
        "error": "Additional properties are not allowed ('reasoning_content' was unexpected) "
        "- 'messages[2]' <b>",
    }
}


def openai_data(credential: Credential, **overrides: Any) -> dict[str, Any]:
    return credential_data(
        credential,
        provider="openai",
        base_url="https://llm.example/v1",
        openai_reasoning_field="",
        **overrides,
    )


def test_it_shows_what_was_learned_on_the_change_page(admin_client):
    credential = make_credential(
        "strict",
        provider="openai",
        base_url="https://llm.example/v1",
        secret=SECRET,
        learned_omissions=LEARNED,
    )
    content = admin_client.get(
        reverse("admin:accounts_credential_change", args=[credential.pk])
    ).content.decode()
    assert (
        "omits: reasoning_content (learned 2026-12-02 01:10 UTC from: Additional properties are "
        "not allowed (&#x27;reasoning_content&#x27; was unexpected) - &#x27;messages[2]&#x27; "
        "&lt;b&gt;)"
    ) in content
    assert 'name="reset_learned_omissions"' in content
    assert SECRET_MIDDLE not in content

    plain = make_credential("plain", provider="openai", base_url="https://llm.example/v1")
    content = admin_client.get(
        reverse("admin:accounts_credential_change", args=[plain.pk])
    ).content.decode()
    assert "none: every field the proxy adds is sent" in content


def test_it_resets_what_was_learned_from_the_form(admin_client, django_capture_on_commit_callbacks):
    credential = make_credential(
        "strict",
        provider="openai",
        base_url="https://llm.example/v1",
        models=["gpt-strict"],
        learned_omissions=LEARNED,
    )
    url = reverse("admin:accounts_credential_change", args=[credential.pk])

    # Saving the form without the box keeps what was learned.
    response = admin_client.post(url, openai_data(credential, priority="3"))
    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert credential.priority == 3 and credential.learned_omissions == LEARNED

    versions.bump(config=True)
    before = versions_now()[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, openai_data(credential, reset_learned_omissions="on"))
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.learned_omissions == {}
    assert versions_now()[0] > before  # every worker reloads and sends the field again


def test_it_forgets_what_was_learned_with_an_action(
    admin_client, django_capture_on_commit_callbacks
):
    strict = make_credential(
        "strict", provider="openai", base_url="https://a/v1", learned_omissions=LEARNED
    )
    other = make_credential(
        "other", provider="openai", base_url="https://b/v1", learned_omissions=LEARNED
    )
    versions.bump(config=True)
    before = versions_now()[0]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, CREDENTIALS, "forget_learned_omissions", [strict.pk])
    assert response.status_code == 302
    strict.refresh_from_db()
    other.refresh_from_db()
    assert strict.learned_omissions == {} and other.learned_omissions == LEARNED
    assert versions_now()[0] > before
    page = admin_client.get(response.url).content.decode()
    assert "Forgot learned omissions on 1 credential." in page


def test_it_offers_no_reasoning_echo_by_default(admin_client):
    content = admin_client.get(reverse("admin:accounts_credential_add")).content.decode()
    field = re.search(r'<input[^>]*name="openai_reasoning_field"[^>]*>', content)
    assert field is not None
    assert 'value="' not in field.group(0) or 'value=""' in field.group(0)
    # Nothing learned yet on a credential that does not exist.
    assert 'name="reset_learned_omissions"' not in content
