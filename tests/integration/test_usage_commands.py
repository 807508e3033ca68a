"""manage.py usage_report and prune_usage over a ledger written by hand."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from accounts.models import UsageRecord

pytestmark = pytest.mark.django_db

NOW = datetime.now(tz=UTC)


def record(days_ago: float, key: str, model: str, cost: str | None, **fields) -> UsageRecord:
    return UsageRecord.objects.create(
        created_at=NOW - timedelta(days=days_ago),
        request_id=f"req_{key}_{days_ago}",
        endpoint="messages",
        client_key_name=key,
        credential_label=fields.pop("credential", "pool-a"),
        model=model,
        status=fields.pop("status", 200),
        input_tokens=fields.pop("input_tokens", 100),
        output_tokens=fields.pop("output_tokens", 10),
        cost=None if cost is None else Decimal(cost),
        **fields,
    )


@pytest.fixture
def ledger():
    record(0.1, "alice", "claude-sonnet-4-6", "0.50")
    record(1.2, "alice", "claude-sonnet-4-6", "0.25", status=429)
    record(2.5, "bob", "house-model", None, credential="pool-b")
    record(30, "alice", "claude-sonnet-4-6", "9.00")  # outside --since 7d


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


def test_it_reports_per_key_as_json_with_unpriced_requests_apart(ledger):
    rows = json.loads(run("--since", "7d", "--by", "key", "--format", "json"))["rows"]
    assert rows == [
        {
            "key": "alice",
            "requests": 2,
            "errors": 1,
            "input_tokens": 200,
            "output_tokens": 20,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost": "0.75000000",
            "unpriced": 0,
        },
        {
            "key": "bob",
            "requests": 1,
            "errors": 0,
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost": None,
            "unpriced": 1,
        },
    ]


def test_it_reports_per_day_as_csv(ledger):
    rows = list(
        csv.DictReader(io.StringIO(run("--since", "40d", "--by", "day", "--format", "csv")))
    )
    assert [row["requests"] for row in rows] == ["1", "1", "1", "1"]
    assert rows[0]["day"] == (NOW - timedelta(days=30)).date().isoformat()
    assert rows[-1]["cost"] == "0.50000000"


def test_it_prints_a_table_per_credential(ledger):
    lines = run("--by", "credential").splitlines()
    assert lines[0].split() == [
        "credential",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost",
        "unpriced",
    ]
    assert lines[1].split() == ["pool-a", "2", "1", "200", "20", "0", "0", "0.7500", "0"]
    assert lines[2].split() == ["pool-b", "1", "0", "100", "10", "0", "0", "-", "1"]


def test_it_refuses_a_since_it_cannot_read():
    with pytest.raises(CommandError, match="--since"):
        run("--since", "last tuesday")


def test_it_prunes_records_older_than_the_retention(ledger, settings):
    settings.USAGE_RETENTION_DAYS = 7
    out = io.StringIO()
    call_command("prune_usage", stdout=out)
    assert "pruned 1 usage record(s)" in out.getvalue()
    assert UsageRecord.objects.count() == 3
    call_command("prune_usage", "--days", "2", stdout=out)
    assert UsageRecord.objects.count() == 2


def test_it_keeps_everything_with_a_retention_of_zero(ledger, settings):
    settings.USAGE_RETENTION_DAYS = 0
    call_command("prune_usage", stdout=io.StringIO())
    assert UsageRecord.objects.count() == 4


def test_it_prunes_limit_counters_of_windows_long_past():
    from accounts.models import ClientKey, LimitCounter

    key, _ = ClientKey.issue("team")
    now = int(NOW.timestamp())
    LimitCounter.objects.create(client_key=key, name="tokens", window=now - 40 * 86400, value=5)
    LimitCounter.objects.create(client_key=key, name="tokens", window=now - 86400, value=5)
    LimitCounter.objects.create(client_key=key, name="inflight:req_old", window=now - 7200)
    LimitCounter.objects.create(client_key=key, name="inflight:req_new", window=now - 10)
    out = io.StringIO()
    call_command("prune_usage", stdout=out)
    assert "2 limit counter(s)" in out.getvalue()
    assert sorted(LimitCounter.objects.values_list("name", "window")) == [
        ("inflight:req_new", now - 10),
        ("tokens", now - 86400),
    ]
