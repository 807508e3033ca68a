"""One request's journey through the pool: pick a credential, try it, fail over, retry rounds.

Before the first byte reaches the client, an eligible failure moves the request to the next
candidate. Round 0 tries every eligible credential once (at most ``max_retry_credentials``).
When no candidate is free and one of them is cooling only for a transient reason, the round
sends the request to the one that failed longest ago anyway (a half-open probe; see
accounts.cooldown). After a failed round whose last error is 403/408/429/5xx, another round
starts if a credential allowed that many rounds (``request_retry``, per credential or global) is
free now or frees up within what is left of ``max_retry_interval``: that setting bounds the
request's whole wait, every round and every stream bootstrap pass together. Request faults (the
client's request is wrong) return at once. When nothing was attempted because everything is
cooling down, the client gets 429 with Retry-After; when attempts failed, the client gets the
last upstream error as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from django.conf import settings

from accounts import cooldown, prices, quota, windows
from accounts.limiter import Admission
from accounts.pool import Route, Snapshot, pool
from accounts.prices import Tokens
from accounts.secrets import redact
from accounts.usage import RequestOutcome
from claude_api import limits, metrics
from claude_api.errors import AllCoolingDown, NoCredentialAvailable, ProxyError, UpstreamError
from claude_api.providers import provider_for
from claude_api.providers.accounts import refreshed_after_unauthorized
from claude_api.providers.base import EventStream, Reply, UpstreamCall
from claude_api.request import COUNT_TOKENS, ClientRequest, session_id
from claude_api.sse import SSEEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Stream bootstrap passes are repeated only for failures that another pass could fix.
BOOTSTRAP_RETRY_STATUSES = frozenset({0, 401, 402, 403, 408, 429}) | frozenset(range(500, 600))


@dataclass(slots=True)
class OpenedStream:
    """A stream whose upstream has produced its first event; nothing sent to the client yet."""

    route: Route
    first: SSEEvent
    events: EventStream


class Dispatch:
    def __init__(self, request: ClientRequest, snapshot: Snapshot) -> None:
        self.request = request
        self.snapshot = snapshot
        self.config = snapshot.config
        self.routes = snapshot.routes_for(request.model)
        self.session = (
            session_id(request.headers, request.body) if self.config.session_affinity else None
        )
        self.steps: list[dict] = []
        self.attempts = 0
        # Seconds spent waiting for cooldowns to end, across rounds and bootstrap passes.
        self.waited = 0.0
        self.started = time.monotonic()
        self._noted_skips: set[int] = set()
        self._saved = False
        # The route last attempted (the one that answered, when one did).
        self.route: Route | None = None
        # Seconds from the start to the first byte the client got (set by claude_api.streaming).
        self.ttfb: float | None = None
        # The client key's admission (claude_api.limits), released when the request ends.
        self.admission: Admission | None = None
        self.started_at = time.time()

    # Operations ---------------------------------------------------------------------------

    async def send(self) -> Reply:
        """A non-streaming message or a token count."""
        if self.request.endpoint == COUNT_TOKENS:
            return await self.run(
                lambda call: provider_for(call.credential.provider).count_tokens(call)
            )
        return await self.run(lambda call: provider_for(call.credential.provider).send(call))

    async def open_stream(self) -> OpenedStream:
        """Try credentials until one produces a first event (``bootstrap_retries`` extra passes)."""
        passes = 1 + self.config.bootstrap_retries
        for number in range(passes):
            try:
                return await self.run(self._open_one, succeed_on_return=False)
            except UpstreamError as exc:
                if (
                    exc.request_fault
                    or number == passes - 1
                    or exc.upstream_status not in BOOTSTRAP_RETRY_STATUSES
                ):
                    raise
        raise AssertionError("unreachable")

    async def _open_one(self, call: UpstreamCall) -> OpenedStream:
        events = await provider_for(call.credential.provider).stream(call)
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            await events.aclose()
            raise UpstreamError(
                f"The upstream stream ({call.credential.label}) ended with no event.",
                status=0,
                error_type="api_error",
            ) from None
        except BaseException:
            await events.aclose()
            raise
        return OpenedStream(call.route, first, events)

    # The loop ------------------------------------------------------------------------------

    async def run(
        self, operation: Callable[[UpstreamCall], Awaitable[T]], *, succeed_on_return: bool = True
    ) -> T:
        config = self.config
        key = self.request.model
        rounds = max((config.retry_rounds_for(r.credential) for r in self.routes), default=0)
        cursor = pool.selector.next_cursor(key)
        last_error: UpstreamError | None = None
        for round_number in range(rounds + 1):
            tried: set[int] = set()
            probed = False
            while not (config.max_retry_credentials and len(tried) >= config.max_retry_credentials):
                route = self._pick(round_number, tried, cursor)
                if route is None and not probed:
                    # One probe a round: a model whose every credential fails gets the upstream's
                    # own error after one attempt, not one attempt per cooling credential.
                    route = self._probe(round_number, tried)
                    probed = route is not None
                if route is None:
                    break
                tried.add(route.credential_id)
                try:
                    result = await self._attempt(route, round_number, operation)
                except UpstreamError as exc:
                    last_error = exc
                    if exc.request_fault:
                        raise
                    continue
                if succeed_on_return:
                    await self.succeeded(route)
                return result
            if last_error is None:
                raise self._nothing_available()
            if round_number == rounds or not cooldown.starts_retry_round(
                last_error.upstream_status
            ):
                break
            wait = self._wait_before_round(round_number + 1)
            if wait is None:
                break
            if wait > 0:
                self.steps.append({"outcome": "waited", "seconds": round(wait, 3)})
                self.waited += wait
                await asyncio.sleep(wait)
        assert last_error is not None
        raise last_error

    def _eligible(self, round_number: int, tried: set[int], now: float):
        """(route, the cooldown blocking it or None) for each route this round may still try."""
        for route in self.routes:
            if route.credential_id in tried:
                continue
            if self.config.retry_rounds_for(route.credential) < round_number:
                continue
            yield route, pool.board.blocking(route.credential_id, route.upstream_model, now)

    def _pick(self, round_number: int, tried: set[int], cursor: int) -> Route | None:
        now = time.time()
        available = []
        for route, record in self._eligible(round_number, tried, now):
            if record is not None:
                self._note_skip(route, record)
                continue
            available.append(route)
        return pool.selector.pick(
            available,
            strategy=self.config.routing_strategy,
            key=self.request.model,
            cursor=cursor,
            session_id=self.session,
            now=now,
            headroom=windows.board.headroom,
        )

    def _probe(self, round_number: int, tried: set[int]) -> Route | None:
        """The transiently cooling route to try when nothing is free (None if there is none)."""
        blocked = [
            (route, record)
            for route, record in self._eligible(round_number, tried, time.time())
            if record is not None
        ]
        route = cooldown.half_open_candidate(blocked)
        if route is not None:
            record = next(record for candidate, record in blocked if candidate is route)
            self.steps.append(
                {
                    "credential": route.credential.label,
                    "credential_id": route.credential_id,
                    "model": route.upstream_model,
                    "outcome": "probe",
                    "reason": (
                        f"half-open probe: every candidate is cooling; this one only for a "
                        f"transient error until {_iso(record.next_retry_at)}"
                    ),
                }
            )
        return route

    async def _attempt(
        self,
        route: Route,
        round_number: int,
        operation: Callable[[UpstreamCall], Awaitable[T]],
    ) -> T:
        self.attempts += 1
        self.route = route
        started = time.monotonic()
        call = UpstreamCall(self.request, route, self.config)
        try:
            try:
                result = await operation(call)
            except UpstreamError as exc:
                # An account's token refused: refresh once (or take another worker's refresh)
                # and retry on the same account, before the 401 is classified.
                if not await refreshed_after_unauthorized(call, exc):
                    raise
                self.steps.append(
                    self._step(
                        route,
                        "token refreshed after 401",
                        round_number=round_number,
                        started=started,
                        status=401,
                    )
                )
                call = UpstreamCall(self.request, route, self.config)
                result = await operation(call)
        except UpstreamError as exc:
            self._note(route, call.notes, round_number)
            await self.failed(route, exc, round_number=round_number, started=started)
            raise
        self._note(route, call.notes, round_number)
        self.steps.append(
            self._step(route, "ok", round_number=round_number, started=started, status=200)
        )
        return result

    # Outcomes ------------------------------------------------------------------------------

    async def failed(
        self,
        route: Route,
        exc: UpstreamError,
        *,
        round_number: int | None = None,
        started: float | None = None,
        after_first_byte: bool = False,
    ) -> None:
        """Classify an upstream failure and record it against the credential."""
        exc.message = redact(exc.message, route.credential.secret.reveal())
        failure = cooldown.classify(
            status=exc.upstream_status,
            error_type=exc.error_type,
            message=exc.message,
            headers=exc.upstream_headers,
            now=time.time(),
            code=exc.code,
            body_retry_after=exc.body_retry_after,
        )
        exc.request_fault = failure.kind is cooldown.FailureKind.REQUEST_FAULT
        if (
            self.request.endpoint == COUNT_TOKENS
            and failure.kind is not cooldown.FailureKind.ATTENTION
        ):
            # Token counting has limits of its own upstream, and some Anthropic-compatible servers
            # lack the endpoint: such a failure says nothing about serving messages. (A bad key
            # is a bad key either way.)
            pool.counters.failures[route.credential_id] += 1
            record = None
        else:
            record = await pool.record_failure(route, failure, self.config)
        if self.session and failure.counts_against_credential:
            pool.selector.unbind(self.request.model, self.session)
        step = self._step(
            route,
            "failed" if not after_first_byte else "failed after first byte",
            round_number=round_number,
            started=started,
            status=exc.upstream_status,
        )
        step["error"] = f"{exc.error_type}: {exc.message}"[:500]
        step["classified"] = failure.kind.value
        if record is not None and record.next_retry_at:
            step["cooling_until"] = _iso(record.next_retry_at)
        self.steps.append(step)
        logger.info(
            "upstream %s failed for %s (%s %s, %s)",
            route.credential.label,
            self.request.model,
            exc.upstream_status,
            exc.error_type,
            failure.kind.value,
        )

    async def succeeded(self, route: Route) -> None:
        await pool.record_success(route)
        if self.session:
            pool.selector.bind(
                self.request.model,
                self.session,
                route.credential_id,
                self.config.session_affinity_ttl,
                time.time(),
            )

    def _nothing_available(self) -> ProxyError:
        now = time.time()
        records = [
            record
            for route in self.routes
            if (record := pool.board.blocking(route.credential_id, route.upstream_model, now))
        ]
        if records and len(records) == len(self.routes):
            soonest = min(records, key=lambda r: r.next_retry_at or now)
            return AllCoolingDown(
                self.request.model, (soonest.next_retry_at or now) - now, soonest.reason
            )
        return NoCredentialAvailable(
            f"No credential can serve model {self.request.model} right now "
            "(check weights and retry settings)."
        )

    def _wait_before_round(self, round_number: int) -> float | None:
        """Seconds to wait before the next round, or None if the round should not happen: when
        no credential frees up within what is left of the request's wait budget."""
        now = time.time()
        soonest: float | None = None
        for route in self.routes:
            if self.config.retry_rounds_for(route.credential) < round_number:
                continue
            record = pool.board.blocking(route.credential_id, route.upstream_model, now)
            if record is None:
                return 0.0
            retryable = (record.last_status or 0) in cooldown.RETRY_ROUND_STATUSES or (
                record.reason in ("rate_limited", "credential_quota")
            )
            if retryable and record.next_retry_at is not None:
                soonest = (
                    record.next_retry_at if soonest is None else min(soonest, record.next_retry_at)
                )
        if soonest is None:
            return None
        wait = soonest - now
        budget = self.config.max_retry_interval - self.waited
        if budget <= 0 or wait > budget:
            return None
        # Land just after the window closes rather than just before it.
        return wait + 0.05

    # Trace ---------------------------------------------------------------------------------

    def _step(
        self,
        route: Route,
        outcome: str,
        *,
        round_number: int | None,
        started: float | None,
        status: int | None,
    ) -> dict:
        step = {
            "credential": route.credential.label,
            "credential_id": route.credential_id,
            "model": route.upstream_model,
            "outcome": outcome,
            "status": status,
        }
        if round_number is not None:
            step["round"] = round_number
        if started is not None:
            step["ms"] = round((time.monotonic() - started) * 1000, 1)
        return step

    def _note(self, route: Route, notes: list[dict], round_number: int) -> None:
        """Steps a provider took inside one attempt (a retry without a refused field)."""
        for note in notes:
            step = self._step(
                route,
                note["outcome"],
                round_number=round_number,
                started=None,
                status=note.get("status"),
            )
            step["reason"] = redact(str(note.get("reason", "")), route.credential.secret.reveal())
            self.steps.append(step)

    def _note_skip(self, route: Route, record) -> None:
        if route.credential_id in self._noted_skips:
            return
        self._noted_skips.add(route.credential_id)
        # Summarised per credential and hour (CredentialStats.skips); a request that a skip did
        # not change gets no trace of its own.
        pool.counters.skips[route.credential_id] += 1
        self.steps.append(
            {
                "credential": route.credential.label,
                "credential_id": route.credential_id,
                "model": route.upstream_model,
                "outcome": "skipped",
                "reason": f"{record.status} until {_iso(record.next_retry_at)} ({record.reason})",
            }
        )

    @property
    def worth_tracing(self) -> bool:
        """A failure, a probe or a wait changed how this request went. Skipping a cooling
        credential alone did not: the request was served as if the credential were absent."""
        return self.attempts > 1 or any(
            step["outcome"] not in ("ok", "skipped") for step in self.steps
        )

    def finish(
        self,
        status: int,
        *,
        error_type: str = "",
        tokens: Tokens | None = None,
        cut_off: bool = False,
    ) -> RequestOutcome | None:
        """End the request once: its outcome to the ledger, the key's limits and the metrics,
        and the routing trace of a failed or retried request, all off the request path."""
        if self._saved:
            return None
        self._saved = True
        outcome = self._outcome(status, error_type, tokens or Tokens(), cut_off)
        if settings.USAGE_LEDGER:
            pool.ledger.add(outcome)
        metrics.observe(outcome)
        if self.admission is not None:
            limits.release(self.admission, outcome)
        if self.worth_tracing or status >= 400:
            self._save_trace(status)
        return outcome

    def _outcome(
        self, status: int, error_type: str, tokens: Tokens, cut_off: bool
    ) -> RequestOutcome:
        route, request = self.route, self.request
        upstream_model = route.upstream_model if route else ""
        price = prices.price_for(self.snapshot.prices, upstream_model, request.model)
        return RequestOutcome(
            started_at=self.started_at,
            request_id=request.request_id,
            endpoint=request.endpoint,
            client_key_id=request.client_key_id,
            client_key_name=request.client_key_name,
            model=request.model,
            stream=request.stream,
            status=status,
            error_type=error_type,
            credential_id=route.credential_id if route else None,
            credential_label=route.credential.label if route else "",
            provider=route.credential.provider if route else "",
            upstream_model=upstream_model,
            tokens=tokens,
            cost=prices.cost(tokens, price),
            latency_ms=int((time.monotonic() - self.started) * 1000),
            ttfb_ms=None if self.ttfb is None else int(self.ttfb * 1000),
            attempts=self.attempts,
            cut_off=cut_off,
        )

    def _save_trace(self, status: int) -> None:
        trace = {
            "request_id": self.request.request_id,
            "endpoint": self.request.endpoint,
            "client_key_name": self.request.client_key_name,
            "model": self.request.model[:200],
            "stream": self.request.stream,
            "status": status,
            "attempts": self.attempts,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
            "steps": self.steps,
        }
        pool.spawn(pool.write(partial(quota.save_trace, trace), waited_on=False))


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
