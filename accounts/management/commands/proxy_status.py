from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts import omissions, windows
from accounts.models import AccountState, AuthKind, Credential, OAuthToken, QuotaState, QuotaStatus

COLUMNS = ("id", "label", "provider", "enabled", "priority", "models", "state", "next retry")


class Command(BaseCommand):
    help = (
        "Print the credential pool: provider, models, and whether each credential is usable now "
        "(ok / cooling until T because R / needs attention: R) with its next retry, and the "
        "fields an OpenAI-compatible server was seen refusing."
    )

    def handle(self, *args, **options) -> str:
        now = timezone.now()
        credentials = (
            Credential.objects.prefetch_related("models", "quota")
            .select_related("oauth")
            .order_by("id")
        )
        rows, details = [], []
        for credential in credentials:
            blocked = [row for row in credential.quota.all() if blocks(row, now)]
            state, extra = credential_state(blocked)
            if credential.auth_kind == AuthKind.OAUTH:
                state, extra = account_state(credential, state, extra, now)
            soonest = min((row.next_retry_at for row in blocked), default=None)
            rows.append(
                (
                    str(credential.pk),
                    credential.label,
                    credential.provider,
                    "yes" if credential.enabled else "no",
                    str(credential.priority),
                    models_of(credential),
                    state,
                    until(soonest, now) if soonest else "-",
                )
            )
            extra += [f"omits {line}" for line in omissions.describe(credential.learned_omissions)]
            details += [f"  #{credential.pk} {credential.label}: {line}" for line in extra]
        if not rows:
            return "No credentials configured."
        self.stdout.write(table(COLUMNS, rows))
        for line in details:
            self.stdout.write(line)
        usable = sum(1 for row in rows if row[3] == "yes" and row[6] == "ok")
        return f"{len(rows)} credential(s), {usable} enabled and ok."


def account_state(
    credential: Credential, state: str, extra: list[str], now: datetime
) -> tuple[str, list[str]]:
    """A subscription account: needs login overrides everything; one line on its tokens."""
    account: OAuthToken | None = getattr(credential, "oauth", None)
    if account is None:
        return "needs login: no tokens", extra
    who = ", ".join(part for part in (account.email, account.plan) if part) or account.identity
    expiry = (
        "no known expiry"
        if account.expires_at is None
        else f"token expired {utc(account.expires_at)}"
        if account.expires_at <= now
        else f"token expires {until(account.expires_at, now)}"
    )
    line = f"account {who}; {expiry}"
    if account.last_refresh_error:
        line += f"; last refresh error: {account.last_refresh_error[:200]}"
    if account.refresh_backoff_until and account.refresh_backoff_until > now:
        line += f"; next refresh try {until(account.refresh_backoff_until, now)}"
    quota_windows = windows.from_stored(account.quota_windows)
    if quota_windows:
        line += "; " + ", ".join(windows.describe(quota_windows, now.timestamp()))
    if credential.provider == "codex":
        line += "; Codex accounts are not served yet (no Responses provider)"
    if account.state == AccountState.NEEDS_LOGIN:
        state = "needs login: " + (account.state_reason[:120] or "refresh refused")
    return state, [line, *extra]


def blocks(row: QuotaState, now: datetime) -> bool:
    # An expired cooldown never blocks, whatever its row still says (the pool ignores it too).
    return (
        row.status != QuotaStatus.OK and row.next_retry_at is not None and row.next_retry_at > now
    )


def credential_state(blocked: list[QuotaState]) -> tuple[str, list[str]]:
    """The state column, plus one line per blocked model when there are several."""
    wide = next((row for row in blocked if not row.model), None)
    models = sorted((row for row in blocked if row.model), key=lambda row: row.model)
    if wide is None and not models:
        return "ok", []
    if wide is None and len(models) == 1:
        return f"{models[0].model}: {describe(models[0])}", []
    lines = [f"{row.model}: {describe(row)}" for row in models]
    return (describe(wide) if wide else f"{len(models)} models blocked"), lines


def describe(row: QuotaState) -> str:
    reason = row.reason or (f"HTTP {row.last_status}" if row.last_status else "unknown")
    if row.status == QuotaStatus.ATTENTION:
        return f"needs attention: {reason}"
    return f"cooling until {utc(row.next_retry_at)} because {reason}"


def models_of(credential: Credential) -> str:
    names = [model.alias or model.name for model in credential.models.all()]
    return ", ".join(dict.fromkeys(names)) or "(catalogue)"


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def until(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((moment - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"in {hours}h {minutes:02d}m"
    if minutes:
        return f"in {minutes}m {seconds:02d}s"
    return f"in {seconds}s"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
