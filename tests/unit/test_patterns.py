from __future__ import annotations

import pytest

from accounts.patterns import matches, matches_any, split_list


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("claude-opus-4-6", "claude-opus-4-6", True),
        ("Claude-Opus-4-6", "claude-opus-4-6", True),
        ("claude-opus-4-6", "CLAUDE-OPUS-4-6", True),
        ("claude-opus-4-6", "claude-opus-4-6-x", False),
        ("claude-opus-4-6", "x-claude-opus-4-6", False),
        ("claude-opus", "claude-opus-4-6", False),
        ("", "", True),
        ("", "claude", False),
    ],
)
def test_it_matches_exact_names_case_insensitively(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("claude-opus-*", "claude-opus-4-6", True),
        ("claude-opus-*", "claude-opus-", True),
        ("CLAUDE-*", "claude-haiku-4-5", True),
        ("claude-opus-*", "claude-sonnet-4-6", False),
        ("claude-opus-*", "my-claude-opus-4", False),
        ("*-thinking", "claude-3-7-thinking", True),
        ("*-thinking", "claude-3-7-thinking-x", False),
        ("*THINKING", "gemini-thinking", True),
        ("claude-*-4-6", "claude-opus-4-6", True),
        ("claude-*-4-6", "claude-sonnet-4-6", True),
        ("claude-*-4-6", "claude-sonnet-4-5", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "a-x-b-y-c", True),
        ("a*b*c", "a-x-c-y-b", False),
        ("a*b*c", "xabc", False),
        ("*", "anything/at all", True),
        ("*", "", True),
        ("**", "x", True),
        ("*opus*", "claude-opus-4-6", True),
        ("*opus*", "claude-sonnet", False),
    ],
)
def test_it_matches_wildcards(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("gpt-4.1*", "gpt-4.1-mini", True),
        ("gpt-4.1*", "gpt-4x1-mini", False),  # the dot is literal
        ("model(1)*", "model(1)-x", True),
        ("a+b*", "a+b-c", True),
        ("a+b*", "aab-c", False),
        ("[ab]*", "[ab]c", True),
        ("[ab]*", "ac", False),
        ("x?*", "x?y", True),
        ("x?*", "xy", False),
        ("anthropic/*", "anthropic/claude-3.5", True),
        ("line*", "line\nbreak", True),
    ],
)
def test_it_treats_regex_characters_literally(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def test_it_matches_any_pattern() -> None:
    assert matches_any(("gpt-*", "*-preview"), "gemini-3-pro-preview")
    assert matches_any(["gpt-*", "claude-opus-4-6"], "Claude-Opus-4-6")
    assert not matches_any(("gpt-*", "*-preview"), "claude-opus-4-6")
    assert not matches_any((), "anything")
    assert not matches_any([], "anything")


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a,b,c", ["a", "b", "c"]),
        ("a\nb\nc", ["a", "b", "c"]),
        ("a, b\n c ,\n\n,d", ["a", "b", "c", "d"]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("  claude-*  ", ["claude-*"]),
        ("", []),
        ("  \n , ,\n", []),
        (None, []),
    ],
)
def test_it_splits_lists(text: str | None, items: list[str]) -> None:
    assert split_list(text) == items  # type: ignore[arg-type]
