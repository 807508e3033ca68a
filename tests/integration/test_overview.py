"""The admin overview's figures, from known ledger rows: exact counts, tokens, cost and latency
percentiles per time bucket and per key, credential and model, on whichever database the pass
runs (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import F

from accounts.models import UsageRecord
from dashboard import overview, periods, sql

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
DAY = periods.PERIODS["24h"]


def record(at: datetime, key: str, credential: str, model: str, status: int = 200, **fields):
    defaults = {
        "request_id": f"req_{random.getrandbits(48):012x}",
        "endpoint": "messages",
        "provider": "anthropic",
        "upstream_model": model,
        "latency_ms": 0,
    }
    return UsageRecord.objects.create(
        created_at=at,
        client_key_name=key,
        credential_label=credential,
        model=model,
        status=status,
        **{**defaults, **fields},
    )


@pytest.fixture
def ledger():
    """Two keys over two 15-minute buckets, two errors, and a record too old to count."""
    sonnet, haiku = "claude-sonnet-4-6", "claude-haiku-4-5"
    at_11 = NOW - timedelta(minutes=59)  # bucket 11:00
    at_1145 = NOW - timedelta(minutes=10)  # bucket 11:45
    for latency in (100, 200, 300, 400):
        record(
            at_11,
            "alice",
            "primary",
            sonnet,
            input_tokens=10,
            output_tokens=5,
            cost=Decimal("0.001"),
            latency_ms=latency,
        )
    record(
        at_11 + timedelta(seconds=60),
        "alice",
        "backup",
        haiku,
        status=429,
        error_type="rate_limit_error",
        latency_ms=5,
    )
    for latency in (3000, 1000):
        record(
            at_1145,
            "bob",
            "primary",
            sonnet,
            input_tokens=100,
            output_tokens=50,
            cache_read_tokens=1000,
            cost=Decimal("0.0105"),
            latency_ms=latency,
        )
    record(at_1145, "bob", "primary", sonnet, status=500, error_type="api_error", latency_ms=50)
    record(NOW - timedelta(days=2), "alice", "primary", sonnet, input_tokens=999, latency_ms=9)


def build(split: str = "") -> dict:
    return overview.build(DAY, split, now=NOW.timestamp())


def bucket_index(data: dict, hour: int, minute: int) -> int:
    start = datetime(2026, 3, 10, hour, minute, tzinfo=UTC).timestamp()
    return data["starts"].index(int(start))


def test_totals_count_the_period_only_with_exact_tokens_cost_and_percentiles(ledger):
    totals = build()["totals"]

    assert totals == {
        "requests": 8,
        "errors": 2,
        "input_tokens": 240,
        "output_tokens": 120,
        "cache_read_tokens": 2000,
        "cache_write_tokens": 0,
        "cost": "0.025000",
        "unpriced": 2,
        # Answered requests only: 100 200 300 400 1000 3000 (nearest rank: 3rd and 6th).
        "p50": 300,
        "p95": 3000,
        "latency_sample_step": 1,
    }


def test_time_series_put_each_request_in_its_bucket(ledger):
    data = build()
    series = data["series"]
    at_11, at_1145 = bucket_index(data, 11, 0), bucket_index(data, 11, 45)
    answered, errors = series["requests"]
    assert answered["label"] == "answered" and errors["label"] == "errors"
    assert sum(answered["data"]) == 6 and sum(errors["data"]) == 2
    assert answered["data"][at_11] == 4 and errors["data"][at_11] == 1
    assert answered["data"][at_1145] == 2 and errors["data"][at_1145] == 1
    tokens = {entry["label"]: entry["data"] for entry in series["tokens"]}
    assert tokens["input"][at_11] == 40 and tokens["input"][at_1145] == 200
    assert tokens["cache read"][at_1145] == 2000 and sum(tokens["cache read"]) == 2000
    assert series["cost"][0]["data"][at_11] == pytest.approx(0.004)
    assert series["cost"][0]["data"][at_1145] == pytest.approx(0.021)
    latency = series["latency"]
    assert (latency["p50"][at_11], latency["p95"][at_11]) == (200, 400)
    assert (latency["p50"][at_1145], latency["p95"][at_1145]) == (1000, 3000)
    assert sum(v is not None for v in latency["p50"]) == 2  # no point where nothing answered


def test_buckets_cover_the_period_and_labels_are_utc(ledger):
    data = build()
    # 24 h in 15-minute buckets, the first one holding the period's start: 97 points.
    assert len(data["starts"]) == len(data["labels"]) == 97
    assert data["starts"][-1] == int(NOW.timestamp())
    assert data["labels"][bucket_index(data, 11, 45)] == "11:45"
    assert data["bucket_seconds"] == 900


def test_breakdowns_by_key_credential_and_model(ledger):
    breakdown = build()["breakdown"]

    def by_name(rows):
        return {row["name"]: row for row in rows}

    keys = by_name(breakdown["key"])
    assert [row["name"] for row in breakdown["key"]] == ["alice", "bob"]  # most requests first
    assert keys["alice"]["requests"] == 5 and keys["alice"]["errors"] == 1
    assert (keys["alice"]["p50"], keys["alice"]["p95"]) == (200, 400)
    assert keys["alice"]["cost"] == "0.004000" and keys["alice"]["unpriced"] == 1
    assert keys["bob"]["requests"] == 3 and keys["bob"]["cost"] == "0.021000"
    assert (keys["bob"]["p50"], keys["bob"]["p95"]) == (1000, 3000)
    assert keys["bob"]["input_tokens"] == 200 and keys["bob"]["cache_read_tokens"] == 2000

    credentials = by_name(breakdown["credential"])
    assert credentials["primary"]["requests"] == 7 and credentials["primary"]["errors"] == 1
    assert (credentials["primary"]["p50"], credentials["primary"]["p95"]) == (300, 3000)
    # Only an error went through "backup": no latency, and a cost nobody knows.
    assert credentials["backup"]["requests"] == 1
    assert credentials["backup"]["p50"] is None and credentials["backup"]["cost"] is None

    models = by_name(breakdown["model"])
    assert models["claude-sonnet-4-6"]["requests"] == 7
    assert models["claude-haiku-4-5"]["errors"] == 1


def test_errors_by_type_most_frequent_first(ledger):
    at = NOW - timedelta(minutes=1)
    record(at, "bob", "primary", "claude-sonnet-4-6", status=500, error_type="api_error")
    record(at, "bob", "primary", "claude-sonnet-4-6", status=502)
    assert build()["errors_by_type"] == [
        {"status": 500, "error_type": "api_error", "requests": 2},
        {"status": 429, "error_type": "rate_limit_error", "requests": 1},
        {"status": 502, "error_type": "—", "requests": 1},
    ]


def test_a_split_chart_draws_each_key_and_sums_errors_over_them(ledger):
    data = build("key")
    series = data["series"]
    at_11, at_1145 = bucket_index(data, 11, 0), bucket_index(data, 11, 45)
    requests = {entry["label"]: entry["data"] for entry in series["requests"]}
    assert list(requests) == ["alice", "bob"]
    assert requests["alice"][at_11] == 5 and requests["bob"][at_1145] == 3
    assert series["errors"][at_11] == 1 and series["errors"][at_1145] == 1
    tokens = {entry["label"]: entry["data"] for entry in series["tokens"]}
    assert tokens["bob"][at_1145] == 300  # input + output
    cost = {entry["label"]: entry["data"] for entry in series["cost"]}
    assert cost["alice"][at_11] == pytest.approx(0.004)


def test_a_split_chart_beyond_six_groups_sums_the_quietest_as_other():
    at = NOW - timedelta(minutes=5)
    for i in range(8):
        for _ in range(8 - i):
            record(at, f"key-{i}", "primary", "claude-sonnet-4-6", latency_ms=10)
    requests = build("key")["series"]["requests"]
    labels = [entry["label"] for entry in requests]
    assert labels == [f"key-{i}" for i in range(6)] + ["other (2)"]
    assert sum(requests[-1]["data"]) == 2 + 1


def test_an_empty_ledger_gives_zeros_and_no_percentiles():
    data = build()
    assert data["totals"]["requests"] == 0 and data["totals"]["p50"] is None
    assert data["totals"]["cost"] is None
    assert data["breakdown"] == {"key": [], "credential": [], "model": []}
    assert all(v is None for v in data["series"]["latency"]["p95"])


def test_the_query_count_does_not_grow_with_the_ledger(django_assert_max_num_queries, ledger):
    with django_assert_max_num_queries(12) as few:
        build("model")
    at = NOW - timedelta(minutes=30)
    UsageRecord.objects.bulk_create(
        UsageRecord(
            created_at=at,
            request_id=f"req_{i}",
            endpoint="messages",
            client_key_name=f"key-{i % 3}",
            credential_label="primary",
            model="claude-sonnet-4-6",
            status=200,
            latency_ms=i,
        )
        for i in range(500)
    )
    with django_assert_max_num_queries(len(few.captured_queries)):
        data = build("model")
    assert data["totals"]["requests"] == 508


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL ranks every row")
def test_past_the_sample_size_sqlite_ranks_every_kth_record(monkeypatch, ledger):
    # 6 answered requests, ranked 3 at a time: every 2nd record by id.
    monkeypatch.setattr(overview, "SAMPLE_ROWS", 3)
    data = build()
    assert data["totals"]["latency_sample_step"] == 2
    ids = UsageRecord.objects.filter(status__lt=400, created_at__gte=NOW - timedelta(days=1))
    sampled = [r.latency_ms for r in ids if r.pk % 2 == 0]
    assert data["totals"]["p50"] == sql.percentile_of(sampled, 0.5)
    assert data["totals"]["p95"] == sql.percentile_of(sampled, 0.95)


def random_ledger(n: int = 300) -> None:
    rng = random.Random(12)
    start = NOW - timedelta(hours=3)
    UsageRecord.objects.bulk_create(
        UsageRecord(
            created_at=start + timedelta(seconds=rng.randrange(3 * 3600)),
            request_id=f"req_{i}",
            endpoint="messages",
            client_key_name=rng.choice(["a", "b", "c"]),
            credential_label="primary",
            model=rng.choice(["m1", "m2"]),
            status=rng.choice([200, 200, 200, 429]),
            latency_ms=rng.randrange(1, 5000),
        )
        for i in range(n)
    )


def test_ranked_percentiles_match_the_definition_on_random_rows():
    random_ledger()
    rows = UsageRecord.objects.filter(status__lt=400)
    ranked = sql.percentiles_by_rank(rows, F("client_key_name"), "latency_ms", (0.5, 0.95, 0.99))
    for key in ("a", "b", "c"):
        values = list(rows.filter(client_key_name=key).values_list("latency_ms", flat=True))
        for fraction in (0.5, 0.95, 0.99):
            assert ranked[key][fraction] == sql.percentile_of(values, fraction)
    overall = sql.percentiles_by_rank(rows, None, "latency_ms", (0.5,))
    assert overall[None][0.5] == sql.percentile_of(
        list(rows.values_list("latency_ms", flat=True)), 0.5
    )


@pytest.mark.postgres
def test_postgres_percentile_disc_agrees_with_the_ranking_query():
    random_ledger()
    rows = UsageRecord.objects.filter(status__lt=400)
    native = {
        row["model"]: row
        for row in rows.values("model").annotate(
            p50=sql.PercentileDisc("latency_ms", 0.5), p95=sql.PercentileDisc("latency_ms", 0.95)
        )
    }
    ranked = sql.percentiles_by_rank(rows, F("model"), "latency_ms", (0.5, 0.95))
    for model in ("m1", "m2"):
        assert (native[model]["p50"], native[model]["p95"]) == (
            ranked[model][0.5],
            ranked[model][0.95],
        )
    assert connection.vendor == "postgresql"


@pytest.mark.parametrize(
    ("count", "fraction", "rank"),
    [
        (1, 0.5, 1),
        (2, 0.5, 1),
        (3, 0.5, 2),
        (4, 0.5, 2),
        (6, 0.95, 6),
        (20, 0.95, 19),
        (100, 0.95, 95),
    ],
)
def test_nearest_rank(count, fraction, rank):
    assert sql.nearest_rank(count, fraction) == rank


# The page -----------------------------------------------------------------------------------


def staff(username: str, *permissions: str):
    user = get_user_model().objects.create_user(username, password="pw-overview-1", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_the_front_page_is_the_overview_with_its_figures_and_the_models_below(client):
    an_hour_ago = datetime.now(tz=UTC) - timedelta(hours=1)
    for _ in range(3):
        record(an_hour_ago, "alice", "primary", "claude-sonnet-4-6", input_tokens=7)
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    response = client.get("/admin/?period=30d&split=credential")
    assert response.status_code == 200
    page = response.content.decode()
    data = json.loads(
        page.split('id="overview-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["period"] == "30d" and data["split"] == "credential"
    assert data["totals"]["requests"] == 3 and data["totals"]["input_tokens"] == 21
    assert data["breakdown"]["credential"][0]["name"] == "primary"
    assert 'id="pool-data"' in page and 'data-live-url="/admin/live/"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "cdn" not in page.lower()
    assert 'href="/admin/accounts/credential/"' in page  # the app list, below the overview
    assert 'href="/admin/models/"' in page
    assert client.get("/admin/models/").status_code == 200


def test_an_unknown_period_falls_back_to_24_hours(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    page = client.get("/admin/?period=1y&split=bogus").content.decode()
    data = json.loads(
        page.split('id="overview-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["period"] == "24h" and data["split"] == ""


def test_a_staff_user_sees_only_what_their_permissions_allow(client):
    client.force_login(staff("viewer"))
    page = client.get("/admin/").content.decode()
    assert 'id="overview-data"' not in page and 'id="pool-data"' not in page
    client.force_login(staff("ops", "view_credential"))
    page = client.get("/admin/").content.decode()
    assert 'id="pool-data"' in page and 'id="overview-data"' not in page
    client.force_login(staff("accountant", "view_usagerecord"))
    page = client.get("/admin/").content.decode()
    assert 'id="overview-data"' in page and 'id="pool-data"' not in page


def test_the_overview_needs_a_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
