"""SQL pieces the overview's aggregates need and Django lacks: time buckets of any width, and
percentiles.

Percentiles are "nearest rank" (the smallest value with at least that fraction of the values at
or below it: p50 of 10, 20, 30, 40 is 20), so both ways below give the same number:

- PostgreSQL: ``percentile_disc(p) WITHIN GROUP (ORDER BY …)``, an aggregate, so the
  percentiles come out of the same grouped query as the counts and sums.
- SQLite has no percentile aggregate. Rather than loading a period's latencies into Python
  (a 30-day period can hold millions of rows), ``percentiles_by_rank`` ranks the rows inside
  the database with window functions (``ROW_NUMBER`` and ``COUNT`` over each group) and keeps
  only the rows at the wanted ranks: two rows per group reach Python, whatever the period
  holds. The cost is one sort of the period's rows, done by SQLite. The same query runs on
  PostgreSQL, where the tests check that it agrees with ``percentile_disc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from django.db import NotSupportedError
from django.db.models import (
    Aggregate,
    BigIntegerField,
    Count,
    F,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Value,
    Window,
)
from django.db.models.functions import RowNumber


class EpochBucket(Func):
    """The start, in epoch seconds, of the ``seconds``-wide bucket a timestamp falls in (buckets
    aligned on multiples of ``seconds`` since the epoch, UTC)."""

    output_field = BigIntegerField()

    def __init__(self, expression: Any, seconds: int) -> None:
        if int(seconds) < 1:
            raise ValueError("a bucket is at least one second wide")
        self.seconds = int(seconds)
        super().__init__(expression)

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"EpochBucket is not implemented for {connection.vendor}")

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores SQLite datetimes as UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"), which
        # strftime reads; integer division floors (the epoch seconds are positive).
        sql, params = compiler.compile(self.source_expressions[0])
        n = self.seconds
        return f"((CAST(strftime('%%s', {sql}) AS INTEGER) / {n}) * {n})", params

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        n = self.seconds
        return f"(FLOOR(EXTRACT(EPOCH FROM {sql}) / {n}) * {n})::bigint", params


class PercentileDisc(Aggregate):
    """PostgreSQL's nearest-rank percentile, as an aggregate (``filter=`` becomes FILTER)."""

    function = "percentile_disc"
    name = "PercentileDisc"
    output_field = IntegerField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 < fraction <= 1:
            raise ValueError("a percentile's fraction is in (0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)

    def as_sql(self, compiler, connection, **extra_context):
        if connection.vendor != "postgresql":
            raise NotSupportedError("percentile_disc needs PostgreSQL")
        return super().as_sql(compiler, connection, **extra_context)


def has_percentile_aggregate(connection) -> bool:
    return connection.vendor == "postgresql"


def nearest_rank(count: int, fraction: float) -> int:
    """The 1-based rank holding the ``fraction`` percentile of ``count`` ordered values."""
    exact = Fraction(str(fraction)) * count
    rank = exact.numerator // exact.denominator
    if rank < exact:
        rank += 1
    return max(1, rank)


def percentile_of(values: Sequence[int], fraction: float) -> int | None:
    """The same definition over a list in memory (tests, and what a chart's tooltip says)."""
    if not values:
        return None
    return sorted(values)[nearest_rank(len(values), fraction) - 1]


def percentiles_by_rank(
    rows: QuerySet,
    group: Any,
    column: str,
    fractions: Iterable[float],
) -> dict[Any, dict[float, int]]:
    """``{group value: {fraction: percentile}}`` of ``column`` over ``rows``, ranked in the
    database (see the module's docstring). ``group`` is an expression (``F("model")``, an
    ``EpochBucket``) or None for one overall group, keyed None."""
    fractions = tuple(fractions)
    if not fractions:
        return {}
    partition = [group] if group is not None else None
    ranked = rows.annotate(
        _group=group if group is not None else Value(None, output_field=IntegerField()),
        _rank=Window(RowNumber(), partition_by=partition, order_by=F(column).asc()),
        _count=Window(Count("pk"), partition_by=partition),
    )
    # rank == ceil(count * p), in integers: p = a / b gives (count * a + b - 1) / b, which both
    # databases divide as integers.
    wanted = Q()
    for fraction in fractions:
        ratio = Fraction(str(fraction))
        a, b = ratio.numerator, ratio.denominator
        wanted |= Q(_rank=(F("_count") * a + (b - 1)) / b)
    found: dict[Any, dict[float, int]] = {}
    for group_value, rank, count, value in ranked.filter(wanted).values_list(
        "_group", "_rank", "_count", column
    ):
        per_group = found.setdefault(group_value, {})
        for fraction in fractions:
            if nearest_rank(count, fraction) == rank:
                per_group[fraction] = value
    return found
