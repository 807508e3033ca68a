"""Optional polling of Claude's usage endpoint for accounts' 5-hour / 7-day windows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from accounts import windows
from accounts.oauth import usage
from tests.fakes.oauth import USAGE_PATH
from tests.oauth_helpers import make_account, oauth, token_row  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

# Reset times within the horizon ratelimit.parse_timestamp accepts (whole seconds, "Z" form).
RESET_5H = float(int(time.time()) + 7200)
RESET_5H_TEXT = datetime.fromtimestamp(RESET_5H, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_calls(oauth) -> list:  # noqa: F811
    return [r for r in oauth.server.requests if r.path == USAGE_PATH]


async def test_it_stores_the_windows_the_usage_endpoint_reports(oauth, settings):  # noqa: F811
    settings.CLAUDE_USAGE_POLL_SECONDS = 300
    credential = make_account(oauth)
    assert await usage.poll(usage.interval()) == 1

    (call,) = usage_calls(oauth)
    assert call.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert call.headers["authorization"].startswith("Bearer ")
    stored = windows.from_stored(token_row(credential).quota_windows)
    moments = [
        datetime.fromisoformat(oauth.usage[key]["resets_at"]).timestamp()
        for key in ("five_hour", "seven_day")
    ]
    assert [(w.name, w.utilization, w.reset_at) for w in stored] == [
        ("5h", 0.42, moments[0]),
        ("7d", 0.075, moments[1]),
    ]
    # Quota-aware routing reads the same in memory, without a query.
    assert windows.board.headroom(credential.pk, time.time()) == pytest.approx(0.58)


async def test_it_polls_an_account_at_most_once_per_interval_across_workers(oauth, settings):  # noqa: F811
    settings.CLAUDE_USAGE_POLL_SECONDS = 300
    make_account(oauth)
    assert await usage.poll(300) == 1
    # Another worker (or this one) asking again within the interval finds nothing due.
    assert await usage.poll(300) == 0
    assert len(usage_calls(oauth)) == 1


async def test_it_leaves_an_account_that_needs_login_alone(oauth, settings):  # noqa: F811
    from accounts.models import AccountState

    credential = make_account(oauth)
    row = token_row(credential)
    row.state = AccountState.NEEDS_LOGIN
    row.save()
    assert await usage.poll(300) == 0
    assert usage_calls(oauth) == []


async def test_it_keeps_the_last_windows_when_the_endpoint_refuses(oauth, settings):  # noqa: F811
    credential = make_account(oauth)
    oauth.usage = {"error": {"type": "permission_error"}}
    assert await usage.poll(300) == 0
    assert token_row(credential).quota_windows == []


def test_it_is_off_by_default_and_never_polls_more_often_than_every_two_minutes(settings):
    settings.CLAUDE_USAGE_POLL_SECONDS = 0
    assert usage.interval() == 0
    settings.CLAUDE_USAGE_POLL_SECONDS = 5
    assert usage.interval() == 120


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {"five_hour": {"utilization": 100, "resets_at": RESET_5H_TEXT}},
            [("5h", 1.0, RESET_5H, "rejected")],
        ),
        ({"seven_day": {"utilization": None, "resets_at": None}}, [("7d", None, None, "")]),
        ({"five_hour": "soon", "seven_day": {"utilization": True}}, [("7d", None, None, "")]),
        ({}, []),
        ([], []),
        (None, []),
    ],
)
def test_it_reads_the_usage_answer_defensively(answer, expected):
    found = windows.parse_usage(answer, time.time())
    assert [(w.name, w.utilization, w.reset_at, w.status) for w in found] == expected
