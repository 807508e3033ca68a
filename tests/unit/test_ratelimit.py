from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formatdate

import pytest

from accounts import ratelimit
from accounts.ratelimit import MAX_DELAY_SECONDS, ResetHint

NOW = 1_700_000_000.0


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# retry-after / retry-after-ms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30), ("0", 0), ("1.5", 1.5), ("  7 ", 7), ("\t12\n", 12), ("1e3", 1000)],
)
def test_it_reads_retry_after_seconds(value: str, seconds: float) -> None:
    assert ratelimit.retry_after({"retry-after": value}, NOW) == ResetHint(
        NOW + seconds, "retry-after"
    )


def test_it_reads_a_future_http_date() -> None:
    hint = ratelimit.retry_after({"retry-after": http_date(NOW + 120)}, NOW)
    assert hint == ResetHint(NOW + 120, "retry-after")


def test_it_reads_a_past_http_date_as_retry_now() -> None:
    hint = ratelimit.retry_after({"retry-after": http_date(NOW - 3600)}, NOW)
    assert hint == ResetHint(NOW, "retry-after")


def test_it_caps_a_far_http_date() -> None:
    hint = ratelimit.retry_after({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, NOW)
    assert hint is not None
    assert hint.retry_at == NOW + MAX_DELAY_SECONDS


def test_it_prefers_retry_after_ms() -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "30"}
    assert ratelimit.retry_after(headers, NOW) == ResetHint(NOW + 1.5, "retry-after-ms")


def test_it_falls_back_to_retry_after_when_ms_is_garbage() -> None:
    headers = {"retry-after-ms": "soon", "retry-after": "30"}
    assert ratelimit.retry_after(headers, NOW) == ResetHint(NOW + 30, "retry-after")


def test_it_caps_huge_retry_after_ms_in_seconds() -> None:
    # 10^12 ms is ~31.7 years: capped at MAX_DELAY_SECONDS, not at MAX_DELAY_SECONDS / 1000.
    hint = ratelimit.retry_after({"retry-after-ms": "1000000000000"}, NOW)
    assert hint == ResetHint(NOW + MAX_DELAY_SECONDS, "retry-after-ms")


@pytest.mark.parametrize(
    "value", ["soon", "", "   ", "NaN", "nan", "-5", "-0.5", "inf", "Infinity", "-inf", "1e999"]
)
def test_it_ignores_garbage_retry_after(value: str) -> None:
    assert ratelimit.retry_after({"retry-after": value}, NOW) is None
    assert ratelimit.retry_after({"retry-after-ms": value}, NOW) is None


@pytest.mark.parametrize("value", ["99999999999", "1e15", str(MAX_DELAY_SECONDS + 1)])
def test_it_caps_huge_retry_after_numbers(value: str) -> None:
    hint = ratelimit.retry_after({"retry-after": value}, NOW)
    assert hint == ResetHint(NOW + MAX_DELAY_SECONDS, "retry-after")


def test_it_returns_none_without_headers() -> None:
    assert ratelimit.retry_after({}, NOW) is None
    assert ratelimit.reset_hint({}, NOW) is None


@pytest.mark.parametrize(
    "value", ["Wed, 21 Oct 2015 07:28:00", "garbage", "Mon, 99 Foo 2020 99:99:99 GMT"]
)
def test_it_ignores_unreadable_http_dates(value: str) -> None:
    assert ratelimit.parse_http_date(value, NOW) is None


def test_it_parses_seconds_helper() -> None:
    assert ratelimit.parse_seconds(None) is None
    assert ratelimit.parse_seconds(" 3 ") == 3
    assert ratelimit.parse_seconds("abc") is None


# parse_timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        str(int(NOW + 600)),
        f"{NOW + 600:.3f}",
        str(int((NOW + 600) * 1000)),  # milliseconds
        rfc3339(NOW + 600),
        rfc3339(NOW + 600).replace("Z", "+00:00"),
        rfc3339(NOW + 600).lower(),  # RFC 3339 allows "t" and "z"
        datetime.fromtimestamp(NOW + 600, UTC).astimezone().isoformat(),
    ],
)
def test_it_parses_timestamps(value: str) -> None:
    assert ratelimit.parse_timestamp(value, NOW) == pytest.approx(NOW + 600)


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "NaN", "inf", "2026-01-01T00:00:00", str(int(NOW - 10)), rfc3339(NOW - 10)],
)
def test_it_rejects_unreadable_naive_or_past_timestamps(value: str | None) -> None:
    assert ratelimit.parse_timestamp(value, NOW) is None


def test_it_caps_far_timestamps() -> None:
    assert ratelimit.parse_timestamp("9999999999", NOW) == NOW + MAX_DELAY_SECONDS


# Anthropic unified (subscription) windows ---------------------------------------------------


@pytest.mark.parametrize("window", ["5h", "7d"])
@pytest.mark.parametrize("as_rfc3339", [False, True])
def test_it_blocks_the_credential_until_a_rejected_unified_window_resets(
    window: str, as_rfc3339: bool
) -> None:
    reset = NOW + 3600
    headers = {
        f"anthropic-ratelimit-unified-{window}-status": "rejected",
        f"anthropic-ratelimit-unified-{window}-reset": rfc3339(reset)
        if as_rfc3339
        else str(int(reset)),
    }
    hint = ratelimit.reset_hint(headers, NOW)
    assert hint == ResetHint(reset + 1, "anthropic-ratelimit-unified", credential_wide=True)
    assert ratelimit.is_unified_rejection(headers)


def test_it_takes_the_latest_future_unified_deadline() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3600)),
        "anthropic-ratelimit-unified-7d-status": "rejected",
        "anthropic-ratelimit-unified-7d-reset": rfc3339(NOW + 86400),
        "anthropic-ratelimit-unified-reset": str(int(NOW + 7200)),
    }
    hint = ratelimit.unified_rejection(headers, NOW)
    assert hint is not None
    assert hint.retry_at == NOW + 86400 + 1
    assert hint.credential_wide


def test_it_ignores_past_unified_deadlines() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 600)),
        "anthropic-ratelimit-unified-reset": str(int(NOW - 600)),
    }
    hint = ratelimit.unified_rejection(headers, NOW)
    assert hint is not None and hint.retry_at == NOW + 601


def test_it_ignores_the_reset_of_an_allowed_window() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 600)),
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-reset": str(int(NOW + 500_000)),
    }
    hint = ratelimit.unified_rejection(headers, NOW)
    assert hint is not None and hint.retry_at == NOW + 601


def test_it_reads_the_overall_unified_status() -> None:
    headers = {
        "anthropic-ratelimit-unified-status": "Rejected ",
        "anthropic-ratelimit-unified-reset": str(int(NOW + 900)),
    }
    assert ratelimit.is_unified_rejection(headers)
    assert ratelimit.reset_hint(headers, NOW) == ResetHint(
        NOW + 901, "anthropic-ratelimit-unified", credential_wide=True
    )


def test_it_does_not_treat_an_overage_only_rejection_as_credential_wide() -> None:
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-7d_oi-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(int(NOW + 900)),
        "retry-after": "20",
    }
    assert not ratelimit.is_unified_rejection(headers)
    assert ratelimit.unified_rejection(headers, NOW) is None
    assert ratelimit.reset_hint(headers, NOW) == ResetHint(NOW + 20, "retry-after")


def test_it_treats_allowed_windows_as_no_rejection() -> None:
    headers = {
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-status": "allowed_warning",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 900)),
    }
    assert not ratelimit.is_unified_rejection(headers)
    assert ratelimit.reset_hint(headers, NOW) is None


def test_it_falls_back_when_a_rejection_has_no_reset() -> None:
    headers = {"anthropic-ratelimit-unified-5h-status": "rejected", "retry-after": "15"}
    assert ratelimit.is_unified_rejection(headers)
    assert ratelimit.unified_rejection(headers, NOW) is None
    assert ratelimit.reset_hint(headers, NOW) == ResetHint(NOW + 15, "retry-after")


def test_it_lets_a_unified_window_win_over_a_short_retry_after() -> None:
    headers = {
        "retry-after": "30",
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3600)),
    }
    hint = ratelimit.reset_hint(headers, NOW)
    assert hint is not None and hint.retry_at == NOW + 3601 and hint.credential_wide


# Anthropic per-limit resets --------------------------------------------------------------


def test_it_prefers_exhausted_anthropic_limits() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": rfc3339(NOW + 5),
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": rfc3339(NOW + 50),
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": rfc3339(NOW + 40),
    }
    assert ratelimit.anthropic_limit_reset(headers, NOW) == ResetHint(
        NOW + 50, "anthropic-ratelimit-reset"
    )


def test_it_takes_the_soonest_anthropic_reset_when_none_is_exhausted() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-requests-reset": rfc3339(NOW + 9),
        "anthropic-ratelimit-input-tokens-reset": rfc3339(NOW + 4),
    }
    assert ratelimit.reset_hint(headers, NOW) == ResetHint(NOW + 4, "anthropic-ratelimit-reset")


def test_it_ignores_unreadable_anthropic_resets() -> None:
    headers = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "whenever",
    }
    assert ratelimit.anthropic_limit_reset(headers, NOW) is None


# OpenAI-style Go durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1),
        ("6m0s", 360),
        ("1h2m3.5s", 3723.5),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("10ns", 1e-8),
        ("2h", 7200),
        ("1.5", 1.5),
        (" 20s ", 20),
    ],
)
def test_it_parses_go_durations(value: str, seconds: float) -> None:
    assert ratelimit.parse_go_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "5x", "1s2", "s", "-1s", "1s 2m", "abc", "inf"])
def test_it_rejects_invalid_go_durations(value: str | None) -> None:
    assert ratelimit.parse_go_duration(value) is None


def test_it_caps_huge_go_durations() -> None:
    assert ratelimit.parse_go_duration("100000h") == MAX_DELAY_SECONDS


def test_it_reads_openai_resets_preferring_exhausted_limits() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert ratelimit.reset_hint(headers, NOW) == ResetHint(NOW + 360, "x-ratelimit-reset")


def test_it_takes_the_soonest_openai_reset_when_none_is_exhausted() -> None:
    headers = {"x-ratelimit-reset-requests": "12ms", "x-ratelimit-reset-tokens": "5x"}
    hint = ratelimit.openai_limit_reset(headers, NOW)
    assert hint is not None
    assert hint.retry_at == pytest.approx(NOW + 0.012)


# Precedence ------------------------------------------------------------------------------


def test_it_uses_the_body_retry_delay_when_no_header_says() -> None:
    headers = {"x-ratelimit-reset-requests": "1s"}
    hint = ratelimit.reset_hint(headers, NOW, body_retry_after=42.0)
    assert hint == ResetHint(NOW + 42, "RetryInfo.retryDelay")


def test_it_ignores_a_garbage_body_retry_delay() -> None:
    headers = {"x-ratelimit-reset-requests": "1s"}
    for garbage in (-1.0, float("nan"), float("inf")):
        hint = ratelimit.reset_hint(headers, NOW, body_retry_after=garbage)
        assert hint == ResetHint(NOW + 1, "x-ratelimit-reset")


def test_it_caps_the_body_retry_delay() -> None:
    hint = ratelimit.reset_hint({}, NOW, body_retry_after=1e12)
    assert hint is not None and hint.retry_at == NOW + MAX_DELAY_SECONDS


def test_it_follows_the_documented_precedence() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3600)),
        "retry-after-ms": "2000",
        "retry-after": "30",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": rfc3339(NOW + 50),
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "70s",
    }
    body = 10.0
    # Each step removes the source that just won, so the next one in line shows.
    expected = [
        ("anthropic-ratelimit-unified", NOW + 3601, "anthropic-ratelimit-unified-5h-status"),
        ("retry-after-ms", NOW + 2, "retry-after-ms"),
        ("retry-after", NOW + 30, "retry-after"),
        ("RetryInfo.retryDelay", NOW + 10, None),
        ("anthropic-ratelimit-reset", NOW + 50, "anthropic-ratelimit-tokens-reset"),
        ("x-ratelimit-reset", NOW + 70, "x-ratelimit-reset-tokens"),
    ]
    for source, retry_at, remove in expected:
        hint = ratelimit.reset_hint(headers, NOW, body_retry_after=body)
        assert hint is not None
        assert (hint.source, hint.retry_at) == (source, retry_at)
        if remove is None:
            body = None
        else:
            del headers[remove]
    assert ratelimit.reset_hint(headers, NOW, body_retry_after=body) is None
