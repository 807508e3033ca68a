"""Subscription quota windows (Claude's 5-hour and 7-day allowances) from response headers.

Every Claude response to an OAuth account carries the account's unified rate-limit state, the
headers Claude Code itself reads:

    anthropic-ratelimit-unified-5h-utilization   0.42   (fraction of the window used)
    anthropic-ratelimit-unified-5h-reset         1767323045 (unix seconds; RFC 3339 accepted)
    anthropic-ratelimit-unified-5h-status        allowed | allowed_warning | rejected
    … the same for 7d

Codex (ChatGPT) responses carry the same two allowances under other names, as percentages:

    x-codex-primary-used-percent           42.0   (the 5-hour window)
    x-codex-primary-reset-after-seconds    3600   (or x-codex-primary-reset-at, unix seconds)
    x-codex-secondary-…                           (the weekly window)

``parse`` turns either into plain data; ``WindowBoard`` keeps the latest per account in this
worker (for the ``quota-aware`` strategy, no query) and says when to persist them for the admin
and proxy_status (at most every PERSIST_SECONDS per account). A window whose reset time has
passed counts as unused: the allowance is back even before a response says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accounts.ratelimit import parse_seconds, parse_timestamp

WINDOWS = (("5h", "5-hour"), ("7d", "7-day"))
PREFIX = "anthropic-ratelimit-unified-"
CODEX_PREFIX = "x-codex-"
CODEX_WINDOWS = (("primary", "5h"), ("secondary", "7d"))
PERSIST_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # "5h" | "7d"
    utilization: float | None  # 0..1
    reset_at: float | None
    status: str = ""

    def used(self, now: float) -> float:
        """The fraction used right now (0 once the window has reset)."""
        if self.reset_at is not None and self.reset_at <= now:
            return 0.0
        if self.status == "rejected":
            return 1.0
        return min(max(self.utilization or 0.0, 0.0), 1.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "utilization": self.utilization,
            "reset_at": self.reset_at,
            "status": self.status,
        }


def parse(headers: Mapping[str, str], now: float) -> tuple[Window, ...]:
    """The windows the headers describe (none: not a subscription response)."""
    found = []
    for name, _ in WINDOWS:
        raw_use = headers.get(f"{PREFIX}{name}-utilization")
        reset = parse_timestamp(headers.get(f"{PREFIX}{name}-reset"), now)
        status = (headers.get(f"{PREFIX}{name}-status") or "").strip().lower()
        if raw_use is None and reset is None and not status:
            continue
        try:
            utilization = float(raw_use) if raw_use is not None else None
        except ValueError:
            utilization = None
        found.append(Window(name, utilization, reset, status))
    return tuple(found) or _parse_codex(headers, now)


def _parse_codex(headers: Mapping[str, str], now: float) -> tuple[Window, ...]:
    found = []
    for codex_name, name in CODEX_WINDOWS:
        prefix = f"{CODEX_PREFIX}{codex_name}-"
        raw_use = headers.get(prefix + "used-percent")
        reset = parse_timestamp(headers.get(prefix + "reset-at"), now)
        if reset is None:
            after = parse_seconds(headers.get(prefix + "reset-after-seconds"))
            reset = now + after if after is not None else None
        if raw_use is None and reset is None:
            continue
        try:
            utilization = min(max(float(raw_use) / 100, 0.0), 1.0) if raw_use is not None else None
        except ValueError:
            utilization = None
        status = "rejected" if utilization is not None and utilization >= 1.0 else ""
        found.append(Window(name, utilization, reset, status))
    return tuple(found)


# Claude's usage endpoint (GET /api/oauth/usage, what Claude Code's /usage shows) names the
# windows differently and gives utilization in percent:
#   {"five_hour": {"utilization": 42.0, "resets_at": "2026-12-02T05:00:00+00:00"},
#    "seven_day": {"utilization": 7.0, "resets_at": "…"}, "seven_day_opus": …, "extra_usage": …}
USAGE_KEYS = (("five_hour", "5h"), ("seven_day", "7d"))


def parse_usage(data: Any, now: float) -> tuple[Window, ...]:
    """The windows of a usage-endpoint answer (none when it has no recognisable window)."""
    if not isinstance(data, dict):
        return ()
    found = []
    for key, name in USAGE_KEYS:
        item = data.get(key)
        if not isinstance(item, dict):
            continue
        percent = item.get("utilization")
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            percent = None
        reset = item.get("resets_at")
        reset_at = parse_timestamp(reset, now) if isinstance(reset, str | int | float) else None
        utilization = None if percent is None else min(max(percent / 100, 0.0), 1.0)
        status = "rejected" if utilization is not None and utilization >= 1.0 else ""
        found.append(Window(name, utilization, reset_at, status))
    return tuple(found)


def headroom(windows: tuple[Window, ...], now: float) -> float:
    """What is left of the binding (most used) window: 1.0 = untouched or unknown."""
    if not windows:
        return 1.0
    return 1.0 - max(window.used(now) for window in windows)


def from_stored(data: Any) -> tuple[Window, ...]:
    if not isinstance(data, list):
        return ()
    windows = []
    for item in data:
        if isinstance(item, dict) and item.get("name") in dict(WINDOWS):
            windows.append(
                Window(
                    str(item["name"]),
                    item.get("utilization"),
                    item.get("reset_at"),
                    str(item.get("status") or ""),
                )
            )
    return tuple(windows)


def describe(windows: tuple[Window, ...], now: float) -> list[str]:
    """One plain phrase per window: '5-hour: 42 % used, resets in 2h 03m'."""
    labels = dict(WINDOWS)
    phrases = []
    for window in windows:
        text = f"{labels[window.name]}: {round(window.used(now) * 100)} % used"
        if window.status == "rejected" and window.used(now) >= 1.0:
            text += " (limit reached)"
        if window.reset_at is not None and window.reset_at > now:
            text += f", resets in {_duration(window.reset_at - now)}"
        phrases.append(text)
    return phrases


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


class WindowBoard:
    """The latest windows per account seen by this worker."""

    def __init__(self) -> None:
        self.windows: dict[int, tuple[Window, ...]] = {}
        self._persisted_at: dict[int, float] = {}

    def observe(self, credential_id: int, headers: Mapping[str, str], now: float) -> bool:
        """Record what a response said; True when it is time to persist it."""
        windows = parse(headers, now)
        if not windows:
            return False
        changed = self.windows.get(credential_id) != windows
        self.windows[credential_id] = windows
        if not changed:
            return False
        if now - self._persisted_at.get(credential_id, 0.0) < PERSIST_SECONDS and not any(
            window.status == "rejected" for window in windows
        ):
            return False
        self._persisted_at[credential_id] = now
        return True

    def replace(self, credential_id: int, windows: tuple[Window, ...], now: float) -> None:
        """What the usage endpoint said: it supersedes what this worker saw last."""
        self.windows[credential_id] = windows
        self._persisted_at[credential_id] = now

    def headroom(self, credential_id: int, now: float) -> float:
        return headroom(self.windows.get(credential_id, ()), now)


board = WindowBoard()
