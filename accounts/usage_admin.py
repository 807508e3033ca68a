"""Admin pages for the usage ledger and the price table, and the client key's "use against its
limits" panel (imported by accounts.admin, which registers the client key itself)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib import admin
from django.db.models import Count, Sum
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts import limiter, limits
from accounts.models import ClientKey, ModelPrice, UsageRecord


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model", "input", "output", "cache_read", "cache_write", "updated_at")
    search_fields = ("model",)
    fieldsets = (
        (None, {"fields": ("model",)}),
        (
            "US dollars per million tokens (empty: unknown, and so is the cost of requests "
            "that use that kind of token)",
            {"fields": ("input", "output", "cache_read", "cache_write")},
        ),
    )


USAGE_FIELDS = (
    "created_at",
    "request_id",
    "endpoint",
    "client_key_name",
    "credential_label",
    "provider",
    "model",
    "upstream_model",
    "stream",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "latency_ms",
    "ttfb_ms",
    "attempts",
    "cut_off",
)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "client_key_name",
        "model",
        "credential_label",
        "status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_column",
        "latency_ms",
    )
    list_filter = ("status", "stream", "cut_off", "provider")
    search_fields = ("request_id", "model", "client_key_name", "credential_label")
    fields = USAGE_FIELDS
    readonly_fields = USAGE_FIELDS
    date_hierarchy = "created_at"
    # A ledger grows by a row a request: skip the unfiltered count on every page.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    @admin.display(description="cost", ordering="cost")
    def cost_column(self, obj: UsageRecord) -> str:
        return "unknown" if obj.cost is None else f"${obj.cost:.6f}"


def _of(used: int, limit: int | None) -> str:
    return f"{used:,} of {limit:,}" if limit is not None else f"{used:,} (no limit)"


def use_against_limits(key: ClientKey) -> SafeString | str:
    """Now (the shared counters) and over the budget period (the ledger)."""
    if key.pk is None:
        return "—"
    key_limits = key.limits
    now = time.time()
    use = limiter.current_use(key.pk, key_limits, now)
    window = limits.windows(now, key_limits.budget_period)
    since = datetime.fromtimestamp(window.period, tz=UTC)
    period = UsageRecord.objects.filter(client_key=key, created_at__gte=since).aggregate(
        requests=Count("id"),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost"),
    )
    tokens = (period["input"] or 0) + (period["output"] or 0)
    cost = period["cost"] or Decimal(0)
    budget_usd = f"${key.budget_usd:,.2f}" if key.budget_usd is not None else "no limit"
    rows = [
        ("requests this minute", _of(use.requests, key_limits.rpm)),
        ("tokens this minute", _of(use.tokens, key_limits.tpm)),
        ("requests in flight", _of(use.in_flight, key_limits.concurrent)),
        (
            f"tokens this {key_limits.budget_period} (counted)",
            _of(use.budget_tokens, key_limits.budget_tokens),
        ),
        (
            f"cost this {key_limits.budget_period} (counted)",
            f"${Decimal(use.budget_micro_usd) / limits.MICRO:,.4f} of {budget_usd}",
        ),
        (
            f"this {key_limits.budget_period} in the ledger",
            f"{period['requests']:,} requests, {tokens:,} tokens, ${cost:,.4f}",
        ),
    ]
    return format_html(
        '<table class="key-use"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )
