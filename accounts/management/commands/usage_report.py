from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from accounts import usage

COLUMNS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "unpriced",
)
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` back from now, or a date / ISO timestamp (UTC)."""
    match = re.fullmatch(r"(\d+)([mhdw])", value.strip())
    if match:
        return now - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--since {value!r}: give a span such as 7d, 12h, 30m or 2w, or a date (2026-12-01)."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:.4f}"
    return str(value)


class Command(BaseCommand):
    help = (
        "Requests, tokens and cost from the usage ledger, per client key, credential, model or "
        "day. 'cost' sums the requests with a known price; 'unpriced' counts the others."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", default="7d", help="7d, 12h, 30m, 2w or a date.")
        parser.add_argument("--by", choices=sorted(usage.GROUPINGS), default="key")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")

    def handle(self, *args, since: str, by: str, format: str, **options) -> None:
        start = parse_since(since, datetime.now(tz=UTC))
        rows = usage.report(start, by)
        header = (by, *COLUMNS)
        if format == "json":
            data = {
                "since": start.isoformat(),
                "by": by,
                "rows": [
                    {
                        name: (str(row[name]) if isinstance(row[name], Decimal) else row[name])
                        for name in header
                    }
                    for row in rows
                ],
            }
            self.stdout.write(json.dumps(data, indent=2))
            return
        if format == "csv":
            writer = csv.writer(self.stdout, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if row[n] is None else row[n] for n in header])
            return
        cells = [[_cell(row[name]) for name in header] for row in rows]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
        self.stdout.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for line in cells:
            self.stdout.write(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(line, widths, strict=True))
                )
            )
        if not cells:
            self.stdout.write(f"(no requests since {start:%Y-%m-%d %H:%M} UTC)")
