"""Prometheus metrics, in the text exposition format (no client library).

Each daphne process counts its own requests in memory (``observe`` is called once per request
by ``Dispatch.finish``, a few dict updates; nothing else happens per request) and serves them at
``/metrics``.

Under the supervisor (``make serve WORKERS=N``, proxysite.workers) the workers share one port, so
a scrape reaches one of them at random; every worker then reports the whole server's counters:
each writes a snapshot of its counters to the directory the supervisor gives it
(``PROXY_METRICS_DIR``) every ``STATS_FLUSH_SECONDS`` and at its last flush, and the one that
answers a scrape writes its own and adds up all of them, plus the workers that have exited
(claude_api.metrics_share). Counters never go down across rolling restarts or a crashed worker;
the ledger's pending records are summed over the live workers; credential states are the
answering worker's (every worker reads the same quota board). A single daphne reports its own
counters. The durable per-request record is the usage ledger; these are for rates and alerts.

Labels never carry secrets: client keys by name, credentials by label.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import logging
import math
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from django.conf import settings

from accounts.pool import pool
from accounts.usage import RequestOutcome
from claude_api import limits
from claude_api import metrics_share as share
from claude_api.metrics_share import Buckets, Family, Totals

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BUCKETS, value)] += 1
        self.total += value
        self.count += 1


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.cost: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.unpriced: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self.cut_off: defaultdict[str, int] = defaultdict(int)
        self.latency: defaultdict[str, Histogram] = defaultdict(Histogram)
        self.ttfb: defaultdict[str, Histogram] = defaultdict(Histogram)

    def observe(self, outcome: RequestOutcome) -> None:
        provider = outcome.provider or "none"
        key = outcome.client_key_name
        self.requests[(str(outcome.status), outcome.model, provider, key)] += 1
        tokens = outcome.tokens
        for kind, count in (
            ("input", tokens.input),
            ("output", tokens.output),
            ("cache_read", tokens.cache_read),
            ("cache_write", tokens.cache_write),
        ):
            if count:
                self.tokens[(kind, outcome.model, key)] += count
        if outcome.cost is None:
            self.unpriced[(outcome.model, key)] += 1
        else:
            self.cost[(outcome.model, key)] += float(outcome.cost)
        self.attempts[provider] += outcome.attempts
        if outcome.cut_off:
            self.cut_off[provider] += 1
        self.latency[provider].observe(outcome.latency_ms / 1000)
        if outcome.ttfb_ms is not None:
            self.ttfb[provider].observe(outcome.ttfb_ms / 1000)


metrics = Metrics()
observe = metrics.observe


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()


REQUESTS = Spec(
    "claude_proxy_requests_total",
    "counter",
    "Client requests by outcome.",
    ("status", "model", "provider", "client_key"),
)
TOKENS = Spec(
    "claude_proxy_tokens_total",
    "counter",
    "Tokens the upstreams reported, by kind.",
    ("kind", "model", "client_key"),
)
COST = Spec(
    "claude_proxy_cost_usd_total",
    "counter",
    "Cost of priced requests, in dollars.",
    ("model", "client_key"),
)
UNPRICED = Spec(
    "claude_proxy_unpriced_requests_total",
    "counter",
    "Requests whose cost is unknown.",
    ("model", "client_key"),
)
ATTEMPTS = Spec(
    "claude_proxy_upstream_attempts_total", "counter", "Upstream calls made.", ("provider",)
)
CUT_OFF = Spec(
    "claude_proxy_streams_cut_off_total",
    "counter",
    "Streams ended before their end.",
    ("provider",),
)
LATENCY = Spec(
    "claude_proxy_request_duration_seconds",
    "histogram",
    "Time to the request's end.",
    ("provider",),
)
TTFB = Spec(
    "claude_proxy_ttfb_seconds", "histogram", "Time to the first byte to the client.", ("provider",)
)
REJECTIONS = Spec(
    "claude_proxy_limit_rejections_total",
    "counter",
    "Requests refused by a key's limit.",
    ("client_key", "limit"),
)
UNCHECKED = Spec(
    "claude_proxy_limit_unchecked_total",
    "counter",
    "Requests of keys with limits served unchecked: the limits' counters were unreachable.",
    ("client_key",),
)
CREDENTIAL_STATE = Spec(
    "claude_proxy_credential_state",
    "gauge",
    "1 for each credential's current state.",
    ("credential", "provider", "state"),
)
LEDGER_PENDING = Spec("claude_proxy_ledger_pending", "gauge", "Usage records not yet written.")
LEDGER_DROPPED = Spec(
    "claude_proxy_ledger_dropped_total", "counter", "Usage records dropped (buffer full)."
)
# In the order they are rendered.
SPECS = (
    REQUESTS,
    TOKENS,
    COST,
    UNPRICED,
    ATTEMPTS,
    CUT_OFF,
    LATENCY,
    TTFB,
    REJECTIONS,
    UNCHECKED,
    CREDENTIAL_STATE,
    LEDGER_PENDING,
    LEDGER_DROPPED,
)
BOUNDS = (*(float(bound) for bound in DURATION_BUCKETS), math.inf)


def _buckets(histogram: Histogram) -> Buckets:
    return Buckets(
        dict(zip(BOUNDS, histogram.counts, strict=True)), histogram.total, histogram.count
    )


def live_totals() -> Totals:
    """This worker's counters now, as totals that add up with other workers'. A copy, taken on
    the event loop (where the counters change); converting and writing it happen elsewhere."""
    m = metrics

    def family(spec: Spec, samples: dict) -> Family:
        return Family(spec.kind, spec.labels, samples)

    return {
        REQUESTS.name: family(REQUESTS, dict(m.requests)),
        TOKENS.name: family(TOKENS, dict(m.tokens)),
        COST.name: family(COST, dict(m.cost)),
        UNPRICED.name: family(UNPRICED, dict(m.unpriced)),
        ATTEMPTS.name: family(ATTEMPTS, {(p,): n for p, n in m.attempts.items()}),
        CUT_OFF.name: family(CUT_OFF, {(p,): n for p, n in m.cut_off.items()}),
        LATENCY.name: family(LATENCY, {(p,): _buckets(h) for p, h in m.latency.items()}),
        TTFB.name: family(TTFB, {(p,): _buckets(h) for p, h in m.ttfb.items()}),
        REJECTIONS.name: family(REJECTIONS, dict(limits.rejections)),
        UNCHECKED.name: family(UNCHECKED, {(k,): n for k, n in limits.unchecked.items()}),
        LEDGER_PENDING.name: family(LEDGER_PENDING, {(): len(pool.ledger.pending)}),
        LEDGER_DROPPED.name: family(LEDGER_DROPPED, {(): pool.ledger.dropped}),
    }


# Rendering -----------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float | Fraction) -> str:
    if isinstance(value, Fraction):
        value = float(value)  # rounded once, here: sums stay exact until now
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(totals: Totals | None = None) -> str:
    """The exposition text of ``totals`` (by default this worker's own counters), with the
    credential states this worker sees."""
    totals = live_totals() if totals is None else totals
    out: list[str] = []
    for spec in SPECS:
        out.append(f"# HELP {spec.name} {spec.help}")
        out.append(f"# TYPE {spec.name} {spec.kind}")
        if spec is CREDENTIAL_STATE:
            _render_credential_states(out)
            continue
        family = totals.get(spec.name)
        if family is None or family.kind != spec.kind:
            continue
        names = family.labels
        for key, value in sorted(family.samples.items()):
            labels = dict(zip(names, key, strict=True))
            if isinstance(value, Buckets):
                _render_histogram(out, spec.name, labels, value)
            else:
                out.append(f"{spec.name}{_labels(**labels)} {_number(value)}")
    return "\n".join(out) + "\n"


def _render_histogram(out: list[str], name: str, labels: dict[str, str], value: Buckets) -> None:
    cumulative = 0
    for bound in sorted(value.counts):
        if math.isinf(bound):
            continue
        cumulative += value.counts[bound]
        out.append(f"{name}_bucket{_labels(**labels, le=_number(bound))} {cumulative}")
    out.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {value.count}")
    out.append(f"{name}_sum{_labels(**labels)} {_number(value.total)}")
    out.append(f"{name}_count{_labels(**labels)} {value.count}")


def _render_credential_states(out: list[str]) -> None:
    snapshot, now = pool.snapshot, time.time()
    for credential in snapshot.credentials if snapshot else ():
        state = "ok"
        for (credential_id, _model), record in pool.board.records.items():
            if credential_id == credential.credential_id and record.blocks(now):
                state = record.status
                if state == "attention":
                    break
        labels = _labels(credential=credential.label, provider=credential.provider, state=state)
        out.append(f"{CREDENTIAL_STATE.name}{labels} 1")


# Sharing between the workers of one supervisor --------------------------------------------------


class Sharing:
    """This worker's part in the server-wide totals (when a supervisor gave it a directory)."""

    def __init__(self) -> None:
        self._timer: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._published: Totals | None = None  # what this worker's snapshot holds

    @property
    def directory(self) -> Path | None:
        value = os.environ.get("PROXY_METRICS_DIR", "")
        return Path(value) if value else None

    @property
    def worker(self) -> str:
        return os.environ.get("PROXY_WORKER", str(os.getpid()))

    async def _run(self, func, *args):
        # One thread, so snapshots reach the file in the order they were taken (a later one is
        # never overwritten by an earlier one), and no file I/O on the event loop.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def totals(self) -> Totals:
        """The server's totals: this worker's and, under a supervisor, every other's."""
        totals = live_totals()
        directory = self.directory
        if directory is None:
            return totals
        server = await self._run(share.exchange, directory, self.worker, totals)
        self._published = totals
        return server

    async def publish(self) -> None:
        directory = self.directory
        totals = live_totals()
        if directory is None or totals == self._published:
            return  # an idle worker writes nothing
        await self._run(share.publish, directory, self.worker, totals)
        self._published = totals

    def start(self) -> None:
        """Publish every ``STATS_FLUSH_SECONDS`` (the server calls this once its loop runs)."""
        if self.directory is None or (self._timer is not None and not self._timer.done()):
            return
        # As the pool's timers: daphne starts this before its loop runs; a context of its own.
        self._timer = asyncio.get_event_loop().create_task(
            self._publish_periodically(), context=contextvars.Context()
        )

    async def _publish_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.STATS_FLUSH_SECONDS)
            try:
                await self.publish()
            except Exception:
                logger.exception("could not publish this worker's metrics")

    async def last_publish(self) -> None:
        """At shutdown, after the last flush: the final counts, which the supervisor folds into
        the retired workers' once this process has exited."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self.publish()


sharing = Sharing()


async def exposition() -> str:
    """What ``/metrics`` serves. Raises OSError if the shared directory cannot be used."""
    return render(await sharing.totals())
