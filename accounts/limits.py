"""Limits and budgets per client key: the pure policy (windows, checks, messages).

A key may carry any of these; a missing one is no limit:

| limit            | window                               | counted                                |
| ---------------- | ------------------------------------ | -------------------------------------- |
| rpm              | the current UTC minute               | requests admitted                      |
| tpm              | the current UTC minute               | input + output tokens                  |
| concurrent       | now                                  | requests admitted and not yet finished |
| budget (tokens)  | the current UTC day, ISO week, month | input + output tokens                  |
| budget (money)   | the same period                      | cost in micro-dollars                  |

Tokens are only known when a request ends, so admission *reserves* the request's estimated input
tokens (and their price) against tpm and the budget, and the end of the request replaces the
reservation by what the upstream reported. A request whose reservation does not fit is refused:
a budget stops the request that would cross it, not the one after. Its output can still overshoot
a budget by at most one answer, because nobody knows an answer's length before it is written.

The counting itself happens in one shared place (``accounts.limiter``: a Lua script in Redis, or
a locked transaction in the database); this module decides and phrases, with no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

MICRO = 1_000_000
DAY, WEEK, MONTH = "day", "week", "month"
PERIODS = (DAY, WEEK, MONTH)
ADJECTIVES = {DAY: "daily", WEEK: "weekly", MONTH: "monthly"}


@dataclass(frozen=True, slots=True)
class KeyLimits:
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget_period: str = MONTH
    budget_tokens: int | None = None
    budget_micro_usd: int | None = None

    @property
    def any(self) -> bool:
        return any(
            value is not None
            for value in (
                self.rpm,
                self.tpm,
                self.concurrent,
                self.budget_tokens,
                self.budget_micro_usd,
            )
        )

    @property
    def counts_tokens(self) -> bool:
        return self.tpm is not None or self.budget_tokens is not None

    @property
    def counts_cost(self) -> bool:
        return self.budget_micro_usd is not None


def micro_usd(amount: Decimal | None) -> int | None:
    """Dollars as integer micro-dollars (what the shared counters hold), rounded up."""
    if amount is None:
        return None
    return math.ceil(amount * MICRO)


@dataclass(frozen=True, slots=True)
class Windows:
    """The windows a moment falls in: epochs of the minute's and the budget period's bounds."""

    minute: int
    minute_end: int
    period: int
    period_end: int


def windows(now: float, period: str) -> Windows:
    return _windows(int(now // 60 * 60), period)


@lru_cache(maxsize=16)
def _windows(minute: int, period: str) -> Windows:
    # Every request of a minute falls in the same windows: worked out once a minute.
    moment = datetime.fromtimestamp(minute, tz=UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAY:
        start, end = day, day + timedelta(days=1)
    elif period == WEEK:
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return Windows(minute, minute + 60, int(start.timestamp()), int(end.timestamp()))


@dataclass(frozen=True, slots=True)
class Counts:
    """What a key has used in the windows of ``windows()`` (reservations included)."""

    requests: int = 0  # this minute
    tokens: int = 0  # this minute
    in_flight: int = 0
    budget_tokens: int = 0  # this period
    budget_micro_usd: int = 0  # this period


@dataclass(frozen=True, slots=True)
class Rejection:
    limit: str  # rpm | tpm | concurrent | budget_tokens | budget_usd
    message: str
    retry_after: float  # seconds until it frees up


# The order checks run in (and the Lua script follows): budgets first, since the client can do
# nothing but wait or ask for more, then the per-minute limits, then concurrency.
CHECK_ORDER = ("budget_tokens", "budget_usd", "tpm", "rpm", "concurrent")


def check(
    limits: KeyLimits,
    counts: Counts,
    *,
    tokens: int,
    cost: int,
) -> str | None:
    """The first limit that admitting a request (reserving ``tokens`` and ``cost``) would break."""
    if limits.budget_tokens is not None and counts.budget_tokens + tokens > limits.budget_tokens:
        return "budget_tokens"
    if (
        limits.budget_micro_usd is not None
        and counts.budget_micro_usd + cost > limits.budget_micro_usd
    ):
        return "budget_usd"
    if limits.tpm is not None and counts.tokens + tokens > limits.tpm:
        return "tpm"
    if limits.rpm is not None and counts.requests + 1 > limits.rpm:
        return "rpm"
    if limits.concurrent is not None and counts.in_flight + 1 > limits.concurrent:
        return "concurrent"
    return None


def rejection(limit: str, limits: KeyLimits, window: Windows, now: float) -> Rejection:
    """The 429's message and Retry-After for a limit ``check`` named."""
    until_minute = max(1.0, window.minute_end - now)
    until_period = max(1.0, window.period_end - now)
    period_end = datetime.fromtimestamp(window.period_end, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    if limit == "budget_tokens":
        return Rejection(
            limit,
            f"This API key has used its {ADJECTIVES[limits.budget_period]} budget of "
            f"{limits.budget_tokens:,} tokens; it renews at {period_end}.",
            until_period,
        )
    if limit == "budget_usd":
        dollars = Decimal(limits.budget_micro_usd or 0) / MICRO
        return Rejection(
            limit,
            f"This API key has used its {ADJECTIVES[limits.budget_period]} budget of ${dollars:,.2f}; "
            f"it renews at {period_end}.",
            until_period,
        )
    if limit == "tpm":
        return Rejection(
            limit,
            f"This API key's limit of {limits.tpm:,} tokens per minute is reached; "
            f"it frees up in {math.ceil(until_minute)} s.",
            until_minute,
        )
    if limit == "rpm":
        return Rejection(
            limit,
            f"This API key's limit of {limits.rpm:,} requests per minute is reached; "
            f"it frees up in {math.ceil(until_minute)} s.",
            until_minute,
        )
    # A slot frees up when one of the key's requests ends: a second is a fair guess.
    return Rejection(
        limit,
        f"This API key's limit of {limits.concurrent} concurrent requests is reached; "
        "retry when one of them has finished.",
        1.0,
    )
