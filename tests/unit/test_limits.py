"""The limits policy (accounts.limits): windows, the order of checks, the 429's words."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from accounts.limits import Counts, KeyLimits, check, micro_usd, rejection, windows

NOW = datetime(2026, 12, 2, 13, 45, 30, tzinfo=UTC).timestamp()  # a Wednesday


def test_it_places_a_moment_in_its_minute_and_budget_period():
    day = windows(NOW, "day")
    assert day.minute_end - NOW == 30
    assert datetime.fromtimestamp(day.period, UTC) == datetime(2026, 12, 2, tzinfo=UTC)
    week = windows(NOW, "week")
    assert datetime.fromtimestamp(week.period, UTC) == datetime(2026, 11, 30, tzinfo=UTC)
    assert datetime.fromtimestamp(week.period_end, UTC) == datetime(2026, 12, 7, tzinfo=UTC)
    month = windows(NOW, "month")
    assert datetime.fromtimestamp(month.period, UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(month.period_end, UTC) == datetime(2027, 1, 1, tzinfo=UTC)


def test_it_admits_up_to_each_limit_and_not_one_more():
    limits = KeyLimits(rpm=10, concurrent=2)
    assert check(limits, Counts(requests=9, in_flight=1), tokens=0, cost=0) is None
    assert check(limits, Counts(requests=10), tokens=0, cost=0) == "rpm"
    assert check(limits, Counts(in_flight=2), tokens=0, cost=0) == "concurrent"


def test_it_stops_the_request_whose_reservation_would_cross_a_budget():
    limits = KeyLimits(budget_tokens=1000, tpm=5000)
    assert check(limits, Counts(budget_tokens=900), tokens=100, cost=0) is None
    assert check(limits, Counts(budget_tokens=900), tokens=101, cost=0) == "budget_tokens"
    money = KeyLimits(budget_micro_usd=micro_usd(Decimal("1.50")))
    assert check(money, Counts(budget_micro_usd=1_499_000), tokens=0, cost=1_000) is None
    assert check(money, Counts(budget_micro_usd=1_499_000), tokens=0, cost=1_001) == "budget_usd"


def test_it_names_budgets_before_per_minute_limits():
    limits = KeyLimits(rpm=1, budget_tokens=10)
    assert check(limits, Counts(requests=5, budget_tokens=10), tokens=1, cost=0) == "budget_tokens"


def test_it_ignores_limits_a_key_does_not_have():
    assert not KeyLimits().any
    assert check(KeyLimits(), Counts(10**9, 10**9, 10**9, 10**9, 10**9), tokens=5, cost=5) is None


def test_it_says_which_limit_and_when_it_frees_up():
    limits = KeyLimits(
        rpm=10, budget_period="day", budget_tokens=50_000, budget_micro_usd=2_500_000
    )
    rpm = rejection("rpm", limits, windows(NOW, "day"), NOW)
    assert rpm.retry_after == 30
    assert (
        rpm.message
        == "This API key's limit of 10 requests per minute is reached; it frees up in 30 s."
    )
    tokens = rejection("budget_tokens", limits, windows(NOW, "day"), NOW)
    assert tokens.message == (
        "This API key has used its daily budget of 50,000 tokens; it renews at 2026-12-03 00:00 UTC."
    )
    assert tokens.retry_after == (10 * 3600 + 14 * 60 + 30)
    money = rejection("budget_usd", limits, windows(NOW, "day"), NOW)
    assert "daily budget of $2.50" in money.message


def test_it_rounds_money_up_to_whole_micro_dollars():
    assert micro_usd(Decimal("0.0000001")) == 1
    assert micro_usd(Decimal("1.25")) == 1_250_000
    assert micro_usd(None) is None
