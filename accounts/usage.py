"""The usage ledger: one ``RequestOutcome`` per client request, buffered in the worker and
written in batches by the pool's flush (every ``STATS_FLUSH_SECONDS`` and once at shutdown).

A request adds its outcome to a list in memory and nothing else; the flush writes the list with
one ``bulk_create``. When the database cannot take a batch, the batch goes back to the front of
the buffer for the next flush (up to ``MAX_BUFFERED`` records, then the oldest are dropped and
counted: a worker must not grow without bound while its database is down).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay

from accounts.prices import Tokens

logger = logging.getLogger(__name__)

MAX_BUFFERED = 100_000
PRUNE_BATCH = 10_000
COST_PLACES = Decimal("0.00000001")


@dataclass(slots=True)
class RequestOutcome:
    """How one client request ended: what the ledger, the limits and the metrics record."""

    started_at: float  # epoch
    request_id: str
    endpoint: str
    client_key_id: int | None
    client_key_name: str
    model: str
    stream: bool
    status: int
    error_type: str = ""
    credential_id: int | None = None
    credential_label: str = ""
    provider: str = ""
    upstream_model: str = ""
    tokens: Tokens = field(default_factory=Tokens)
    cost: Decimal | None = None
    latency_ms: int = 0
    ttfb_ms: int | None = None
    attempts: int = 0
    cut_off: bool = False


class Ledger:
    """This worker's outcomes not yet written."""

    def __init__(self) -> None:
        self.pending: deque[RequestOutcome] = deque()
        self.dropped = 0

    def add(self, outcome: RequestOutcome) -> None:
        self.pending.append(outcome)
        if len(self.pending) > MAX_BUFFERED:
            self.pending.popleft()
            self.dropped += 1

    def drain(self) -> list[RequestOutcome]:
        batch = list(self.pending)
        self.pending.clear()
        return batch

    def put_back(self, batch: list[RequestOutcome]) -> None:
        """A batch the database refused: first in line for the next flush."""
        self.pending.extendleft(reversed(batch))
        while len(self.pending) > MAX_BUFFERED:
            self.pending.popleft()
            self.dropped += 1


def write(batch: list[RequestOutcome]) -> int:
    """Insert a batch (synchronous; one query per table touched, plus the insert)."""
    from accounts.models import ClientKey, Credential, UsageRecord

    if not batch:
        return 0
    # A key or credential deleted since its request keeps its name on the record, not its id
    # (a dangling id would fail the whole batch's foreign keys).
    key_ids = {o.client_key_id for o in batch if o.client_key_id is not None}
    credential_ids = {o.credential_id for o in batch if o.credential_id is not None}
    live_keys = set(ClientKey.objects.filter(pk__in=key_ids).values_list("pk", flat=True))
    live_credentials = set(
        Credential.objects.filter(pk__in=credential_ids).values_list("pk", flat=True)
    )
    rows = [
        UsageRecord(
            created_at=datetime.fromtimestamp(o.started_at, tz=UTC),
            request_id=o.request_id[:40],
            endpoint=o.endpoint[:40],
            client_key_id=o.client_key_id if o.client_key_id in live_keys else None,
            client_key_name=o.client_key_name[:100],
            credential_id=o.credential_id if o.credential_id in live_credentials else None,
            credential_label=o.credential_label[:100],
            provider=o.provider[:20],
            model=o.model[:200],
            upstream_model=o.upstream_model[:200],
            stream=o.stream,
            status=o.status,
            error_type=o.error_type[:60],
            input_tokens=o.tokens.input,
            output_tokens=o.tokens.output,
            cache_read_tokens=o.tokens.cache_read,
            cache_write_tokens=o.tokens.cache_write,
            cost=o.cost,
            latency_ms=o.latency_ms,
            ttfb_ms=o.ttfb_ms,
            attempts=o.attempts,
            cut_off=o.cut_off,
        )
        for o in batch
    ]
    UsageRecord.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def prune(now: datetime | None = None, retention_days: int | None = None) -> int:
    """Delete records older than the retention (``USAGE_RETENTION_DAYS``; 0 = keep forever), in
    batches so a first prune of a large table does not hold one huge transaction."""
    from accounts.models import UsageRecord

    days = settings.USAGE_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(tz=UTC)) - timedelta(days=days)
    removed = 0
    while True:
        ids = list(
            UsageRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :PRUNE_BATCH
            ]
        )
        if not ids:
            return removed
        removed += UsageRecord.objects.filter(pk__in=ids).delete()[0]


# Reports ---------------------------------------------------------------------------------------

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
GROUPINGS = {
    "key": "client_key_name",
    "credential": "credential_label",
    "model": "model",
    "day": "day",
}


def report(since: datetime, by: str = "key") -> list[dict]:
    """Totals per key, credential, model or day since ``since``. ``cost`` sums the records with a
    known cost; ``unpriced`` counts those without one, so a partial sum is never taken for all."""
    from accounts.models import UsageRecord

    column = GROUPINGS[by]
    rows = UsageRecord.objects.filter(created_at__gte=since)
    if by == "day":
        rows = rows.annotate(day=TruncDay("created_at"))
    # Aggregates get names of their own: one named like the column it sums confuses the SQL.
    sums = {name: Sum(name) for name in TOKEN_COLUMNS + ("cost",)}
    rows = (
        rows.values(column)
        .annotate(
            n_requests=Count("id"),
            n_errors=Count("id", filter=Q(status__gte=400)),
            n_unpriced=Count("id", filter=Q(cost__isnull=True)),
            **{f"sum_{name}": aggregate for name, aggregate in sums.items()},
        )
        .order_by(column)
    )
    result = []
    for row in rows:
        name = row[column]
        if by == "day":
            name = name.date().isoformat() if name else ""
        entry = {by: name or "-", "requests": row["n_requests"], "errors": row["n_errors"]}
        for token_column in TOKEN_COLUMNS:
            entry[token_column] = row[f"sum_{token_column}"] or 0
        # Same digits on every database (SQLite's SUM drops trailing zeros).
        cost = row["sum_cost"]
        entry["cost"] = None if cost is None else Decimal(cost).quantize(COST_PLACES)
        entry["unpriced"] = row["n_unpriced"]
        result.append(entry)
    return result
