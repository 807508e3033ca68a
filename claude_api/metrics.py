"""Prometheus metrics of this worker, in the text exposition format (no client library).

Each daphne process counts its own requests in memory (``observe`` is called once per request
by ``Dispatch.finish``, a few dict updates) and serves them at ``/metrics``. With several
workers, scrape every worker (each listens on its own port) and sum in Prometheus: counters of a
restarted worker start again from zero, which ``rate()`` and ``increase()`` handle. The durable
per-request record is the usage ledger; these are for rates and alerts.

Labels never carry secrets: client keys by name, credentials by label.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

from accounts.pool import pool
from accounts.usage import RequestOutcome

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render() -> str:
    """The exposition text of this worker's metrics."""
    from claude_api import limits

    m = metrics
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    family("claude_proxy_requests_total", "counter", "Client requests by outcome.")
    for (status, model, provider, key), n in sorted(m.requests.items()):
        labels = _labels(status=status, model=model, provider=provider, client_key=key)
        out.append(f"claude_proxy_requests_total{labels} {n}")
    family("claude_proxy_tokens_total", "counter", "Tokens the upstreams reported, by kind.")
    for (kind, model, key), n in sorted(m.tokens.items()):
        out.append(
            f"claude_proxy_tokens_total{_labels(kind=kind, model=model, client_key=key)} {n}"
        )
    family("claude_proxy_cost_usd_total", "counter", "Cost of priced requests, in dollars.")
    for (model, key), amount in sorted(m.cost.items()):
        labels = _labels(model=model, client_key=key)
        out.append(f"claude_proxy_cost_usd_total{labels} {_number(amount)}")
    family("claude_proxy_unpriced_requests_total", "counter", "Requests whose cost is unknown.")
    for (model, key), n in sorted(m.unpriced.items()):
        labels = _labels(model=model, client_key=key)
        out.append(f"claude_proxy_unpriced_requests_total{labels} {n}")
    family("claude_proxy_upstream_attempts_total", "counter", "Upstream calls made.")
    for provider, n in sorted(m.attempts.items()):
        out.append(f"claude_proxy_upstream_attempts_total{_labels(provider=provider)} {n}")
    family("claude_proxy_streams_cut_off_total", "counter", "Streams ended before their end.")
    for provider, n in sorted(m.cut_off.items()):
        out.append(f"claude_proxy_streams_cut_off_total{_labels(provider=provider)} {n}")
    for name, histograms, help_text in (
        ("claude_proxy_request_duration_seconds", m.latency, "Time to the request's end."),
        ("claude_proxy_ttfb_seconds", m.ttfb, "Time to the first byte to the client."),
    ):
        family(name, "histogram", help_text)
        for provider, histogram in sorted(histograms.items()):
            cumulative = 0
            for bound, count in zip(DURATION_BUCKETS, histogram.counts, strict=False):
                cumulative += count
                labels = _labels(provider=provider, le=_number(float(bound)))
                out.append(f"{name}_bucket{labels} {cumulative}")
            labels = _labels(provider=provider, le="+Inf")
            out.append(f"{name}_bucket{labels} {histogram.count}")
            out.append(f"{name}_sum{_labels(provider=provider)} {_number(histogram.total)}")
            out.append(f"{name}_count{_labels(provider=provider)} {histogram.count}")
    family("claude_proxy_limit_rejections_total", "counter", "Requests refused by a key's limit.")
    for (key, limit), n in sorted(limits.rejections.items()):
        out.append(f"claude_proxy_limit_rejections_total{_labels(client_key=key, limit=limit)} {n}")
    family(
        "claude_proxy_limit_unchecked_total",
        "counter",
        "Requests of keys with limits served unchecked: the limits' counters were unreachable.",
    )
    for key, n in sorted(limits.unchecked.items()):
        out.append(f"claude_proxy_limit_unchecked_total{_labels(client_key=key)} {n}")
    family("claude_proxy_credential_state", "gauge", "1 for each credential's current state.")
    snapshot, now = pool.snapshot, time.time()
    for credential in snapshot.credentials if snapshot else ():
        state = "ok"
        for (credential_id, _model), record in pool.board.records.items():
            if credential_id == credential.credential_id and record.blocks(now):
                state = record.status
                if state == "attention":
                    break
        labels = _labels(credential=credential.label, provider=credential.provider, state=state)
        out.append(f"claude_proxy_credential_state{labels} 1")
    family("claude_proxy_ledger_pending", "gauge", "Usage records not yet written.")
    out.append(f"claude_proxy_ledger_pending {len(pool.ledger.pending)}")
    family("claude_proxy_ledger_dropped_total", "counter", "Usage records dropped (buffer full).")
    out.append(f"claude_proxy_ledger_dropped_total {pool.ledger.dropped}")
    return "\n".join(out) + "\n"
