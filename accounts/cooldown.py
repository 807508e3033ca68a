"""What a failed upstream call means for the credential, and for how long it sits out.

Pure policy: ``classify`` turns an upstream failure into a ``Failure``; ``apply_failure`` turns the
previous ``QuotaRecord`` and a failure into the next one. Times are epoch seconds.

| failure                                         | effect                                           |
|-------------------------------------------------|--------------------------------------------------|
| request fault (400/409/413/422, invalid_request)| none: the client's request is wrong              |
| 401 / 402 / 403                                 | whole credential needs attention, 30 min         |
| 404, or a 400/422 saying the model is unknown   | that model, 12 h                                 |
| 429                                             | until the upstream's reset; else 1 s·2^n ≤ 30 min|
| 429 from Anthropic's unified 5h/7d window       | whole credential, until the window resets        |
| 429 Codex usage_limit_reached                   | whole credential, until resets_at / resets_in    |
| 408 / 5xx / 529 / connection / empty stream     | that model, transient_error_cooldown_seconds     |

A transient cooldown is a guess (nothing from the upstream said when it recovers), so it never
leaves a model with nothing to try: when no candidate is free, ``half_open_candidate`` names the
transiently cooling one that failed longest ago, and the request is sent there anyway (a
half-open probe, as a circuit breaker does). Its success clears the cooldown, its failure
extends it. Cooldowns the upstream timed (429 resets, unified windows) and needs-attention
states are never probed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from accounts import ratelimit

ATTENTION_SECONDS = 30 * 60
NOT_FOUND_SECONDS = 12 * 3600
MAX_BACKOFF_SECONDS = 30 * 60
# Only these start another round over the pool (reference-behaviour.md §2.5).
RETRY_ROUND_STATUSES = frozenset({403, 408, 429, 500, 502, 503, 504})
REQUEST_FAULT_STATUSES = frozenset({400, 409, 413, 422})
REQUEST_FAULT_TYPES = frozenset(
    {"invalid_request_error", "invalid_request", "bad_request_error", "invalid_prompt"}
)
REQUEST_FAULT_CODES = frozenset(
    {
        "context_length_exceeded",
        "message_too_big",
        "string_above_max_length",
        "invalid_prompt",
        "invalid_value",
        "unsupported_value",
        "invalid_request_error",
    }
)
# A subscription's usage limit is the account's, whatever the model: cooling only the model that
# hit it would send the next request for another model to the same exhausted account (the
# reference system cools per model, CLIProxyAPI#5286).
ACCOUNT_QUOTA_CODES = frozenset({"usage_limit_reached"})
MODEL_UNSUPPORTED_PHRASES = (
    "model_not_supported",
    "model not supported",
    "unsupported model",
    "model unavailable",
    "requested model is not supported",
    "requested model is unsupported",
    "requested model is unavailable",
    "not available for your plan",
    "not available for your account",
)


class FailureKind(StrEnum):
    REQUEST_FAULT = "request_fault"
    ATTENTION = "attention"
    MODEL_NOT_FOUND = "model_not_found"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"


T = TypeVar("T")
TRANSIENT_REASON = "transient"

ATTENTION_REASONS = {401: "unauthorized", 402: "payment_required", 403: "forbidden"}


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    status: int
    message: str
    reason: str
    retry_at: float | None = None
    retry_source: str = ""
    credential_wide: bool = False

    @property
    def counts_against_credential(self) -> bool:
        return self.kind is not FailureKind.REQUEST_FAULT


@dataclass(frozen=True, slots=True)
class QuotaRecord:
    """The quota state of one credential for one model ("" = the whole credential)."""

    status: str = "ok"  # ok | cooling | attention
    reason: str = ""
    next_retry_at: float | None = None
    backoff_level: int = 0
    last_status: int | None = None
    last_error: str = ""
    reset_source: str = ""

    def blocks(self, now: float) -> bool:
        return self.next_retry_at is not None and self.next_retry_at > now

    @property
    def is_clean(self) -> bool:
        return self.status == "ok" and self.backoff_level == 0 and not self.last_error


def is_request_fault(status: int, error_type: str, code: str, message: str) -> bool:
    if status in (401, 402, 429) or status >= 500:
        return False
    if status in (400, 422) and mentions_unsupported_model(message):
        return False
    if code in REQUEST_FAULT_CODES:
        return True
    # 403 and 404 speak about the credential or the model on that account, whatever the body's
    # type says (OpenAI-style servers answer an unknown model with 404 invalid_request_error).
    if status in (403, 404):
        return False
    if error_type in REQUEST_FAULT_TYPES:
        return True
    return status in REQUEST_FAULT_STATUSES


def mentions_unsupported_model(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in MODEL_UNSUPPORTED_PHRASES)


def classify(
    *,
    status: int,
    error_type: str,
    message: str,
    headers: Mapping[str, str],
    now: float,
    code: str = "",
    body_retry_after: float | None = None,
) -> Failure:
    """``status`` 0 means no HTTP answer at all (connection failure, timeout, empty stream)."""
    if is_request_fault(status, error_type, code, message):
        return Failure(FailureKind.REQUEST_FAULT, status, message, "request_fault")
    if status in ATTENTION_REASONS:
        return Failure(
            FailureKind.ATTENTION,
            status,
            message,
            ATTENTION_REASONS[status],
            retry_at=now + ATTENTION_SECONDS,
            retry_source="policy: 30 min",
            credential_wide=True,
        )
    if status == 404 or (status in (400, 422) and mentions_unsupported_model(message)):
        return Failure(
            FailureKind.MODEL_NOT_FOUND,
            status,
            message,
            "model_not_found",
            retry_at=now + NOT_FOUND_SECONDS,
            retry_source="policy: 12 h",
        )
    if status == 429:
        hint = ratelimit.reset_hint(headers, now, body_retry_after)
        wide = ratelimit.is_unified_rejection(headers) or code in ACCOUNT_QUOTA_CODES
        return Failure(
            FailureKind.RATE_LIMITED,
            status,
            message,
            "credential_quota" if wide else "rate_limited",
            retry_at=hint.retry_at if hint else None,
            retry_source=hint.source if hint else "",
            credential_wide=wide,
        )
    return Failure(FailureKind.TRANSIENT, status, message, TRANSIENT_REASON)


def backoff_seconds(level: int) -> float:
    """Level 1 → 1 s, 2 → 2 s, 3 → 4 s … capped at 30 minutes."""
    if level <= 0:
        return 0.0
    return float(min(2 ** min(level - 1, 30), MAX_BACKOFF_SECONDS))


def apply_failure(
    previous: QuotaRecord | None,
    failure: Failure,
    now: float,
    *,
    transient_seconds: int,
    cooling_disabled: bool,
) -> QuotaRecord | None:
    """The next quota record, or None when the failure changes nothing (a request fault)."""
    if not failure.counts_against_credential:
        return None
    previous = previous or QuotaRecord()
    base = replace(previous, last_status=failure.status, last_error=failure.message[:2000])
    if cooling_disabled:
        return replace(
            base, status="ok", reason=failure.reason, next_retry_at=None, reset_source=""
        )

    if failure.kind is FailureKind.RATE_LIMITED:
        window_open = previous.blocks(now) and previous.reason in (
            "rate_limited",
            "credential_quota",
        )
        if failure.retry_at is not None:
            retry_at, source = failure.retry_at, failure.retry_source
            # Never shorten a window that already reaches further out.
            if window_open and previous.next_retry_at and previous.next_retry_at > retry_at:
                # Keep the source that goes with the deadline kept: operators read them together.
                retry_at, source = previous.next_retry_at, previous.reset_source
            return replace(
                base,
                status="cooling",
                reason=failure.reason,
                next_retry_at=retry_at,
                reset_source=source,
            )
        if window_open:
            # A second 429 inside the open window: same deadline, same level (no double escalation).
            return replace(base, status="cooling")
        level = previous.backoff_level + 1
        return replace(
            base,
            status="cooling",
            reason=failure.reason,
            backoff_level=level,
            next_retry_at=now + backoff_seconds(level),
            reset_source=f"backoff level {level}",
        )

    if failure.kind is FailureKind.TRANSIENT:
        open_until = previous.next_retry_at if previous.blocks(now) else None
        if open_until is not None and (
            transient_seconds <= 0 or open_until > now + transient_seconds
        ):
            # Requests already in flight when a longer window opened (a 429's reset, a 12 h
            # not-found) still come back, often as 5xx/529 under load: recording the error must
            # not shorten or erase that window. Same deadline, reason and level.
            return base
        if transient_seconds <= 0:
            return replace(base, status="ok", reason=failure.reason, next_retry_at=None)
        return replace(
            base,
            status="cooling",
            reason=failure.reason,
            next_retry_at=now + transient_seconds,
            reset_source="policy: transient",
        )

    status = "attention" if failure.kind is FailureKind.ATTENTION else "cooling"
    retry_at, source = failure.retry_at, failure.retry_source
    if previous.blocks(now) and retry_at is not None and previous.next_retry_at > retry_at:
        # A 401 from a request in flight must not cut a longer quota window short.
        retry_at, source = previous.next_retry_at, previous.reset_source
    return replace(
        base,
        status=status,
        reason=failure.reason,
        next_retry_at=retry_at,
        reset_source=source,
    )


def starts_retry_round(status: int) -> bool:
    return status in RETRY_ROUND_STATUSES


def half_open_candidate(blocked: Iterable[tuple[T, QuotaRecord]]) -> T | None:
    """Of candidates that are all cooling (each with the record that blocks it), the one to
    probe anyway: cooling for a transient reason, and the one that failed longest ago (the
    earliest end of a transient window). None when every block was timed by the upstream or
    needs attention."""
    best: tuple[T, QuotaRecord] | None = None
    for candidate, record in blocked:
        if record.reason != TRANSIENT_REASON or record.next_retry_at is None:
            continue
        if best is None or record.next_retry_at < (best[1].next_retry_at or 0):
            best = (candidate, record)
    return best[0] if best is not None else None
