"""The overview's periods and splits: what the picker offers, the time buckets of each, and the
labels under a chart. Pure: no database, no clock of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # the ?period= value
    label: str
    seconds: int
    bucket: int  # seconds per chart point
    label_format: str  # strftime, UTC

    def window(self, now: float) -> tuple[float, list[int]]:
        """(start of the period, start of each bucket): buckets aligned on multiples of their
        width since the epoch (as EpochBucket computes them), the first one holding the
        period's start and the last one holding ``now``."""
        since = now - self.seconds
        first = int(since // self.bucket) * self.bucket
        last = int(now // self.bucket) * self.bucket
        return since, list(range(first, last + 1, self.bucket))

    def labels(self, starts: list[int]) -> list[str]:
        return [datetime.fromtimestamp(s, tz=UTC).strftime(self.label_format) for s in starts]


PERIODS = {
    p.key: p
    for p in (
        Period("1h", "1 hour", 3600, 60, "%H:%M"),
        Period("24h", "24 hours", 86400, 900, "%H:%M"),
        Period("7d", "7 days", 7 * 86400, 3 * 3600, "%a %d %H:%M"),
        Period("30d", "30 days", 30 * 86400, 12 * 3600, "%b %d %H:%M"),
    )
}
DEFAULT_PERIOD = "24h"

# What the time series are split by: the ledger's column for each.
SPLITS = {
    "": ("Total", None),
    "key": ("By client key", "client_key_name"),
    "credential": ("By credential", "credential_label"),
    "model": ("By model", "model"),
}


def period(key: str | None) -> Period:
    return PERIODS.get(key or "", PERIODS[DEFAULT_PERIOD])


def split(key: str | None) -> str:
    return key if key in SPLITS else ""
