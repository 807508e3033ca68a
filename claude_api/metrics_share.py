"""Metric totals that the workers of one server add up: the merge (pure), and the directory
through which a supervisor's workers share their snapshots.

``make serve WORKERS=N`` runs N daphne processes behind one listening socket, so a scrape lands on
one of them at random. For every scrape to report the whole server, each worker writes a
snapshot of its counters into a directory its supervisor gives it (``PROXY_METRICS_DIR``), on a
timer and at its last flush; the worker that answers a scrape writes its own snapshot first,
then adds up every snapshot in the directory. What a scrape reports therefore always comes from
files whose counts only grow, and no counter goes down:

- a worker's snapshot is replaced atomically (temp file + rename) by a newer one, whose counts
  are at least as high; a worker that crashes loses only what it counted since its last
  snapshot, which no scrape has reported;
- once a worker has exited (rolling restart, crash) the supervisor folds its last snapshot into
  ``retired.json`` and deletes it, under an exclusive lock that readers take shared, so a reader
  sees a retired worker's counts exactly once, and the directory holds one file per live worker
  however many restarts there were;
- float counters (cost, histogram sums) are added exactly (as fractions) and rounded only when
  rendered: the order in which the parts are added cannot make a total drop by a rounding step,
  which Prometheus would take for a counter reset.

Gauges are added over the live workers only (a retired worker's gauges are dropped when it is
folded). No Django here: the supervisor imports this module too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

logger = logging.getLogger(__name__)

# The snapshots' format. During a rolling restart old and new workers read each other's files:
# a new format needs a reader that still reads the previous one, or totals drop for that while.
SCHEMA = 1
RETIRED = "retired.json"
LOCK = ".lock"
WORKER_PREFIX = "worker-"
RUN_PREFIX = "run-"

# A worker's own totals hold its float counters as floats; added up, they become fractions.
Number = int | float | Fraction


@dataclass
class Buckets:
    """One histogram: observations per bucket (not cumulative), by upper bound (``math.inf``
    for the last), their sum and their count."""

    counts: dict[float, int]
    total: Number
    count: int

    def add(self, other: Buckets) -> None:
        # Bucket by bucket, by bound: workers of different code may have different bounds.
        for bound, count in other.counts.items():
            self.counts[bound] = self.counts.get(bound, 0) + count
        self.total = exact(self.total) + exact(other.total)
        self.count += other.count


@dataclass
class Family:
    """One metric's samples, keyed by their label values in the order of ``labels``."""

    kind: str  # "counter", "gauge" or "histogram"
    labels: tuple[str, ...]
    samples: dict[tuple[str, ...], Number | Buckets] = field(default_factory=dict)


Totals = dict[str, Family]


def exact(value: Number) -> int | Fraction:
    """A sample value that adds up without rounding."""
    kind = type(value)  # not isinstance: Fraction's abstract base makes that slow
    if kind is int or kind is Fraction:
        return value
    if kind is float:
        return Fraction(value)
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"not a sample value: {value!r}")


def _relabel(
    key: tuple[str, ...], source: tuple[str, ...], target: tuple[str, ...]
) -> tuple[str, ...]:
    if source == target:
        return key
    values = dict(zip(source, key, strict=True))
    return tuple(values.get(name, "") for name in target)


def _copy(value: Number | Buckets) -> int | Fraction | Buckets:
    if isinstance(value, Buckets):
        return Buckets(dict(value.counts), exact(value.total), value.count)
    return exact(value)


def add_into(target: Totals, part: Totals) -> None:
    """Add ``part`` to ``target``: samples with the same labels are summed (histograms bucket by
    bucket). A family ``target`` has with other label names (a worker running other code) is
    relabelled into ``target``'s names; one of another kind is left out."""
    for name, family in part.items():
        into = target.get(name)
        if into is None:
            into = target[name] = Family(family.kind, family.labels)
        if into.kind != family.kind:
            logger.warning(
                "metric %s is a %s here and a %s elsewhere", name, into.kind, family.kind
            )
            continue
        for key, value in family.samples.items():
            key = _relabel(key, family.labels, into.labels)
            present = into.samples.get(key)
            if present is None:
                into.samples[key] = _copy(value)
            elif isinstance(present, Buckets):
                if isinstance(value, Buckets):
                    present.add(value)
            elif not isinstance(value, Buckets):
                into.samples[key] = present + exact(value)


def merge(parts: Iterable[Totals]) -> Totals:
    """The sum of ``parts``, exact (float counters become fractions); the first part a family
    appears in decides its label names."""
    result: Totals = {}
    for part in parts:
        add_into(result, part)
    return result


def retire(retired: Totals | None, finished: Totals) -> Totals:
    """``retired`` with a finished worker's last totals added; gauges are left out (they
    describe live workers)."""
    result = merge([finished, retired or {}])
    return {name: family for name, family in result.items() if family.kind != "gauge"}


# JSON ----------------------------------------------------------------------------------------


def _encode_number(value: Number) -> int | float | str:
    # Floats as JSON numbers (Python writes and reads them back exactly); fractions, finer than
    # any float, as "p/q" strings.
    return str(value) if type(value) is Fraction else value


def _decode_number(value: object) -> Number:
    if isinstance(value, str):
        return Fraction(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return exact(value)
    raise ValueError(f"not a number: {value!r}")


def _encode_value(value: Number | Buckets) -> object:
    if isinstance(value, Buckets):
        return {
            "buckets": [
                ["+Inf" if math.isinf(bound) else bound, count]
                for bound, count in sorted(value.counts.items())
            ],
            "sum": _encode_number(value.total),
            "count": value.count,
        }
    return _encode_number(value)


def _decode_value(value: object) -> Number | Buckets:
    if isinstance(value, dict):
        return Buckets(
            {
                (math.inf if bound == "+Inf" else float(bound)): int(count)
                for bound, count in value["buckets"]
            },
            _decode_number(value["sum"]),
            int(value["count"]),
        )
    return _decode_number(value)


def to_json(totals: Totals) -> dict:
    return {
        "schema": SCHEMA,
        "families": {
            name: {
                "kind": family.kind,
                "labels": list(family.labels),
                "samples": [[list(key), _encode_value(v)] for key, v in family.samples.items()],
            }
            for name, family in totals.items()
        },
    }


def from_json(data: dict) -> Totals:
    """Raises ValueError (or KeyError, TypeError) for what ``to_json`` did not write."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"unknown snapshot schema {data.get('schema')!r}")
    totals: Totals = {}
    for name, family in data["families"].items():
        labels = tuple(str(label) for label in family["labels"])
        samples: dict[tuple[str, ...], Number | Buckets] = {}
        for key, value in family["samples"]:
            key = tuple(str(part) for part in key)
            if len(key) != len(labels):
                raise ValueError(f"{name}: {len(key)} label values for {len(labels)} labels")
            samples[key] = _decode_value(value)
        totals[name] = Family(str(family["kind"]), labels, samples)
    return totals


# The shared directory -------------------------------------------------------------------------


def _worker_file(directory: Path, worker: str) -> Path:
    return directory / f"{WORKER_PREFIX}{worker}.json"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _read(path: Path) -> Totals | None:
    """A snapshot, or None if there is none (or an unreadable one, which is logged)."""
    try:
        return from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the metrics snapshot %s: %s", path, exc)
        return None


@contextlib.contextmanager
def _locked(directory: Path, operation: int):
    with open(directory / LOCK, "a") as lock:
        fcntl.flock(lock, operation)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def publish(directory: Path, worker: str, totals: Totals) -> None:
    """Replace ``worker``'s snapshot with ``totals`` (which must be at least its last ones)."""
    _write_atomically(_worker_file(directory, worker), json.dumps(to_json(totals)))


def exchange(directory: Path, worker: str, totals: Totals) -> Totals:
    """Publish this worker's ``totals``, then return the server's: these plus every other
    worker's latest snapshot plus the retired workers'. Blocking (file I/O)."""
    publish(directory, worker, totals)
    own = _worker_file(directory, worker).name
    parts = [totals]
    with _locked(directory, fcntl.LOCK_SH):
        # Under the shared lock no fold runs, so a retired worker is counted either in its own
        # file or in the retired file, never in both or neither.
        for path in sorted(directory.glob(f"{WORKER_PREFIX}*.json")):
            if path.name != own and (snapshot := _read(path)) is not None:
                parts.append(snapshot)
        if (retired := _read(directory / RETIRED)) is not None:
            parts.append(retired)
    return merge(parts)


def retire_worker(directory: Path, worker: str) -> None:
    """Fold an exited worker's last snapshot into the retired totals and delete it (the
    supervisor, once the worker's process has ended)."""
    path = _worker_file(directory, worker)
    with _locked(directory, fcntl.LOCK_EX):
        finished = _read(path)
        if finished is not None:
            retired = retire(_read(directory / RETIRED), finished)
            _write_atomically(directory / RETIRED, json.dumps(to_json(retired)))
        path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)


def run_directory(data_dir: Path, pid: int) -> Path:
    """A fresh, empty directory for one supervisor run (``pid``), under ``data_dir/metrics``;
    what runs that are no longer running left behind is removed."""
    parent = data_dir / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f"{RUN_PREFIX}*"):
        owner = stale.name.removeprefix(RUN_PREFIX)
        if owner.isdigit() and (int(owner) == pid or not _running(int(owner))):
            shutil.rmtree(stale, ignore_errors=True)
    directory = parent / f"{RUN_PREFIX}{pid}"
    directory.mkdir()
    return directory


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
