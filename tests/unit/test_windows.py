"""Quota windows from Claude's unified rate-limit headers, and quota-aware selection."""

from __future__ import annotations

from dataclasses import dataclass

from accounts import windows
from accounts.rotation import QUOTA_AWARE, Selector

NOW = 1_767_000_000.0


def headers(five: str, seven: str, *, status: str = "allowed") -> dict[str, str]:
    return {
        "anthropic-ratelimit-unified-5h-utilization": five,
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 3 * 3600)),
        "anthropic-ratelimit-unified-5h-status": status,
        "anthropic-ratelimit-unified-7d-utilization": seven,
        "anthropic-ratelimit-unified-7d-reset": str(int(NOW + 4 * 86400)),
        "anthropic-ratelimit-unified-7d-status": "allowed",
    }


def test_it_reads_both_windows_from_the_headers():
    five, seven = windows.parse(headers("0.42", "0.1"), NOW)
    assert five == windows.Window("5h", 0.42, NOW + 3 * 3600, "allowed")
    assert seven.name == "7d" and seven.utilization == 0.1
    assert windows.parse({"content-type": "application/json"}, NOW) == ()


def test_it_takes_headroom_from_the_binding_window_and_forgets_a_window_that_reset():
    parsed = windows.parse(headers("0.42", "0.9"), NOW)
    assert round(windows.headroom(parsed, NOW), 2) == 0.1
    assert windows.headroom(parsed, NOW + 5 * 86400) == 1.0  # both reset since
    rejected = windows.parse(headers("0.7", "0.1", status="rejected"), NOW)
    assert windows.headroom(rejected, NOW) == 0.0
    assert windows.headroom((), NOW) == 1.0


def test_it_describes_windows_in_plain_words():
    parsed = windows.parse(headers("0.42", "0.1"), NOW)
    assert windows.describe(parsed, NOW) == [
        "5-hour: 42 % used, resets in 3h 00m",
        "7-day: 10 % used, resets in 4d 0h",
    ]
    stored = [window.as_dict() for window in parsed]
    assert windows.from_stored(stored) == parsed


def test_it_asks_to_persist_changes_at_most_every_30_seconds_but_a_rejection_at_once():
    board = windows.WindowBoard()
    assert board.observe(1, headers("0.1", "0.1"), NOW)
    assert not board.observe(1, headers("0.1", "0.1"), NOW + 1)  # unchanged
    assert not board.observe(1, headers("0.2", "0.1"), NOW + 2)  # changed, too soon
    assert board.headroom(1, NOW + 2) == 0.8  # but routing sees it at once
    assert board.observe(1, headers("0.3", "0.1", status="rejected"), NOW + 3)
    assert board.observe(1, headers("0.4", "0.1"), NOW + 40)


@dataclass(frozen=True)
class Candidate:
    credential_id: int
    priority: int = 0
    weight: int = 1


def test_it_prefers_the_account_with_the_most_headroom_within_the_top_tier():
    left = {1: 0.2, 2: 0.7, 3: 0.95}
    tier = [Candidate(1), Candidate(2), Candidate(3, priority=-1)]
    picks = {
        Selector()
        .pick(
            tier,
            strategy=QUOTA_AWARE,
            key="m",
            cursor=cursor,
            headroom=lambda cid, now: left[cid],
        )
        .credential_id
        for cursor in range(4)
    }
    assert picks == {2}  # 3 has more left but a lower priority


def test_it_rotates_between_accounts_with_equal_headroom():
    left = {1: 0.5, 2: 0.51, 3: 0.1}
    candidates = [Candidate(1), Candidate(2), Candidate(3)]
    picks = [
        Selector()
        .pick(
            candidates,
            strategy=QUOTA_AWARE,
            key="m",
            cursor=cursor,
            headroom=lambda cid, now: left[cid],
        )
        .credential_id
        for cursor in range(4)
    ]
    assert picks == [1, 2, 1, 2]
