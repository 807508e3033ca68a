"""Subscription accounts in the admin: the login pages, the account-file upload, and what the
credential list and page show of an account (identity, token expiry, needs login). Tokens never
reach a page; the pages only show who the account is and what state it is in.

Kept beside accounts/admin.py (already past the size where it should split) and wired into
CredentialAdmin through ``urls()``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import windows
from accounts.models import AccountState, AuthKind, Credential, OAuthToken
from accounts.oauth import importer, pkce, sessions

LOGIN_SLUGS = {"claude": pkce.CLAUDE, "codex": pkce.CODEX}
CODEX_SERVED = (
    "Served through the Responses API at the credential's base URL (default "
    "https://chatgpt.com/backend-api/codex): the Codex catalogue (gpt-5-codex, gpt-5.1-codex, …) "
    "unless models are listed; add a model with an alias to expose it under a claude-* name."
)


def _utc(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def account_of(credential: Credential) -> OAuthToken | None:
    if credential.auth_kind != AuthKind.OAUTH:
        return None
    try:
        return credential.oauth
    except OAuthToken.DoesNotExist:
        return None


def needs_login_line(credential: Credential) -> str | None:
    """The status column's first line for an account that cannot serve until a login."""
    if credential.auth_kind != AuthKind.OAUTH:
        return None
    account = account_of(credential)
    if account is None:
        return "needs login: no tokens"
    if account.state == AccountState.NEEDS_LOGIN:
        return "needs login: " + (account.state_reason[:120] or "refresh refused")
    return None


def account_column(credential: Credential) -> str | None:
    """What the list shows in place of a secret hint: who the account is."""
    account = account_of(credential)
    if credential.auth_kind != AuthKind.OAUTH:
        return None
    if account is None:
        return "OAuth account (no tokens)"
    who = account.email or account.account_id or account.identity
    return f"OAuth: {who}" + (f" ({account.plan})" if account.plan else "")


def account_panel(credential: Credential) -> SafeString | str:
    account = account_of(credential)
    if credential.auth_kind != AuthKind.OAUTH:
        return "— (an API-key credential)"
    if account is None:
        return "No tokens stored: log the account in or import its file."
    now = timezone.now()
    expiry = _utc(account.expires_at)
    if account.expires_at is not None and account.expires_at <= now:
        expiry += " (expired: refreshed on the next request)"
    backoff = ""
    if account.refresh_backoff_until and account.refresh_backoff_until > now:
        backoff = f"next refresh try after {_utc(account.refresh_backoff_until)}"
    state = account.get_state_display()
    if account.state == AccountState.NEEDS_LOGIN:
        state += f": {account.state_reason or 'refresh refused'} (log in again or re-import)"
    rows = [
        ("state", state),
        ("email", account.email or "—"),
        ("account id", account.account_id or "—"),
        ("organization", account.organization_name or account.organization_id or "—"),
        ("plan", account.plan or "—"),
        ("access token expires", expiry),
        ("last refresh", _utc(account.last_refresh_at)),
        ("last refresh error", account.last_refresh_error or "—"),
        ("refresh back-off", backoff or "—"),
        ("token version", str(account.token_version)),
    ]
    if credential.provider == "codex":
        rows.append(("served", CODEX_SERVED))
    body = SafeString(
        "".join(format_html("<tr><th>{}</th><td>{}</td></tr>", k, v) for k, v in rows)
        + format_html("<tr><th>quota windows</th><td>{}</td></tr>", window_bars(account, now))
    )
    return format_html('<table class="oauth-account">{}</table>', body)


def window_bars(account: OAuthToken, now: datetime) -> SafeString | str:
    """A bar per 5-hour / 7-day window, from the latest response that reported them."""
    stored = windows.from_stored(account.quota_windows)
    if not stored:
        return "not reported yet (Claude reports them with every response)"
    moment = now.timestamp()
    bars = SafeString(
        "".join(
            format_html(
                '<div class="quota-window"><div class="quota-bar" style="display:inline-block;'
                'width:12em;height:0.8em;border:1px solid #888;vertical-align:middle">'
                '<div style="width:{}%;height:100%;background:{}"></div></div> {}</div>',
                round(window.used(moment) * 100),
                "#ba2121" if window.used(moment) >= 0.9 else "#417690",
                phrase,
            )
            for window, phrase in zip(stored, windows.describe(stored, moment), strict=True)
        )
    )
    return format_html("{}<small>as of {}</small>", bars, _utc(account.windows_observed_at))


class PasteForm(forms.Form):
    state = forms.CharField(widget=forms.HiddenInput)
    paste = forms.CharField(
        label="What the browser showed",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90, "autocomplete": "off"}),
        help_text="The whole address of the page that failed to load "
        "(http://localhost:…?code=…&state=…), or the code#state Claude's page shows.",
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Django's documented pattern for a field that takes several files."""

    def clean(self, data, initial=None) -> list:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Account files",
        widget=MultipleFileInput(attrs={"accept": ".json,application/json"}),
        help_text="CLIProxyAPI's claude-*.json / codex-*.json (its auth-dir). The same account "
        "again updates it; a refresh token another account holds is refused.",
    )


def urls(model_admin: admin.ModelAdmin) -> list:
    wrap = model_admin.admin_site.admin_view
    return [
        path("login/<slug:slug>/", wrap(login_view(model_admin)), name="accounts_credential_login"),
        path("import-accounts/", wrap(import_view(model_admin)), name="accounts_credential_import"),
    ]


def _context(model_admin: admin.ModelAdmin, request: HttpRequest, title: str, **extra) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        **extra,
    }


def login_view(model_admin: admin.ModelAdmin):
    @never_cache
    @sensitive_post_parameters("paste")
    def view(request: HttpRequest, slug: str) -> HttpResponse:
        provider = LOGIN_SLUGS.get(slug)
        if provider is None:
            raise Http404("no such login")
        if not model_admin.has_add_permission(request):
            raise Http404("no such login")
        name = sessions.PROVIDER_NAMES[provider]
        error = ""
        if request.method == "POST":
            form = PasteForm(request.POST)
            if form.is_valid():
                paste = form.cleaned_data["paste"]
                try:
                    result = async_to_sync(sessions.complete)(paste, provider=provider)
                except sessions.LoginError as exc:
                    error = exc.message
                else:
                    note = f" {CODEX_SERVED}" if provider == pkce.CODEX else ""
                    messages.success(
                        request, f"{name} account {result.label} {result.action}.{note}"
                    )
                    return HttpResponseRedirect(
                        reverse("admin:accounts_credential_change", args=[result.credential_id])
                    )
            state = request.POST.get("state", "")
            url = ""
        else:
            started = sessions.start(provider)
            state, url = started.state, started.url
            form = PasteForm(initial={"state": state})
        return TemplateResponse(
            request,
            "admin/accounts/credential/login.html",
            _context(
                model_admin,
                request,
                f"Log in a {name} account",
                form=form,
                url=url,
                error=error,
                provider_name=name,
                restart=reverse("admin:accounts_credential_login", args=[slug]),
            ),
        )

    return view


def import_view(model_admin: admin.ModelAdmin):
    @never_cache
    def view(request: HttpRequest) -> HttpResponse:
        if not model_admin.has_add_permission(request):
            raise Http404("no import")
        outcomes: list[importer.Outcome] = []
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                for upload in form.cleaned_data["files"]:
                    outcomes.append(importer.import_text(upload.name, upload.read()))
        else:
            form = UploadForm()
        return TemplateResponse(
            request,
            "admin/accounts/credential/import_accounts.html",
            _context(model_admin, request, "Import account files", form=form, outcomes=outcomes),
        )

    return view
