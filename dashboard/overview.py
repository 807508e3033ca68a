"""The overview's figures, computed in the database from the usage ledger (UsageRecord).

One grouped query per chart or table, each over the period's rows through the ``created_at``
index; what reaches Python is one row per time bucket (and group) or per key / credential /
model, never one per request. Latency percentiles: see dashboard.sql (PostgreSQL's
``percentile_disc`` in the same query; on SQLite one ranking query per chart or table).
Latency is taken over answered requests (status below 400): refusals and upstream errors end in
a few milliseconds and would make a slow proxy look fast. SQLite sorts whatever it ranks, so
there the ranking looks at no more than ``SAMPLE_ROWS`` answered requests per query: beyond
that, at every k-th record (by id, so spread evenly over the period) and says so
(``latency_sample_step``); PostgreSQL always counts every record.

Everything returned is plain JSON-able data: the page embeds it (``json_script``) for its charts
and renders its tables from it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Mod

from accounts.models import UsageRecord
from dashboard import sql
from dashboard.periods import SPLITS, Period

FRACTIONS = (0.5, 0.95)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
# Groups drawn one by one in a split chart; the rest are summed as "other".
SPLIT_GROUPS = 6
# Rows per breakdown table.
TABLE_ROWS = 20
ERROR_ROWS = 10
COST_PLACES = Decimal("0.000001")
NONE_LABEL = "—"
# At most this many answered requests are ranked per query where the ranking is ours (SQLite):
# about 50 ms of sorting there; beyond it, every k-th record.
SAMPLE_ROWS = 20_000
BREAKDOWNS = {
    "key": ("client_key_name", "Client key"),
    "credential": ("credential_label", "Credential"),
    "model": ("model", "Model"),
}


def _sums() -> dict[str, Any]:
    return {
        "n_requests": Count("id"),
        "n_errors": Count("id", filter=Q(status__gte=400)),
        "n_unpriced": Count("id", filter=Q(cost__isnull=True)),
        **{f"sum_{kind}": Sum(f"{kind}_tokens") for kind in TOKEN_KINDS},
        "sum_cost": Sum("cost"),
    }


def _percentile_aggregates() -> dict[str, Any]:
    if not sql.has_percentile_aggregate(connection):
        return {}
    answered = Q(status__lt=400)
    return {_name(f): sql.PercentileDisc("latency_ms", f, filter=answered) for f in FRACTIONS}


def _native() -> bool:
    """Percentiles in the grouped query itself (PostgreSQL), or ranked apart (SQLite)."""
    return sql.has_percentile_aggregate(connection)


def sample_step(answered: int) -> int:
    """1 (every record) or the k of "every k-th" that keeps a ranking under ``SAMPLE_ROWS``."""
    if _native() or answered <= SAMPLE_ROWS:
        return 1
    return -(-answered // SAMPLE_ROWS)


def _ranked(rows: QuerySet, group: Any, step: int = 1) -> dict[Any, dict[float, int]]:
    answered = rows.filter(status__lt=400)
    if step > 1:
        answered = answered.annotate(_sample=Mod("id", step)).filter(_sample=0)
    return sql.percentiles_by_rank(answered, group, "latency_ms", FRACTIONS)


def _cost(value: Any) -> str | None:
    # A string: JSON has no decimals, and a float would print 0.30000000000000004.
    return None if value is None else str(Decimal(value).quantize(COST_PLACES))


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": row["n_requests"],
        "errors": row["n_errors"],
        **{f"{kind}_tokens": row[f"sum_{kind}"] or 0 for kind in TOKEN_KINDS},
        "cost": _cost(row["sum_cost"]),
        "unpriced": row["n_unpriced"],
    }


def _name(fraction: float) -> str:
    return f"p{round(fraction * 100)}"


def _latency(row: dict[str, Any], ranked: dict[float, int] | None) -> dict[str, int | None]:
    """p50 / p95 from the grouped row (PostgreSQL) or from the ranking query (``ranked``)."""
    if ranked is None:
        return {_name(f): row.get(_name(f)) for f in FRACTIONS}
    return {_name(f): ranked.get(f) for f in FRACTIONS}


def period_rows(since: float) -> QuerySet:
    return UsageRecord.objects.filter(created_at__gte=datetime.fromtimestamp(since, tz=UTC))


def totals(rows: QuerySet) -> dict[str, Any]:
    """The period's totals: requests, errors, tokens by kind, cost, p50 / p95 latency, and the
    sampling step the other latency figures should use (1: every record)."""
    row = rows.aggregate(**_sums(), **_percentile_aggregates())
    step = sample_step(row["n_requests"] - row["n_errors"])
    ranked = None if _native() else _ranked(rows, None, step).get(None, {})
    return {**_figures(row), **_latency(row, ranked), "latency_sample_step": step}


def breakdown(rows: QuerySet, by: str, step: int = 1) -> list[dict[str, Any]]:
    """Per client key, credential or model (by name, so a deleted one keeps its history):
    figures and latency, most requests first."""
    column = BREAKDOWNS[by][0]
    grouped = (
        rows.values(column)
        .annotate(**_sums(), **_percentile_aggregates())
        .order_by("-n_requests", column)
    )
    found = list(grouped)
    ranked = _ranked(rows, F(column), step) if found and not _native() else None
    return [
        {
            "name": row[column] or NONE_LABEL,
            **_figures(row),
            **_latency(row, None if ranked is None else ranked.get(row[column], {})),
        }
        for row in found
    ]


def errors_by_type(rows: QuerySet) -> list[dict[str, Any]]:
    grouped = (
        rows.filter(status__gte=400)
        .values("status", "error_type")
        .annotate(n=Count("id"))
        .order_by("-n", "status", "error_type")
    )
    return [
        {
            "status": row["status"],
            "error_type": row["error_type"] or NONE_LABEL,
            "requests": row["n"],
        }
        for row in grouped[:ERROR_ROWS]
    ]


def series(rows: QuerySet, period: Period, starts: list[int], split: str) -> dict[str, Any]:
    """Requests (and errors), tokens and cost per bucket, split by key, credential or model
    (the ``SPLIT_GROUPS`` busiest drawn, the rest as "other") or by outcome and token kind."""
    column = SPLITS[split][1]
    bucket = sql.EpochBucket("created_at", period.bucket)
    fields = ["bucket"] + ([column] if column else [])
    grouped = rows.annotate(bucket=bucket).values(*fields).annotate(**_sums()).order_by()
    index = {start: i for i, start in enumerate(starts)}
    size = len(starts)

    def zeros() -> list:
        return [0] * size

    errors = zeros()
    if column is None:
        requests, failed = zeros(), zeros()
        tokens = {kind: zeros() for kind in TOKEN_KINDS}
        cost = [0.0] * size
        for row in grouped:
            i = index.get(row["bucket"])
            if i is None:
                continue  # a record stamped ahead of this worker's clock
            requests[i] += row["n_requests"] - row["n_errors"]
            failed[i] += row["n_errors"]
            errors[i] += row["n_errors"]
            for kind in TOKEN_KINDS:
                tokens[kind][i] += row[f"sum_{kind}"] or 0
            cost[i] += float(row["sum_cost"] or 0)
        return {
            "requests": [
                {"label": "answered", "data": requests},
                {"label": "errors", "data": failed},
            ],
            "errors": errors,
            "tokens": [
                {"label": kind.replace("_", " "), "data": tokens[kind]} for kind in TOKEN_KINDS
            ],
            "cost": [{"label": "cost (USD)", "data": [round(c, 6) for c in cost]}],
        }
    per_group: dict[str, dict[str, list]] = {}
    volume: dict[str, int] = {}
    for row in grouped:
        i = index.get(row["bucket"])
        if i is None:
            continue
        name = row[column] or NONE_LABEL
        group = per_group.setdefault(
            name, {"requests": zeros(), "tokens": zeros(), "cost": [0.0] * size}
        )
        group["requests"][i] += row["n_requests"]
        group["tokens"][i] += (row["sum_input"] or 0) + (row["sum_output"] or 0)
        group["cost"][i] += float(row["sum_cost"] or 0)
        errors[i] += row["n_errors"]
        volume[name] = volume.get(name, 0) + row["n_requests"]
    busiest = sorted(volume, key=lambda name: (-volume[name], name))
    shown, rest = busiest[:SPLIT_GROUPS], busiest[SPLIT_GROUPS:]
    if rest:
        other = {"requests": zeros(), "tokens": zeros(), "cost": [0.0] * size}
        for name in rest:
            for measure, values in per_group[name].items():
                for i, value in enumerate(values):
                    other[measure][i] += value
        per_group[f"other ({len(rest)})"] = other
        shown.append(f"other ({len(rest)})")
    return {
        "requests": [{"label": n, "data": per_group[n]["requests"]} for n in shown],
        "errors": errors,
        "tokens": [{"label": n, "data": per_group[n]["tokens"]} for n in shown],
        "cost": [{"label": n, "data": [round(c, 6) for c in per_group[n]["cost"]]} for n in shown],
    }


def latency_series(
    rows: QuerySet, period: Period, starts: list[int], step: int = 1
) -> dict[str, list]:
    """p50 and p95 latency (ms) of answered requests per bucket; None where none was answered."""
    bucket = sql.EpochBucket("created_at", period.bucket)
    index = {start: i for i, start in enumerate(starts)}
    result: dict[str, list] = {_name(f): [None] * len(starts) for f in FRACTIONS}
    if _native():
        grouped = (
            rows.filter(status__lt=400)
            .annotate(bucket=bucket)
            .values("bucket")
            .annotate(**{_name(f): sql.PercentileDisc("latency_ms", f) for f in FRACTIONS})
            .order_by()
        )
        found = {row["bucket"]: {f: row[_name(f)] for f in FRACTIONS} for row in grouped}
    else:
        found = _ranked(rows, bucket, step)
    for start, values in found.items():
        i = index.get(start)
        if i is None:
            continue
        for fraction, value in values.items():
            result[_name(fraction)][i] = value
    return result


def build(period: Period, split: str, now: float | None = None) -> dict[str, Any]:
    """Everything the overview shows for a period (synchronous: the admin view runs it)."""
    now = time.time() if now is None else now
    since, starts = period.window(now)
    rows = period_rows(since)
    overall = totals(rows)
    step = overall["latency_sample_step"]
    return {
        "period": period.key,
        "period_label": period.label,
        "bucket_seconds": period.bucket,
        "split": split,
        "since": since,
        "now": now,
        "labels": period.labels(starts),
        "starts": starts,
        "totals": overall,
        "series": {
            **series(rows, period, starts, split),
            "latency": latency_series(rows, period, starts, step),
        },
        "breakdown": {by: breakdown(rows, by, step) for by in BREAKDOWNS},
        "errors_by_type": errors_by_type(rows),
    }
