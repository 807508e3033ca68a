"""Adding up the metrics of several workers (claude_api.metrics_share): the pure merge, and the
directory through which a supervisor's workers share snapshots and retire exited workers."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import threading
from fractions import Fraction

import pytest

from claude_api import metrics_share as share
from claude_api.metrics_share import Buckets, Family

REQUESTS = "claude_proxy_requests_total"
COST = "claude_proxy_cost_usd_total"
LATENCY = "claude_proxy_request_duration_seconds"
PENDING = "claude_proxy_ledger_pending"
BOUNDS = (0.1, 1.0, math.inf)


def histogram(*values: float, bounds=BOUNDS) -> Buckets:
    counts = dict.fromkeys(bounds, 0)
    for value in values:
        counts[next(bound for bound in bounds if value <= bound)] += 1
    return Buckets(counts, sum(values, 0.0), len(values))


def worker(
    requests: dict | None = None,
    cost: dict | None = None,
    latency: dict | None = None,
    pending: int = 0,
) -> share.Totals:
    return {
        REQUESTS: Family("counter", ("status", "client_key"), dict(requests or {})),
        COST: Family("counter", ("client_key",), dict(cost or {})),  # floats, as a worker has them
        LATENCY: Family("histogram", ("provider",), dict(latency or {})),
        PENDING: Family("gauge", (), {(): pending}),
    }


def value(totals: share.Totals, name: str, *key: str):
    return totals[name].samples.get(tuple(key))


# Merge ---------------------------------------------------------------------------------------


def test_counters_with_the_same_labels_add_up_and_other_label_sets_are_kept_apart():
    a = worker({("200", "alice"): 3, ("429", "alice"): 1})
    b = worker({("200", "alice"): 4, ("200", "bob"): 2})
    merged = share.merge([a, b])
    assert merged[REQUESTS].samples == {
        ("200", "alice"): 7,
        ("429", "alice"): 1,
        ("200", "bob"): 2,
    }
    assert a[REQUESTS].samples[("200", "alice")] == 3  # the parts are left as they were


def test_histograms_add_up_bucket_by_bucket():
    a = worker(latency={("anthropic",): histogram(0.05, 0.5, 3.0)})
    b = worker(latency={("anthropic",): histogram(0.07, 0.2), ("gemini",): histogram(9.0)})
    merged = share.merge([a, b])
    anthropic = value(merged, LATENCY, "anthropic")
    assert anthropic.counts == {0.1: 2, 1.0: 2, math.inf: 1}
    assert anthropic.count == 5
    assert float(anthropic.total) == pytest.approx(3.82)
    assert value(merged, LATENCY, "gemini").counts == {0.1: 0, 1.0: 0, math.inf: 1}
    assert value(a, LATENCY, "anthropic").count == 3  # not mutated by the merge


def test_histograms_with_other_bounds_add_up_by_bound():
    # A rolling restart onto code with other buckets: each count stays in its own bound.
    old = worker(latency={("p",): histogram(0.05, 0.5, bounds=(0.1, 1.0, math.inf))})
    new = worker(latency={("p",): histogram(0.3, 4.0, bounds=(0.5, 5.0, math.inf))})
    merged = value(share.merge([new, old]), LATENCY, "p")
    assert merged.counts == {0.1: 1, 0.5: 1, 1.0: 1, 5.0: 1, math.inf: 0}
    assert merged.count == 4


def test_a_family_with_other_label_names_is_relabelled_into_the_first_parts_names():
    new = {REQUESTS: Family("counter", ("status", "client_key"), {("200", "alice"): 1})}
    old = {
        REQUESTS: Family("counter", ("client_key", "region", "status"), {("alice", "eu", "200"): 2})
    }
    older = {REQUESTS: Family("counter", ("status",), {("200",): 5})}
    merged = share.merge([new, old, older])
    assert merged[REQUESTS].labels == ("status", "client_key")
    assert merged[REQUESTS].samples == {("200", "alice"): 3, ("200", ""): 5}


def test_a_family_of_another_kind_is_left_out():
    counter = {REQUESTS: Family("counter", (), {(): 2})}
    gauge = {REQUESTS: Family("gauge", (), {(): 7})}
    assert share.merge([counter, gauge])[REQUESTS].samples == {(): 2}


def test_float_counters_add_up_exactly_whatever_the_order():
    costs = [0.1, 0.2, 0.3, 1e-8, 123.456, 7e-9, 0.7]
    parts = [worker(cost={("alice",): c}) for c in costs]
    rounded = {
        float(value(share.merge(order), COST, "alice"))
        for order in (parts, parts[::-1], parts[3:] + parts[:3])
    }
    assert rounded == {math.fsum(costs)}


def test_retiring_a_worker_keeps_its_counters_and_drops_its_gauges():
    finished = worker({("200", "alice"): 5}, {("alice",): 0.1}, pending=3)
    retired = share.retire(None, finished)
    assert PENDING not in retired
    retired = share.retire(retired, worker({("200", "alice"): 2}, {("alice",): 0.2}, pending=9))
    assert value(retired, REQUESTS, "200", "alice") == 7
    assert value(retired, COST, "alice") == Fraction(0.1) + Fraction(0.2)
    live = worker({("200", "alice"): 1}, pending=4)
    merged = share.merge([live, retired])
    assert value(merged, REQUESTS, "200", "alice") == 8
    assert value(merged, PENDING) == 4  # live workers' only


def test_snapshots_survive_json_exactly():
    totals = worker(
        {("200", 'we"ird\nkey'): 3},
        {("alice",): 0.1},
        {("anthropic",): histogram(0.05, 700.0)},
        pending=2,
    )
    totals[COST].samples[("bob",)] = Fraction(1, 3)  # a retired sum: finer than any float
    again = share.from_json(json.loads(json.dumps(share.to_json(totals))))
    assert again == totals


@pytest.mark.parametrize(
    "broken",
    [
        {"schema": 99, "families": {}},
        {
            "schema": 1,
            "families": {"x": {"kind": "counter", "labels": ["a"], "samples": [[[], 1]]}},
        },
        {"schema": 1, "families": {"x": {"kind": "counter", "labels": [], "samples": [[[], []]]}}},
    ],
)
def test_a_snapshot_it_did_not_write_is_refused(broken):
    with pytest.raises((ValueError, KeyError, TypeError)):
        share.from_json(broken)


# The shared directory ------------------------------------------------------------------------


def test_a_scrape_adds_every_workers_snapshot_and_the_retired_ones(tmp_path):
    share.publish(tmp_path, "0", worker({("200", "alice"): 10}, pending=1))
    share.publish(tmp_path, "1", worker({("200", "alice"): 20}, pending=2))
    share.retire_worker(tmp_path, "1")
    share.publish(tmp_path, "2", worker({("200", "bob"): 1}, pending=5))
    own = worker({("200", "alice"): 4}, pending=7)
    totals = share.exchange(tmp_path, "3", own)
    assert value(totals, REQUESTS, "200", "alice") == 34
    assert value(totals, REQUESTS, "200", "bob") == 1
    assert value(totals, PENDING) == 1 + 5 + 7  # worker 1 has exited
    # The answering worker's counts were published on the way, for the next scrape elsewhere.
    assert value(share.exchange(tmp_path, "0", worker()), REQUESTS, "200", "alice") == 24


def test_a_worker_published_again_replaces_its_last_snapshot(tmp_path):
    share.publish(tmp_path, "0", worker({("200", "alice"): 1}))
    share.publish(tmp_path, "0", worker({("200", "alice"): 6}))
    assert value(share.exchange(tmp_path, "9", worker()), REQUESTS, "200", "alice") == 6
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".lock",
        "worker-0.json",
        "worker-9.json",
    ]


def test_retired_workers_are_folded_into_one_file_however_many_restarts(tmp_path):
    for number in range(50):
        share.publish(tmp_path, str(number), worker({("200", "alice"): 1}, {("alice",): 0.1}))
        share.retire_worker(tmp_path, str(number))
    share.retire_worker(tmp_path, "never-wrote")  # a worker that died before its first snapshot
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "retired.json"]
    totals = share.exchange(tmp_path, "50", worker())
    assert value(totals, REQUESTS, "200", "alice") == 50
    assert float(value(totals, COST, "alice")) == math.fsum([0.1] * 50)


def test_an_unreadable_snapshot_is_skipped(tmp_path):
    (tmp_path / "worker-7.json").write_text('{"schema": 1, "fam')
    share.publish(tmp_path, "0", worker({("200", "alice"): 2}))
    assert value(share.exchange(tmp_path, "1", worker()), REQUESTS, "200", "alice") == 2


def test_totals_never_go_down_through_restarts_and_crashes(tmp_path):
    """Random traffic, snapshots, scrapes by random workers, clean exits and crashes: successive
    scrapes never report less, and the end total is every count that was ever published."""
    rng = random.Random(7)
    live: dict[str, dict] = {}  # worker -> its counts in memory
    published: dict[str, int] = {}  # worker -> requests in its last snapshot
    retired_requests = 0
    numbers = iter(range(10_000))

    def totals_of(counts: dict) -> share.Totals:
        return worker({("200", "k"): counts["n"]}, {("k",): counts["cost"]})

    def publish(name: str) -> None:
        share.publish(tmp_path, name, totals_of(live[name]))
        published[name] = live[name]["n"]

    for _ in range(3):
        live[str(next(numbers))] = {"n": 0, "cost": 0.0}
    last_requests, last_cost = 0, 0.0
    for _ in range(1000):
        action, name = rng.random(), rng.choice(sorted(live))
        if action < 0.5:
            live[name]["n"] += 1
            live[name]["cost"] += rng.choice([0.1, 0.003, 1e-7, 2.5])
        elif action < 0.7:
            publish(name)
        elif action < 0.9:
            totals = share.exchange(tmp_path, name, totals_of(live[name]))
            published[name] = live[name]["n"]
            requests, cost = value(totals, REQUESTS, "200", "k"), float(value(totals, COST, "k"))
            assert requests >= last_requests and cost >= last_cost
            last_requests, last_cost = requests, cost
        else:
            if rng.random() < 0.5:
                publish(name)  # a clean exit's last publish; a crash loses what was not published
            share.retire_worker(tmp_path, name)
            retired_requests += published.pop(name, 0)
            del live[name]
            live[str(next(numbers))] = {"n": 0, "cost": 0.0}
    for name in sorted(live):
        publish(name)
        share.retire_worker(tmp_path, name)
        retired_requests += published.pop(name)
    final = share.exchange(tmp_path, "last", worker())
    assert value(final, REQUESTS, "200", "k") == retired_requests >= last_requests
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",
        "retired.json",
        "worker-last.json",
    ]


def test_a_scrape_during_a_fold_counts_the_retired_worker_exactly_once(tmp_path):
    """Folds (the supervisor) racing scrapes (a worker's thread): every scrape sees each retired
    worker once, in its own file or in the retired totals."""
    seen: list[int] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            seen.append(value(share.exchange(tmp_path, "r", worker()), REQUESTS, "200", "k") or 0)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for number in range(200):
            share.publish(tmp_path, str(number), worker({("200", "k"): 1}))
            share.retire_worker(tmp_path, str(number))
    finally:
        done.set()
        scraper.join()
    assert len(seen) > 10
    assert seen == sorted(seen) and seen[-1] <= 200


def test_a_run_directory_is_fresh_and_what_dead_runs_left_is_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / "metrics" / f"run-{int(dead.stdout)}"
    stale.mkdir(parents=True)
    (stale / "worker-0.json").write_text("{}")
    other_live_run = tmp_path / "metrics" / f"run-{os.getppid()}"
    other_live_run.mkdir()
    directory = share.run_directory(tmp_path, os.getpid())
    assert directory == tmp_path / "metrics" / f"run-{os.getpid()}"
    assert list(directory.iterdir()) == []
    assert not stale.exists()
    assert other_live_run.exists()
    (directory / "worker-1.json").write_text("{}")
    assert list(share.run_directory(tmp_path, os.getpid()).iterdir()) == []  # our own pid: fresh
