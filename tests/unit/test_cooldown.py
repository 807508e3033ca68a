from __future__ import annotations

import pytest

from accounts import cooldown
from accounts.cooldown import (
    ATTENTION_SECONDS,
    MAX_BACKOFF_SECONDS,
    NOT_FOUND_SECONDS,
    Failure,
    FailureKind,
    QuotaRecord,
    apply_failure,
    backoff_seconds,
    classify,
    starts_retry_round,
)

NOW = 1_700_000_000.0


def failure(
    status: int,
    error_type: str = "",
    message: str = "upstream said no",
    headers: dict[str, str] | None = None,
    *,
    now: float = NOW,
    code: str = "",
    body_retry_after: float | None = None,
) -> Failure:
    return classify(
        status=status,
        error_type=error_type,
        message=message,
        headers=headers or {},
        now=now,
        code=code,
        body_retry_after=body_retry_after,
    )


def apply(
    previous: QuotaRecord | None,
    failed: Failure,
    now: float = NOW,
    *,
    transient_seconds: int = 60,
    cooling_disabled: bool = False,
) -> QuotaRecord | None:
    return apply_failure(
        previous,
        failed,
        now,
        transient_seconds=transient_seconds,
        cooling_disabled=cooling_disabled,
    )


# classify -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 409, 413, 422])
def test_it_classifies_request_faults_by_status(status: int) -> None:
    result = failure(status, "some_error")
    assert result.kind is FailureKind.REQUEST_FAULT
    assert not result.counts_against_credential
    assert result.retry_at is None


@pytest.mark.parametrize("status", [408, 418])
@pytest.mark.parametrize(
    "error_type", ["invalid_request_error", "invalid_request", "bad_request_error"]
)
def test_it_classifies_an_invalid_request_type_as_a_fault_at_other_statuses(
    status: int, error_type: str
) -> None:
    assert failure(status, error_type).kind is FailureKind.REQUEST_FAULT


@pytest.mark.parametrize(
    ("status", "kind"), [(403, FailureKind.ATTENTION), (404, FailureKind.MODEL_NOT_FOUND)]
)
def test_it_holds_403_and_404_against_the_credential_whatever_the_body_type(status, kind) -> None:
    # OpenAI-style servers answer an unknown model with 404 invalid_request_error: fail over.
    assert failure(status, "invalid_request_error").kind is kind


def test_it_classifies_prompt_too_long_as_a_request_fault() -> None:
    result = failure(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000")
    assert result.kind is FailureKind.REQUEST_FAULT


@pytest.mark.parametrize("code", ["context_length_exceeded", "string_above_max_length"])
def test_it_classifies_request_fault_codes(code: str) -> None:
    assert failure(404, "", code=code).kind is FailureKind.REQUEST_FAULT


@pytest.mark.parametrize("status", [402, 429])
def test_it_never_treats_402_or_429_as_a_request_fault(status: int) -> None:
    result = failure(status, "invalid_request_error", code="context_length_exceeded")
    assert result.kind is not FailureKind.REQUEST_FAULT
    assert result.counts_against_credential


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_it_never_treats_5xx_as_a_request_fault(status: int) -> None:
    assert failure(status, "invalid_request_error").kind is FailureKind.TRANSIENT


def test_it_treats_a_401_authentication_error_as_attention() -> None:
    result = failure(401, "authentication_error", "invalid x-api-key")
    assert result.kind is FailureKind.ATTENTION
    assert result.reason == "unauthorized"
    assert result.credential_wide
    assert result.retry_at == NOW + ATTENTION_SECONDS


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "unauthorized"), (402, "payment_required"), (403, "forbidden")]
)
def test_it_needs_attention_for_401_402_403(status: int, reason: str) -> None:
    result = failure(status, "")
    assert result.kind is FailureKind.ATTENTION
    assert result.reason == reason
    assert result.retry_at == NOW + 30 * 60
    assert result.credential_wide
    assert result.retry_source == "policy: 30 min"


def test_it_marks_a_404_model_not_found_for_12_hours() -> None:
    result = failure(404, "not_found_error", "model: claude-nope")
    assert result.kind is FailureKind.MODEL_NOT_FOUND
    assert result.retry_at == NOW + NOT_FOUND_SECONDS == NOW + 12 * 3600
    assert not result.credential_wide


@pytest.mark.parametrize("status", [400, 422])
@pytest.mark.parametrize(
    "message",
    [
        "model_not_supported",
        "The requested model is not supported.",
        "Unsupported model: foo",
        "This model is not available for your plan",
        "Model unavailable",
    ],
)
def test_it_treats_model_unsupported_messages_as_model_not_found(status: int, message: str) -> None:
    result = failure(status, "invalid_request_error", message)
    assert result.kind is FailureKind.MODEL_NOT_FOUND
    assert result.retry_at == NOW + NOT_FOUND_SECONDS


def test_it_does_not_read_model_unsupported_phrases_at_other_statuses() -> None:
    assert failure(409, "", "model not supported").kind is FailureKind.REQUEST_FAULT


def test_it_rate_limits_a_429_without_hints() -> None:
    result = failure(429, "rate_limit_error")
    assert result.kind is FailureKind.RATE_LIMITED
    assert result.reason == "rate_limited"
    assert result.retry_at is None
    assert not result.credential_wide


def test_it_rate_limits_a_429_until_retry_after() -> None:
    result = failure(429, "rate_limit_error", headers={"retry-after": "30"})
    assert result.retry_at == NOW + 30
    assert result.retry_source == "retry-after"


def test_it_uses_the_body_retry_delay_of_a_429() -> None:
    result = failure(429, "", body_retry_after=7.0)
    assert result.retry_at == NOW + 7
    assert result.retry_source == "RetryInfo.retryDelay"


def test_it_makes_a_unified_rejection_credential_wide() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3600)),
    }
    result = failure(429, "rate_limit_error", headers=headers)
    assert result.kind is FailureKind.RATE_LIMITED
    assert result.credential_wide
    assert result.reason == "credential_quota"
    assert result.retry_at == NOW + 3601


def test_it_keeps_a_unified_rejection_without_reset_credential_wide() -> None:
    result = failure(429, headers={"anthropic-ratelimit-unified-7d-status": "rejected"})
    assert result.credential_wide
    assert result.retry_at is None


@pytest.mark.parametrize("status", [0, 408, 500, 502, 503, 504, 529, 405, 410])
def test_it_treats_other_failures_as_transient(status: int) -> None:
    result = failure(status, "api_error")
    assert result.kind is FailureKind.TRANSIENT
    assert result.reason == "transient"
    assert result.counts_against_credential
    assert not result.credential_wide


def test_it_starts_retry_rounds_only_for_the_reference_statuses() -> None:
    for status in (403, 408, 429, 500, 502, 503, 504):
        assert starts_retry_round(status)
    for status in (0, 400, 401, 402, 404, 529):
        assert not starts_retry_round(status)


# backoff_seconds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "seconds"),
    [(-1, 0), (0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (10, 512), (11, 1024), (12, 1800)],
)
def test_it_backs_off_exponentially(level: int, seconds: float) -> None:
    assert backoff_seconds(level) == seconds


def test_it_caps_backoff_at_30_minutes() -> None:
    assert MAX_BACKOFF_SECONDS == 1800
    for level in (12, 31, 32, 100, 10_000):
        assert backoff_seconds(level) == 1800


# apply_failure: 429 -----------------------------------------------------------------------


def test_it_follows_scenario_15() -> None:
    # First 429 without a reset: level 1, one second.
    first = apply(None, failure(429))
    assert first is not None
    assert (first.status, first.backoff_level, first.next_retry_at) == ("cooling", 1, NOW + 1)
    assert first.reason == "rate_limited"
    assert first.blocks(NOW + 0.5)

    # A second 429 inside the window: same level, same deadline.
    second = apply(first, failure(429, now=NOW + 0.5), NOW + 0.5)
    assert second is not None
    assert (second.backoff_level, second.next_retry_at) == (1, NOW + 1)

    # After the window: level 2, two seconds.
    later = NOW + 1.2
    third = apply(second, failure(429, now=later), later)
    assert third is not None
    assert (third.backoff_level, third.next_retry_at) == (2, later + 2)
    assert third.reset_source == "backoff level 2"


def test_it_caps_escalation_at_30_minutes() -> None:
    record: QuotaRecord | None = None
    now = NOW
    windows = []
    for _ in range(16):
        record = apply(record, failure(429, now=now), now)
        assert record is not None and record.next_retry_at is not None
        windows.append(record.next_retry_at - now)
        now = record.next_retry_at + 0.001  # the next 429 arrives just after the window
    assert windows == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] + [1800] * 5
    assert record is not None and record.backoff_level == 16


def test_it_cools_until_the_upstream_reset() -> None:
    record = apply(None, failure(429, headers={"retry-after": "30"}))
    assert record is not None
    assert record.next_retry_at == NOW + 30
    assert record.reset_source == "retry-after"
    assert record.backoff_level == 0
    assert record.status == "cooling"


def test_it_never_lets_a_reset_header_shorten_an_open_later_window() -> None:
    long = apply(None, failure(429, headers={"retry-after": "600"}))
    short = apply(long, failure(429, headers={"retry-after": "5"}, now=NOW + 10), NOW + 10)
    assert short is not None
    assert short.next_retry_at == NOW + 600
    assert short.reset_source == "retry-after"


def test_it_lets_a_reset_header_extend_an_open_window() -> None:
    short = apply(None, failure(429, headers={"retry-after": "5"}))
    long = apply(short, failure(429, headers={"retry-after-ms": "600000"}, now=NOW + 1), NOW + 1)
    assert long is not None
    assert long.next_retry_at == NOW + 601
    assert long.reset_source == "retry-after-ms"


def test_it_keeps_the_source_of_the_deadline_it_kept() -> None:
    backoff = QuotaRecord(
        status="cooling",
        reason="rate_limited",
        next_retry_at=NOW + 900,
        backoff_level=10,
        reset_source="backoff level 10",
    )
    record = apply(backoff, failure(429, headers={"retry-after": "3"}))
    assert record is not None
    assert (record.next_retry_at, record.reset_source) == (NOW + 900, "backoff level 10")


def test_it_accepts_an_earlier_reset_once_the_window_closed() -> None:
    old = QuotaRecord(status="cooling", reason="rate_limited", next_retry_at=NOW - 1)
    record = apply(old, failure(429, headers={"retry-after": "3"}))
    assert record is not None and record.next_retry_at == NOW + 3


def test_it_records_a_unified_rejection() -> None:
    headers = {
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3600)),
    }
    record = apply(None, failure(429, headers=headers))
    assert record is not None
    assert record.reason == "credential_quota"
    assert record.next_retry_at == NOW + 3601
    assert record.reset_source == "anthropic-ratelimit-unified"


def test_it_records_the_last_error_and_status() -> None:
    record = apply(None, failure(429, message="x" * 5000))
    assert record is not None
    assert record.last_status == 429
    assert len(record.last_error) == 2000


# apply_failure: the rest ------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "until"), [(60, NOW + 60), (30, NOW + 30)])
def test_it_cools_transient_failures_for_the_setting(seconds: int, until: float) -> None:
    record = apply(None, failure(503), transient_seconds=seconds)
    assert record is not None
    assert (record.status, record.reason, record.next_retry_at) == ("cooling", "transient", until)
    assert record.reset_source == "policy: transient"


@pytest.mark.parametrize("seconds", [0, -1])
def test_it_does_not_cool_transient_failures_when_the_setting_is_off(seconds: int) -> None:
    record = apply(None, failure(503), transient_seconds=seconds)
    assert record is not None
    assert record.status == "ok"
    assert record.next_retry_at is None
    assert not record.blocks(NOW)
    assert record.last_status == 503


def test_it_extends_a_transient_window() -> None:
    first = apply(None, failure(503), transient_seconds=60)
    again = apply(first, failure(502, now=NOW + 10), NOW + 10, transient_seconds=60)
    assert again is not None and again.next_retry_at == NOW + 70


@pytest.mark.parametrize("seconds", [60, 0, -1])
def test_it_does_not_let_a_transient_failure_cut_a_longer_window(seconds: int) -> None:
    # A request already in flight when a 429 opened a 10-minute window comes back with a 529.
    limited = apply(None, failure(429, headers={"retry-after": "600"}))
    record = apply(limited, failure(529, now=NOW + 1), NOW + 1, transient_seconds=seconds)
    assert record is not None
    assert record.next_retry_at == NOW + 600
    assert record.reason == "rate_limited"
    assert record.status == "cooling"
    assert record.last_status == 529


def test_it_keeps_the_backoff_level_across_a_transient_failure() -> None:
    limited = QuotaRecord(status="cooling", reason="rate_limited", backoff_level=3)
    record = apply(limited, failure(500))
    assert record is not None and record.backoff_level == 3


@pytest.mark.parametrize("status", [401, 402, 403])
def test_it_marks_attention_for_30_minutes(status: int) -> None:
    record = apply(None, failure(status))
    assert record is not None
    assert record.status == "attention"
    assert record.next_retry_at == NOW + 1800
    assert record.reset_source == "policy: 30 min"


def test_it_cools_a_missing_model_for_12_hours() -> None:
    record = apply(None, failure(404))
    assert record is not None
    assert (record.status, record.reason) == ("cooling", "model_not_found")
    assert record.next_retry_at == NOW + 12 * 3600


def test_it_changes_nothing_for_a_request_fault() -> None:
    previous = QuotaRecord(status="cooling", reason="rate_limited", next_retry_at=NOW + 5)
    assert apply(previous, failure(400, "invalid_request_error")) is None
    assert apply(None, failure(422)) is None


@pytest.mark.parametrize("status", [429, 503, 401, 404])
def test_it_never_blocks_with_cooling_disabled(status: int) -> None:
    headers = {"retry-after": "60"}
    record = apply(None, failure(status, message="nope", headers=headers), cooling_disabled=True)
    assert record is not None
    assert record.status == "ok"
    assert record.next_retry_at is None
    assert not record.blocks(NOW)
    assert (record.last_status, record.last_error) == (status, "nope")


def test_it_clears_an_open_window_when_cooling_is_disabled() -> None:
    open_window = QuotaRecord(status="cooling", reason="rate_limited", next_retry_at=NOW + 600)
    record = apply(open_window, failure(429), cooling_disabled=True)
    assert record is not None and not record.blocks(NOW)


def test_it_describes_a_clean_record() -> None:
    assert QuotaRecord().is_clean
    assert not QuotaRecord(last_error="x").is_clean
    assert not QuotaRecord(backoff_level=1).is_clean
    assert not QuotaRecord(status="cooling").is_clean


def test_it_blocks_only_before_the_deadline() -> None:
    record = QuotaRecord(status="cooling", next_retry_at=NOW + 1)
    assert record.blocks(NOW)
    assert not record.blocks(NOW + 1)
    assert not QuotaRecord().blocks(NOW)


def test_it_names_the_transient_cooldown_that_ends_first_as_the_probe():
    blocked = [
        ("a", QuotaRecord(status="cooling", reason="transient", next_retry_at=160.0)),
        ("b", QuotaRecord(status="cooling", reason="transient", next_retry_at=130.0)),
        ("c", QuotaRecord(status="cooling", reason="rate_limited", next_retry_at=110.0)),
    ]
    assert cooldown.half_open_candidate(blocked) == "b"


def test_it_never_names_a_probe_among_timed_or_attention_cooldowns():
    blocked = [
        ("a", QuotaRecord(status="cooling", reason="rate_limited", next_retry_at=110.0)),
        ("b", QuotaRecord(status="cooling", reason="credential_quota", next_retry_at=120.0)),
        ("c", QuotaRecord(status="attention", reason="unauthorized", next_retry_at=130.0)),
        ("d", QuotaRecord(status="cooling", reason="model_not_found", next_retry_at=140.0)),
    ]
    assert cooldown.half_open_candidate(blocked) is None
    assert cooldown.half_open_candidate([]) is None
