"""The usage ledger: one ``RequestOutcome`` per client request, buffered in the worker and
written in batches by the pool's flush (every ``STATS_FLUSH_SECONDS`` and once at shutdown).

A request adds its outcome to a buffer in memory and nothing else; the flush writes the buffer
with one multi-row insert. When the database cannot take a batch, the batch goes back to the
front of the buffer for the next flush (up to ``MAX_BUFFERED`` records, then the oldest are
dropped and counted: a worker must not grow without bound while its database is down).

Two costs shaped this, both measured as stalls at p99 under load (bench/serving.py):

- The buffer holds tuples of plain values (``usage_row``), not the outcome objects. The collector
  stops tracking such a tuple the first time it looks at it, so thousands of rows waiting for
  the flush add nothing to the full collections that a buffer of objects made longer and more
  frequent.
- The insert is one ``executemany`` of those tuples, not ``bulk_create``: Django's compiler spent
  about 0.1 ms of Python per row preparing the values (0.4 s for a 5-second batch at 800
  requests a second), holding the interpreter lock away from the requests being served.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay

from accounts.prices import Tokens

logger = logging.getLogger(__name__)

MAX_BUFFERED = 100_000
INSERT_BATCH = 1_000
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


# What the ledger keeps of an outcome until the flush: UsageRecord's columns, in this order, as a
# plain tuple of plain values (see the module's docstring for why). A tuple, not a NamedTuple:
# the collector stops tracking only exact tuples.
ROW_COLUMNS = (
    "created_at",  # epoch seconds here; a datetime in the insert
    "request_id",
    "endpoint",
    "client_key",
    "client_key_name",
    "credential",
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
_KEY, _CREDENTIAL, _COST = (
    ROW_COLUMNS.index(name) for name in ("client_key", "credential", "cost")
)


def usage_row(o: RequestOutcome) -> tuple:
    """``o`` as the ledger keeps it, cut to the columns' lengths so a batch never fails on one
    long value."""
    return (
        o.started_at,
        o.request_id[:40],
        o.endpoint[:40],
        o.client_key_id,
        o.client_key_name[:100],
        o.credential_id,
        o.credential_label[:100],
        o.provider[:20],
        o.model[:200],
        o.upstream_model[:200],
        o.stream,
        o.status,
        o.error_type[:60],
        o.tokens.input,
        o.tokens.output,
        o.tokens.cache_read,
        o.tokens.cache_write,
        o.cost,
        o.latency_ms,
        o.ttfb_ms,
        o.attempts,
        o.cut_off,
    )


class Ledger:
    """This worker's outcomes not yet written."""

    def __init__(self) -> None:
        self.pending: deque[tuple] = deque()
        self.dropped = 0

    def add(self, outcome: RequestOutcome) -> None:
        self.pending.append(usage_row(outcome))
        if len(self.pending) > MAX_BUFFERED:
            self.pending.popleft()
            self.dropped += 1

    def drain(self) -> list[tuple]:
        batch = list(self.pending)
        self.pending.clear()
        return batch

    def put_back(self, batch: list[tuple]) -> None:
        """A batch the database refused: first in line for the next flush."""
        self.pending.extendleft(reversed(batch))
        while len(self.pending) > MAX_BUFFERED:
            self.pending.popleft()
            self.dropped += 1


def write(batch: list[tuple]) -> int:
    """Insert a batch of ``usage_row`` tuples (synchronous): one query per table its ids name,
    then one insert."""
    from accounts.models import ClientKey, Credential, UsageRecord

    if not batch:
        return 0
    # A key or credential deleted since its request keeps its name on the record, not its id
    # (a dangling id would fail the whole batch's foreign keys).
    key_ids = {row[_KEY] for row in batch if row[_KEY] is not None}
    credential_ids = {row[_CREDENTIAL] for row in batch if row[_CREDENTIAL] is not None}
    live_keys = set(ClientKey.objects.filter(pk__in=key_ids).values_list("pk", flat=True))
    live_credentials = set(
        Credential.objects.filter(pk__in=credential_ids).values_list("pk", flat=True)
    )
    ops = connection.ops
    meta = UsageRecord._meta
    columns = ", ".join(ops.quote_name(meta.get_field(name).column) for name in ROW_COLUMNS)
    sql = (
        f"INSERT INTO {ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(ROW_COLUMNS))})"
    )
    cost_field = meta.get_field("cost")
    created_at = _sqlite_time if connection.vendor == "sqlite" else _aware_time
    values = []
    for row in batch:
        value = list(row)
        value[0] = created_at(row[0])
        if value[_KEY] not in live_keys:
            value[_KEY] = None
        if value[_CREDENTIAL] not in live_credentials:
            value[_CREDENTIAL] = None
        if value[_COST] is not None:
            value[_COST] = ops.adapt_decimalfield_value(
                value[_COST], cost_field.max_digits, cost_field.decimal_places
            )
        values.append(value)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(values), INSERT_BATCH):
            cursor.executemany(sql, values[start : start + INSERT_BATCH])
    return len(values)


_EPOCH = datetime(1970, 1, 1)


def _sqlite_time(epoch: float) -> str:
    # What Django's SQLite backend stores for an aware time (UTC, naive, as text), without its
    # per-value timezone calls: they were a third of a flush's Python.
    return str(_EPOCH + timedelta(seconds=epoch))


def _aware_time(epoch: float) -> datetime:
    return connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(epoch, tz=UTC))


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
