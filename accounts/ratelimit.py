"""When does an upstream say it will accept requests again? Parsed from its response headers.

Pure functions over a lower-cased header mapping and the current time (epoch seconds). Every
parser ignores garbage: a value it cannot read is as good as absent.

Sources, in the order ``reset_hint`` consults them (the first that yields a time wins):
- Anthropic's unified subscription windows (``anthropic-ratelimit-unified-{5h,7d}-status:
  rejected`` with ``-reset`` as unix seconds or RFC 3339): these block the whole credential, and
  a short ``retry-after`` beside them must not cut the window short;
- ``retry-after-ms`` (milliseconds), then ``retry-after`` (seconds or an HTTP date);
- the error body's retry delay (Google ``RetryInfo.retryDelay``), passed in by the caller;
- Anthropic's per-limit resets (``anthropic-ratelimit-{requests,tokens,input-tokens,
  output-tokens}-reset``, RFC 3339), preferring the limits whose ``-remaining`` is 0;
- OpenAI-style ``x-ratelimit-reset-{requests,tokens}`` as Go durations ("12ms", "1s", "6m0s").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

# Nothing we parse may push a cooldown further out than this; a bogus header must not park a
# credential for years.
MAX_DELAY_SECONDS = 31 * 24 * 3600

ANTHROPIC_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
UNIFIED_WINDOWS = ("5h", "7d")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class ResetHint:
    retry_at: float  # epoch seconds
    source: str  # which header said so, shown to operators
    credential_wide: bool = False


def _finite_delay(seconds: float) -> float | None:
    # NaN, infinity ("inf", "1e999") and negative values are garbage, not "wait forever".
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_DELAY_SECONDS)


def _parse_number(value: str | None) -> float | None:
    """A finite, non-negative number, not yet capped."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_seconds(value: str | None) -> float | None:
    number = _parse_number(value)
    return None if number is None else min(number, MAX_DELAY_SECONDS)


def parse_http_date(value: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    # A date already past means "retry now" (RFC 9110), not "no information".
    delay = _finite_delay(max(0.0, moment.timestamp() - now))
    return None if delay is None else now + delay


def parse_timestamp(value: str | None, now: float) -> float | None:
    """Unix seconds or an RFC 3339 timestamp, as an epoch no further than MAX_DELAY away."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            # RFC 3339 allows a lower-case "t" and "z"; fromisoformat does not.
            moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        epoch = moment.timestamp()
    else:
        if not math.isfinite(number):
            return None
        # Milliseconds sneak in sometimes; anything past year 5000 in seconds is milliseconds.
        epoch = number / 1000 if number > 95_000_000_000 else number
    delay = _finite_delay(epoch - now)
    return None if delay is None else now + delay


def parse_go_duration(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    plain = parse_seconds(value)
    if plain is not None:
        return plain
    total, position = 0.0, 0
    for match in _GO_DURATION.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        return None
    return _finite_delay(total)


def retry_after(headers: Mapping[str, str], now: float) -> ResetHint | None:
    """The standard headers alone: ``retry-after-ms`` wins over ``retry-after``."""
    millis = _parse_number(headers.get("retry-after-ms"))
    if millis is not None:
        # Cap in seconds, after converting: capping the raw milliseconds would turn a huge value
        # into MAX_DELAY_SECONDS / 1000.
        return ResetHint(now + min(millis / 1000, MAX_DELAY_SECONDS), "retry-after-ms")
    raw = headers.get("retry-after")
    if raw:
        seconds = parse_seconds(raw)
        if seconds is not None:
            return ResetHint(now + seconds, "retry-after")
        moment = parse_http_date(raw, now)
        if moment is not None:
            return ResetHint(moment, "retry-after")
    return None


def unified_rejection(headers: Mapping[str, str], now: float) -> ResetHint | None:
    """Anthropic subscription (5-hour / 7-day) windows that rejected the request.

    These are credential-wide: every model on the account is blocked until the latest reset.
    """
    rejected = _rejected_windows(headers)
    if not rejected:
        return None
    deadlines = []
    for window in rejected:
        name = window if window == "unified" else f"unified-{window}"
        moment = parse_timestamp(headers.get(f"anthropic-ratelimit-{name}-reset"), now)
        if moment is not None:
            deadlines.append(moment)
    overall = parse_timestamp(headers.get("anthropic-ratelimit-unified-reset"), now)
    if overall is not None:
        deadlines.append(overall)
    if not deadlines:
        # Rejected without a reset time: a short, credential-wide pause; the backoff escalates.
        return None
    # A second of slack so we do not knock on the door the instant before it opens.
    return ResetHint(max(deadlines) + 1, "anthropic-ratelimit-unified", credential_wide=True)


def _rejected_windows(headers: Mapping[str, str]) -> list[str]:
    windows = [w for w in UNIFIED_WINDOWS if _is_rejected(headers, f"unified-{w}")]
    # The overall status alone counts, unless only the overage ("7d_oi") window rejected.
    if (
        not windows
        and _is_rejected(headers, "unified")
        and not _is_rejected(headers, "unified-7d_oi")
    ):
        windows = ["unified"]
    return windows


def _is_rejected(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(f"anthropic-ratelimit-{name}-status", "").strip().lower() == "rejected"


def anthropic_limit_reset(headers: Mapping[str, str], now: float) -> ResetHint | None:
    exhausted, others = [], []
    for limit in ANTHROPIC_LIMITS:
        moment = parse_timestamp(headers.get(f"anthropic-ratelimit-{limit}-reset"), now)
        if moment is None:
            continue
        remaining = headers.get(f"anthropic-ratelimit-{limit}-remaining", "").strip()
        (exhausted if remaining == "0" else others).append(moment)
    if exhausted:
        return ResetHint(max(exhausted), "anthropic-ratelimit-reset")
    if others:
        # No limit admits being empty: the soonest reset is the honest guess.
        return ResetHint(min(others), "anthropic-ratelimit-reset")
    return None


def openai_limit_reset(headers: Mapping[str, str], now: float) -> ResetHint | None:
    exhausted, others = [], []
    for limit in ("requests", "tokens"):
        delay = parse_go_duration(headers.get(f"x-ratelimit-reset-{limit}"))
        if delay is None:
            continue
        remaining = headers.get(f"x-ratelimit-remaining-{limit}", "").strip()
        (exhausted if remaining == "0" else others).append(now + delay)
    if exhausted:
        return ResetHint(max(exhausted), "x-ratelimit-reset")
    if others:
        return ResetHint(min(others), "x-ratelimit-reset")
    return None


def reset_hint(
    headers: Mapping[str, str], now: float, body_retry_after: float | None = None
) -> ResetHint | None:
    """The best reset time an upstream error response offers, or None."""
    unified = unified_rejection(headers, now)
    if unified is not None:
        return unified
    hint = retry_after(headers, now)
    if hint is not None:
        return hint
    if body_retry_after is not None:
        delay = _finite_delay(body_retry_after)
        if delay is not None:
            return ResetHint(now + delay, "RetryInfo.retryDelay")
    return anthropic_limit_reset(headers, now) or openai_limit_reset(headers, now)


def is_unified_rejection(headers: Mapping[str, str]) -> bool:
    return bool(_rejected_windows(headers))
