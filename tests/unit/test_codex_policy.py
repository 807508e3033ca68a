"""Codex accounts in the pure policies: usage limits cool the account, quota windows from the
x-codex-* headers."""

from __future__ import annotations

from accounts import cooldown, windows

NOW = 1_800_000_000.0


def test_it_cools_the_whole_account_until_a_usage_limit_resets():
    failure = cooldown.classify(
        status=429,
        error_type="rate_limit_error",
        message="The usage limit has been reached",
        headers={},
        now=NOW,
        code="usage_limit_reached",
        body_retry_after=3600,
    )
    assert failure.kind is cooldown.FailureKind.RATE_LIMITED
    assert failure.credential_wide and failure.reason == "credential_quota"
    assert failure.retry_at == NOW + 3600
    record = cooldown.apply_failure(
        None, failure, NOW, transient_seconds=60, cooling_disabled=False
    )
    assert record is not None and record.next_retry_at == NOW + 3600


def test_it_backs_off_exponentially_on_capacity_for_that_model_only():
    failure = cooldown.classify(
        status=429,
        error_type="rate_limit_error",
        message="Selected model is at capacity",
        headers={},
        now=NOW,
        code="capacity",
    )
    assert not failure.credential_wide and failure.retry_at is None
    first = cooldown.apply_failure(None, failure, NOW, transient_seconds=60, cooling_disabled=False)
    assert first is not None and first.backoff_level == 1 and first.next_retry_at == NOW + 1
    later = NOW + 5
    second = cooldown.apply_failure(
        first, failure, later, transient_seconds=60, cooling_disabled=False
    )
    assert second is not None and second.backoff_level == 2 and second.next_retry_at == later + 2


def test_it_reads_codex_quota_windows():
    headers = {
        "x-codex-primary-used-percent": "42.5",
        "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-after-seconds": "600",
        "x-codex-secondary-used-percent": "100",
        "x-codex-secondary-reset-at": str(int(NOW + 86400)),
    }
    five, week = windows.parse(headers, NOW)
    assert (five.name, five.utilization, five.reset_at, five.status) == ("5h", 0.425, NOW + 600, "")
    assert (week.name, week.utilization, week.reset_at, week.status) == (
        "7d",
        1.0,
        NOW + 86400,
        "rejected",
    )
    assert windows.headroom((five, week), NOW) == 0.0


def test_it_prefers_anthropic_windows_and_ignores_garbage():
    assert windows.parse({"x-codex-primary-used-percent": "lots"}, NOW)[0].utilization is None
    anthropic = {
        "anthropic-ratelimit-unified-5h-utilization": "0.1",
        "x-codex-primary-used-percent": "90",
    }
    assert [w.utilization for w in windows.parse(anthropic, NOW)] == [0.1]
