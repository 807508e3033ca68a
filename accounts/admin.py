"""The Django admin as the proxy's operations console.

What operators do here: add and edit upstream credentials (secrets are write-only), issue client
keys (shown once), switch behaviour in the settings singleton, and see and clear quota state and
routing traces. Every write that bypasses ``post_save`` (``QuerySet.update()``/``delete()``) bumps
the matching version itself, so each worker picks the change up on its next refresh.

Secrets never reach a page: the credential secret only travels inwards through a
``PasswordInput(render_value=False)`` field, client keys are generated server-side and rendered
once by ``response_add``, and ``lookup_allowed`` refuses filters on the stored forms of both
(the pattern of ``django.contrib.auth.admin.UserAdmin`` for passwords).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from accounts import admin_accounts, keys, omissions, quota, signals, versions
from accounts.forms import ClientKeyForm, CredentialForm
from accounts.models import (
    ClientKey,
    Credential,
    CredentialModel,
    ProxySettings,
    QuotaState,
    QuotaStatus,
    RoutingTrace,
)
from accounts.usage_admin import use_against_limits

admin.site.site_header = "Claude proxy"
admin.site.site_title = "Claude proxy"
admin.site.index_title = "Operations"

# Stored forms of secrets. Filtering on them would turn the changelist into an oracle
# (?secret_encrypted__startswith=…, ?digest__startswith=…), so no admin allows it, not even
# through a relation (credential__secret_hint).
SECRET_FIELDS = frozenset({"secret_encrypted", "secret_hint", "digest"})
RECENT_HOURS = 24
RECENT_TRACES_SHOWN = 10
# SQLite cannot look inside a JSON array, so there we scan this many of the newest traces.
TRACE_SCAN_LIMIT = 5000
ERROR_PREVIEW_CHARS = 80
_STAMPS = frozenset({"created_at", "updated_at"})

sensitive_secret = method_decorator(sensitive_post_parameters("secret"))
LIMIT_BUDGET_FIELDS = ("budget_period", "budget_tokens", "budget_usd")


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def _blocks(row: QuotaState, now: datetime) -> bool:
    # Same rule as QuotaRecord.blocks: an expired cooldown never blocks, whatever its status says.
    return row.next_retry_at is not None and row.next_retry_at > now


def status_lines(rows: Iterable[QuotaState], now: datetime) -> list[str]:
    """One plain sentence per blocked scope (whole credential first), or ["ok"]."""
    lines = []
    for row in sorted(rows, key=lambda r: r.model):
        if not _blocks(row, now):
            continue
        scope = f"{row.model}: " if row.model else ""
        reason = row.reason or "error"
        if row.status == QuotaStatus.ATTENTION:
            lines.append(f"{scope}needs attention: {reason} (until {_utc(row.next_retry_at)})")
        else:
            lines.append(f"{scope}cooling until {_utc(row.next_retry_at)} ({reason})")
    return lines or ["ok"]


def _effective_status(row: QuotaState, now: datetime) -> str:
    if row.status != QuotaStatus.OK and not _blocks(row, now):
        return f"{row.get_status_display()} (expired: not blocking)"
    return row.get_status_display()


def traces_involving(queryset: QuerySet[RoutingTrace], credential_id: int) -> QuerySet:
    """Traces with at least one step on the credential (steps: [{"credential_id": …}, …])."""
    if connection.features.supports_json_field_contains:
        return queryset.filter(steps__contains=[{"credential_id": credential_id}])
    # The table is pruned to 7 days / 20,000 rows (accounts.quota.prune_traces), so a bounded
    # scan of the newest ones covers what an operator is looking for.
    newest = RoutingTrace.objects.order_by("-created_at").values_list("pk", "steps")
    ids = [
        pk
        for pk, steps in newest[:TRACE_SCAN_LIMIT]
        if isinstance(steps, list)
        and any(isinstance(s, dict) and s.get("credential_id") == credential_id for s in steps)
    ]
    return queryset.filter(pk__in=ids)


class NoSecretLookupsMixin:
    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if SECRET_FIELDS.intersection(lookup.split("__")):
            return False
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]


# Credentials -------------------------------------------------------------------------------


class CredentialModelInline(admin.TabularInline):
    model = CredentialModel
    fields = ("name", "alias", "display_name", "max_input_tokens", "max_tokens")

    def get_extra(self, request: HttpRequest, obj: Credential | None = None, **kwargs: Any) -> int:
        return 0 if obj else 1


class CredentialStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [
            ("ok", "OK"),
            ("blocked", "Cooling or needs attention"),
            ("attention", "Needs attention"),
            ("needs_login", "Needs login (accounts)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        blocked = QuotaState.objects.filter(next_retry_at__gt=now)
        if self.value() == "ok":
            return queryset.exclude(pk__in=blocked.values("credential_id"))
        if self.value() == "blocked":
            return queryset.filter(pk__in=blocked.values("credential_id"))
        if self.value() == "needs_login":
            return queryset.filter(auth_kind="oauth").filter(
                Q(oauth__isnull=True) | Q(oauth__state="needs_login")
            )
        if self.value() == "attention":
            attention = blocked.filter(status=QuotaStatus.ATTENTION)
            return queryset.filter(pk__in=attention.values("credential_id"))
        return queryset


class CredentialChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # One query for the whole page instead of one per row. Iterating fills the queryset's
        # result cache, so the template renders these same instances.
        page = list(self.result_list)
        counts = quota.recent_counts([c.pk for c in page], hours=RECENT_HOURS)
        for credential in page:
            credential.recent_counts = counts.get(credential.pk, (0, 0))


@admin.register(Credential)
class CredentialAdmin(NoSecretLookupsMixin, admin.ModelAdmin):
    form = CredentialForm
    inlines = [CredentialModelInline]
    list_display = (
        "label",
        "provider",
        "status",
        "priority",
        "weight",
        "enabled",
        "secret_column",
        "models_summary",
        "recent",
    )
    list_display_links = ("label",)
    list_filter = (CredentialStateFilter, "provider", "auth_kind", "enabled")
    # Never a secret field here: a search box is a lookup too.
    search_fields = ("label", "prefix", "base_url", "models__name", "models__alias")
    readonly_fields = (
        "current_secret",
        "account",
        "quota_table",
        "recent_activity",
        "recent_traces",
        "learned_omissions_summary",
        "created_at",
        "updated_at",
    )
    actions = ["clear_cooldown", "forget_learned_omissions", "disable", "enable"]
    fieldsets = (
        (
            "Identity",
            {"fields": ("provider", "label", "secret", "current_secret", "base_url", "enabled")},
        ),
        (
            "Routing",
            {
                "fields": (
                    "priority",
                    "weight",
                    "prefix",
                    "excluded_models",
                    "proxy_url",
                    "extra_headers",
                )
            },
        ),
        ("Behaviour", {"fields": ("disable_cooling", "request_retry")}),
        (
            "OpenAI-compatible",
            {
                "classes": ("collapse",),
                "fields": (
                    "openai_max_tokens_field",
                    "openai_include_usage",
                    "openai_reasoning_field",
                    "openai_send_reasoning_effort",
                ),
            },
        ),
        (
            "State",
            {
                "fields": (
                    "account",
                    "quota_table",
                    "learned_omissions_summary",
                    "reset_learned_omissions",
                    "recent_activity",
                    "recent_traces",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    # What only makes sense for a stored credential.
    _change_only = frozenset(
        {
            "current_secret",
            "account",
            "quota_table",
            "recent_activity",
            "recent_traces",
            "learned_omissions_summary",
            "reset_learned_omissions",
        }
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Credential]:
        # The status and models columns read these for every row: prefetch, never N+1.
        return (
            super()
            .get_queryset(request)
            .select_related("oauth")
            .prefetch_related("quota", "models")
        )

    def get_urls(self) -> list:
        # The account login and import pages live under the credential changelist.
        return admin_accounts.urls(self) + super().get_urls()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CredentialChangeList

    def get_fieldsets(self, request: HttpRequest, obj: Credential | None = None) -> list:
        if obj is not None:
            return list(self.fieldsets)
        fieldsets = []
        for name, options in self.fieldsets:
            fields = [
                f for f in options["fields"] if f not in self._change_only and f not in _STAMPS
            ]
            if fields:
                fieldsets.append((name, {**options, "fields": tuple(fields)}))
        return fieldsets

    @sensitive_secret
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return super().add_view(request, form_url, extra_context)

    @sensitive_secret
    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        return super().change_view(request, object_id, form_url, extra_context)

    # Columns ---------------------------------------------------------------------------

    @admin.display(description="status")
    def status(self, obj: Credential) -> SafeString:
        lines = status_lines(obj.quota.all(), timezone.now())
        needs_login = admin_accounts.needs_login_line(obj)
        if needs_login:
            lines = [needs_login] + [line for line in lines if line != "ok"]
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="secret")
    def secret_column(self, obj: Credential) -> str:
        return admin_accounts.account_column(obj) or obj.secret_hint or "—"

    @admin.display(description="models")
    def models_summary(self, obj: Credential) -> SafeString | str:
        entries = [
            f"{m.alias} → {m.name}" if m.alias and m.alias != m.name else m.name
            for m in obj.models.all()
        ]
        if not entries:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((entry,) for entry in entries))

    @admin.display(description=f"last {RECENT_HOURS} h (ok / failed)")
    def recent(self, obj: Credential) -> str:
        counts = getattr(obj, "recent_counts", None)
        if counts is None:
            counts = quota.recent_counts([obj.pk], hours=RECENT_HOURS).get(obj.pk, (0, 0))
        return f"{counts[0]} / {counts[1]}"

    # Change page, read-only ------------------------------------------------------------

    @admin.display(description="current secret")
    def current_secret(self, obj: Credential) -> str:
        return obj.secret_hint or "—"

    @admin.display(description="account")
    def account(self, obj: Credential) -> SafeString | str:
        return admin_accounts.account_panel(obj)

    @admin.display(description="quota state")
    def quota_table(self, obj: Credential) -> SafeString | str:
        rows = sorted(obj.quota.all(), key=lambda r: r.model)
        if not rows:
            return "ok: no cooldown or error recorded"
        now = timezone.now()
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    row.model or "* (whole credential)",
                    _effective_status(row, now),
                    row.reason or "—",
                    _utc(row.next_retry_at),
                    row.backoff_level,
                    row.last_status or "—",
                    row.last_error or "—",
                    row.reset_source or "—",
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="quota-state"><thead><tr><th>model</th><th>status</th>'
            "<th>reason</th><th>next retry</th><th>backoff level</th><th>last status</th>"
            "<th>last error</th><th>reset source</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="fields learned to omit")
    def learned_omissions_summary(self, obj: Credential) -> SafeString | str:
        lines = omissions.describe(obj.learned_omissions)
        if not lines:
            return "none: every field the proxy adds is sent"
        # The excerpts were redacted when they were stored (accounts.secrets).
        return format_html_join(mark_safe("<br>"), "omits: {}", ((line,) for line in lines))

    @admin.display(description=f"last {RECENT_HOURS} h")
    def recent_activity(self, obj: Credential) -> str:
        ok, failed = quota.recent_counts([obj.pk], hours=RECENT_HOURS).get(obj.pk, (0, 0))
        text = f"{_plural(ok, 'success', 'successes')}, {_plural(failed, 'failure')}"
        skipped = quota.recent_skips(obj.pk, hours=RECENT_HOURS)
        if skipped:
            text += f"; passed by while cooling: {_plural(skipped, 'request')}"
        return text

    @admin.display(description="recent routing traces")
    def recent_traces(self, obj: Credential) -> SafeString | str:
        traces = list(
            traces_involving(RoutingTrace.objects.all(), obj.pk).order_by("-created_at")[
                :RECENT_TRACES_SHOWN
            ]
        )
        if not traces:
            return "none recorded"
        items = format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{} · {} · {} → {}</a>',
            (
                (
                    reverse("admin:accounts_routingtrace_change", args=[trace.pk]),
                    _utc(trace.created_at),
                    trace.request_id,
                    trace.model,
                    trace.status,
                )
                for trace in traces
            ),
        )
        everything = reverse("admin:accounts_routingtrace_changelist") + f"?credential={obj.pk}"
        return format_html(
            '<div class="recent-traces">{}</div>'
            '<p><a href="{}">All traces involving this credential</a></p>',
            items,
            everything,
        )

    # Actions ---------------------------------------------------------------------------

    @admin.action(description="Clear cooldown", permissions=["change"])
    def clear_cooldown(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        cleared = quota.reset(credentials=ids)  # bumps the quota version
        self.message_user(
            request,
            f"Cleared {_plural(len(cleared), 'quota state')} on {_plural(len(ids), 'credential')}.",
        )

    @admin.action(
        description="Forget learned omissions (send every field again)", permissions=["change"]
    )
    def forget_learned_omissions(
        self, request: HttpRequest, queryset: QuerySet[Credential]
    ) -> None:
        # A fresh list of pks: the changelist's queryset may carry distinct() from a search.
        ids = list(queryset.values_list("pk", flat=True))
        cleared = omissions.forget(ids)  # through save(): bumps the config version
        for credential in Credential.objects.filter(pk__in=ids):
            self.log_change(request, credential, "Forgot learned omissions.")
        self.message_user(request, f"Forgot learned omissions on {_plural(cleared, 'credential')}.")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        changed = self._set_enabled(request, queryset, False)
        self.message_user(request, f"Disabled {_plural(changed, 'credential')}.")

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        changed = self._set_enabled(request, queryset, True)
        self.message_user(request, f"Enabled {_plural(changed, 'credential')}.")

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> int:
        # A fresh queryset by pk: the changelist's may carry distinct() from a search.
        ids = list(queryset.exclude(enabled=enabled).values_list("pk", flat=True))
        with transaction.atomic():
            changed = Credential.objects.filter(pk__in=ids).update(
                enabled=enabled, updated_at=timezone.now()
            )
            if changed:
                # update() sends no post_save: announce the change so every worker reloads.
                signals.config_changed()
        for credential in Credential.objects.filter(pk__in=ids):
            self.log_change(request, credential, [{"changed": {"fields": ["Enabled"]}}])
        return changed


# Client keys -------------------------------------------------------------------------------


@admin.register(ClientKey)
class ClientKeyAdmin(NoSecretLookupsMixin, admin.ModelAdmin):
    form = ClientKeyForm
    list_display = (
        "name",
        "key_prefix",
        "enabled",
        "allowed",
        "limits_summary",
        "last_used_at",
        "created_at",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "prefix")
    readonly_fields = ("key_prefix", "created_at", "last_used_at", "use")
    actions = ["disable", "enable", "regenerate"]
    issued_template = "admin/accounts/clientkey/issued.html"
    regenerate_template = "admin/accounts/clientkey/regenerate_confirmation.html"

    def get_fieldsets(self, request: HttpRequest, obj: ClientKey | None = None) -> list:
        if obj is None:
            identity: tuple[str, ...] = ("name", "allowed_models", "enabled")
        else:
            identity = ("name", "key_prefix", "allowed_models", "enabled", "created_at")
            identity += ("last_used_at",)
        fieldsets: list = [
            (None, {"fields": identity}),
            (
                "Limits and budget (empty: none; enforced in every worker)",
                {"fields": (("rpm_limit", "tpm_limit", "max_concurrent"), LIMIT_BUDGET_FIELDS)},
            ),
        ]
        if obj is not None:
            fieldsets.append(("Use against the limits", {"fields": ("use",)}))
        return fieldsets

    @admin.display(description="use")
    def use(self, obj: ClientKey) -> SafeString | str:
        return use_against_limits(obj)

    @admin.display(description="limits")
    def limits_summary(self, obj: ClientKey) -> str:
        parts = []
        if obj.rpm_limit:
            parts.append(f"{obj.rpm_limit} rpm")
        if obj.tpm_limit:
            parts.append(f"{obj.tpm_limit:,} tpm")
        if obj.max_concurrent:
            parts.append(f"{obj.max_concurrent} at once")
        if obj.budget_tokens:
            parts.append(f"{obj.budget_tokens:,} tokens/{obj.budget_period}")
        if obj.budget_usd is not None:
            parts.append(f"${obj.budget_usd:,.2f}/{obj.budget_period}")
        return ", ".join(parts) or "—"

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: ClientKey) -> str:
        return f"{obj.prefix}…" if obj.prefix else "—"

    @admin.display(description="allowed models")
    def allowed(self, obj: ClientKey) -> str:
        return ", ".join(obj.allowed_list) or "all"

    @sensitive_variables("plaintext")
    def save_model(self, request: HttpRequest, obj: ClientKey, form, change: bool) -> None:
        if not change:
            # ClientKey.issue(), split so the admin's own form, save and log stay in charge.
            plaintext = keys.generate()
            obj.prefix = keys.visible_prefix(plaintext)
            obj.digest = keys.digest(plaintext)
            # Carried on this request's instance only, to response_add; never stored anywhere.
            obj._issued_key = plaintext
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ClientKey, post_url_continue=None):
        plaintext = obj.__dict__.pop("_issued_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        # A page of its own, not a message: messages are stored in the session.
        return self._issued_page(request, [(obj, plaintext)], title="Client key created")

    def _issued_page(
        self, request: HttpRequest, issued: list[tuple[ClientKey, str]], *, title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": issued,
            "base_url": request.build_absolute_uri("/").rstrip("/"),
        }
        response = TemplateResponse(request, self.issued_template, context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ClientKey]) -> None:
        changed = self._set_enabled(queryset, False)
        self.message_user(request, f"Disabled {_plural(changed, 'client key')}.")

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ClientKey]) -> None:
        changed = self._set_enabled(queryset, True)
        self.message_user(request, f"Enabled {_plural(changed, 'client key')}.")

    def _set_enabled(self, queryset: QuerySet, enabled: bool) -> int:
        ids = list(queryset.exclude(enabled=enabled).values_list("pk", flat=True))
        with transaction.atomic():
            changed = ClientKey.objects.filter(pk__in=ids).update(enabled=enabled)
            if changed:
                signals.config_changed()  # update() sends no post_save
        return changed

    @admin.action(description="Regenerate key (shows the new key once)", permissions=["change"])
    def regenerate(self, request: HttpRequest, queryset: QuerySet[ClientKey]):
        if request.POST.get("confirmed") != "yes":
            # The old key stops working at once, so ask first (like delete_selected does).
            context = {
                **self.admin_site.each_context(request),
                "title": "Regenerate client keys?",
                "opts": self.opts,
                "queryset": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, self.regenerate_template, context)
        ids = list(queryset.values_list("pk", flat=True))
        issued = []
        with transaction.atomic():
            # By pk: PostgreSQL refuses FOR UPDATE on the DISTINCT a search may have added.
            for client_key in ClientKey.objects.filter(pk__in=ids).select_for_update():
                plaintext = keys.generate()
                client_key.prefix = keys.visible_prefix(plaintext)
                client_key.digest = keys.digest(plaintext)
                client_key.save(update_fields=["prefix", "digest"])  # post_save bumps config
                self.log_change(request, client_key, "Regenerated the key.")
                issued.append((client_key, plaintext))
        return self._issued_page(request, issued, title="Client keys regenerated")


# Settings ------------------------------------------------------------------------------------


@admin.register(ProxySettings)
class ProxySettingsAdmin(admin.ModelAdmin):
    fieldsets = (
        ("Keep-alive", {"fields": ("nonstream_keepalive_interval", "stream_keepalive_seconds")}),
        (
            "Retries",
            {
                "fields": (
                    "bootstrap_retries",
                    "request_retry",
                    "max_retry_credentials",
                    "max_retry_interval",
                )
            },
        ),
        (
            "Routing",
            {
                "fields": (
                    "routing_strategy",
                    "session_affinity",
                    "session_affinity_ttl",
                    "force_model_prefix",
                )
            },
        ),
        ("Cooldowns", {"fields": ("disable_cooling", "transient_error_cooldown_seconds")}),
        (
            "Upstream",
            {
                "fields": (
                    "proxy_url",
                    "upstream_connect_timeout",
                    "upstream_read_timeout",
                    "max_request_body_bytes",
                )
            },
        ),
        ("Headers", {"fields": ("passthrough_headers",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Never needed: the changelist creates the one row (ProxySettings.load()) when missing.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ProxySettings | None = None) -> bool:
        return False

    def _singleton_url(self) -> str:
        return reverse("admin:accounts_proxysettings_change", args=[ProxySettings.load().pk])

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # One row: a list of it is a detour.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(self._singleton_url())

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        singleton = ProxySettings.load()  # exists before the form reads it
        if object_id != str(singleton.pk):
            return HttpResponseRedirect(self._singleton_url())
        return super().change_view(request, object_id, form_url, extra_context)

    def response_change(self, request: HttpRequest, obj: ProxySettings) -> HttpResponse:
        response = super().response_change(request, obj)
        if "_continue" not in request.POST:
            # The default goes to the changelist, which would only redirect back here.
            return HttpResponseRedirect(self._singleton_url())
        return response


# Quota state ---------------------------------------------------------------------------------


@admin.register(QuotaState)
class QuotaStateAdmin(NoSecretLookupsMixin, admin.ModelAdmin):
    list_display = (
        "credential",
        "model_scope",
        "state",
        "reason",
        "next_retry_at",
        "backoff_level",
        "last_status",
        "short_error",
        "updated_at",
    )
    list_filter = ("status", "reason")
    list_select_related = ("credential",)
    search_fields = ("credential__label", "model")
    actions = ["clear_cooldown"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: QuotaState | None = None) -> bool:
        # The proxy writes this table; operators read it and clear it.
        return False

    @admin.display(description="model", ordering="model")
    def model_scope(self, obj: QuotaState) -> str:
        return obj.model or "*"

    @admin.display(description="status", ordering="status")
    def state(self, obj: QuotaState) -> str:
        return _effective_status(obj, timezone.now())

    @admin.display(description="last error")
    def short_error(self, obj: QuotaState) -> str:
        error = obj.last_error
        return error if len(error) <= ERROR_PREVIEW_CHARS else error[:ERROR_PREVIEW_CHARS] + "…"

    @admin.action(description="Clear cooldown", permissions=["delete"])
    def clear_cooldown(self, request: HttpRequest, queryset: QuerySet[QuotaState]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            cleared = QuotaState.objects.filter(pk__in=ids).delete()[0]
            if cleared:
                versions.bump(quota=True)
        self.message_user(request, f"Cleared {_plural(cleared, 'quota state')}.")

    # Deleting a row is clearing it: the workers must hear about it like any other reset.

    def delete_model(self, request: HttpRequest, obj: QuotaState) -> None:
        super().delete_model(request, obj)
        versions.bump(quota=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[QuotaState]) -> None:
        super().delete_queryset(request, queryset)
        versions.bump(quota=True)


# Routing traces ------------------------------------------------------------------------------


class TraceCredentialFilter(admin.SimpleListFilter):
    title = "credential"
    parameter_name = "credential"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(str(pk), label) for pk, label in Credential.objects.values_list("pk", "label")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        try:
            credential_id = int(self.value())
        except ValueError:
            return queryset.none()
        return traces_involving(queryset, credential_id)


TRACE_FIELDS = (
    "created_at",
    "request_id",
    "endpoint",
    "client_key_name",
    "model",
    "stream",
    "status",
    "attempts",
    "duration_ms",
)


@admin.register(RoutingTrace)
class RoutingTraceAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "request_id",
        "endpoint",
        "model",
        "client_key_name",
        "status",
        "attempts",
        "duration_ms",
    )
    list_filter = ("status", "endpoint", TraceCredentialFilter)
    search_fields = ("request_id", "model")
    fields = (*TRACE_FIELDS, "steps_table")
    readonly_fields = (*TRACE_FIELDS, "steps_table")
    # The table can hold 20,000 rows: skip the unfiltered count on every page.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RoutingTrace | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RoutingTrace | None = None) -> bool:
        return False  # a record of what happened; accounts.quota.prune_traces ages it out

    @admin.display(description="steps")
    def steps_table(self, obj: RoutingTrace) -> SafeString | str:
        steps = [s for s in obj.steps if isinstance(s, dict)] if isinstance(obj.steps, list) else []
        if not steps:
            return "—"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (_step_cells(step) for step in steps),
        )
        return format_html(
            '<table class="trace-steps"><thead><tr><th>credential</th><th>model</th>'
            "<th>outcome</th><th>status</th><th>round</th><th>ms</th><th>error / reason</th>"
            "<th>classified</th><th>cooling until</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )


def _step_cells(step: dict[str, Any]) -> tuple:
    label = step.get("credential") or "—"
    credential_id = step.get("credential_id")
    if isinstance(credential_id, int):
        url = reverse("admin:accounts_credential_change", args=[credential_id])
        credential = format_html('<a href="{}">{}</a>', url, label)
    else:
        credential = label
    detail = step.get("error") or step.get("reason")
    if not detail and step.get("outcome") == "waited":
        detail = f"waited {step.get('seconds')} s for a cooldown to end"

    def cell(key: str) -> Any:
        value = step.get(key)
        return "—" if value is None or value == "" else value

    return (
        credential,
        cell("model"),
        cell("outcome"),
        cell("status"),
        cell("round"),
        cell("ms"),
        detail or "—",
        cell("classified"),
        cell("cooling_until"),
    )
