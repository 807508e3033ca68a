"""Model-name patterns: the `*` wildcard used by excluded models and client-key allow lists."""

from __future__ import annotations

import re
from functools import lru_cache


def split_list(text: str) -> list[str]:
    """One item per line or comma-separated, blanks dropped."""
    return [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$", re.DOTALL
    )


def matches(pattern: str, name: str) -> bool:
    """Case-insensitive; `*` matches any run of characters (prefix, suffix or middle)."""
    if "*" not in pattern:
        return pattern.lower() == name.lower()
    return _compile(pattern).match(name.lower()) is not None


def matches_any(patterns: tuple[str, ...] | list[str], name: str) -> bool:
    return any(matches(pattern, name) for pattern in patterns)
