"""How long the admin overview takes to compute on a large ledger; prints a table.

    .venv/bin/python bench/overview.py [--rows 300000] [--postgres postgres://postgres@127.0.0.1:5432/postgres]

Fills a fresh database (SQLite in a temp directory; with --postgres, a throwaway database on that
server, dropped afterwards) with ``--rows`` usage records spread over 30 days, oldest first (20
keys, 10 credentials, 6 models, 5 % errors), then times the overview for each period, total and split
by model, and the pool's state. The overview's queries are grouped in the database, so the time
grows with the rows the period holds, never with rows loaded into Python.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def throwaway_postgres(url: str) -> tuple[str, callable]:
    import psycopg

    name = f"bench_overview_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name)), drop


def fill(rows: int, now: datetime) -> None:
    from accounts.models import UsageRecord

    rng = random.Random(7)
    keys = [f"key-{i:02d}" for i in range(20)]
    credentials = [f"credential-{i}" for i in range(10)]
    models = [
        "claude-sonnet-4-6",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "gpt-5",
        "o4",
    ]
    span = 30 * 86400
    # Oldest first, as the workers' flushes write them (a table filled in random time order
    # makes every range read jump around the file).
    ages = sorted((rng.randrange(span) for _ in range(rows)), reverse=True)
    batch = []
    for i, age in enumerate(ages):
        failed = rng.random() < 0.05
        batch.append(
            UsageRecord(
                created_at=now - timedelta(seconds=age),
                request_id=f"req_{i:024x}",
                endpoint="messages",
                client_key_name=rng.choice(keys),
                credential_label=rng.choice(credentials),
                provider="anthropic",
                model=rng.choice(models),
                status=rng.choice([429, 500, 529]) if failed else 200,
                input_tokens=0 if failed else rng.randrange(10, 5000),
                output_tokens=0 if failed else rng.randrange(1, 2000),
                cache_read_tokens=0 if failed else rng.randrange(0, 50000),
                cost=None if failed else Decimal(rng.randrange(1, 10**6)) / 10**8,
                latency_ms=rng.randrange(5, 100) if failed else int(rng.lognormvariate(7, 1)),
            )
        )
        if len(batch) == 5000:
            UsageRecord.objects.bulk_create(batch)
            batch.clear()
    UsageRecord.objects.bulk_create(batch)


def timed(call, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--postgres", help="a server URL: a throwaway database is made there")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-overview-"))
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxysite.settings")
    drop = None
    if args.postgres:
        os.environ["DATABASE_URL"], drop = throwaway_postgres(args.postgres)
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from dashboard import overview, periods, pool_state

        call_command("migrate", verbosity=0)
        now = datetime.now(tz=UTC)
        started = time.perf_counter()
        fill(args.rows, now)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # What autovacuum does soon after a large insert: without statistics the planner
                # scans the whole table even for the last hour.
                cursor.execute("ANALYZE accounts_usagerecord")
        print(
            f"{connection.vendor}: {args.rows:,} usage records over 30 days "
            f"(filled in {time.perf_counter() - started:.0f} s)\n"
        )
        print(f"{'what':44} {'median ms':>10}")
        print(f"{'-' * 44} {'-' * 10}")
        for period in periods.PERIODS.values():
            for split in ("", "model"):
                ms = timed(
                    lambda p=period, s=split: overview.build(p, s, now.timestamp()), args.repeat
                )
                label = f"overview {period.label}" + (f", by {split}" if split else "")
                print(f"{label:44} {ms:10.1f}")
        ms = timed(pool_state.build, args.repeat)
        print(f"{'pool state':44} {ms:10.1f}")
    finally:
        if drop is not None:
            drop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
