from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_api.translate.tokens import (
    IMAGE_TOKENS,
    chat_segments,
    estimate_chat_tokens,
    estimate_input_tokens,
    estimate_text_tokens,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code"

# Reference counts: each fixture body was translated with build_request (default options),
# split with chat_segments, and every text segment counted with the o200k_base BPE of
# js-tiktoken 1.x (npm, installed in a scratch directory outside the repo), plus the same
# fixed per-message/tool overheads chat_segments returns. Recompute them the same way if the
# translation of the fixtures changes.
O200K_COUNTS = {
    "count-tokens-01": 7,
    "count-tokens-02": 227,
    "count-tokens-03": 26,
    "haiku-thinking-enabled-01": 25475,
    "hello-01": 17217,
    "stream-then-nonstream-fallback-01": 17217,
    "stream-then-nonstream-fallback-02": 17217,
    "tool-loop-01": 17222,
    "tool-loop-02": 17250,
}


@pytest.mark.parametrize("name", sorted(O200K_COUNTS))
def test_it_estimates_fixtures_within_15_percent_of_o200k(name):
    body = json.loads((FIXTURES / f"{name}.json").read_text())["body"]
    reference = O200K_COUNTS[name]
    estimate = estimate_input_tokens(body)
    assert abs(estimate - reference) <= 0.15 * reference, (estimate, reference)


def test_it_covers_every_fixture():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(O200K_COUNTS)


def test_it_estimates_small_texts():
    # o200k_base: "hi" = 1, "Hello, world!" = 4
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("hi") == 1
    assert estimate_text_tokens("Hello, world!") == 4
    assert estimate_text_tokens("日本語") >= 2


def test_it_counts_system_tools_and_tool_calls():
    request = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"p":"/a"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "file body"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}
        ],
    }
    texts, fixed = chat_segments(request)
    assert texts[:2] == ["Be terse.", "Look"]
    assert "Read" in texts and '{"p":"/a"}' in texts and "file body" in texts
    assert texts[-1].startswith('[{"type":"function"')
    assert fixed > IMAGE_TOKENS
    assert estimate_chat_tokens(request) == fixed + sum(map(estimate_text_tokens, texts))


def test_it_grows_with_the_conversation():
    small = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
    large = {"model": "m", "messages": [{"role": "user", "content": "Hello " * 1000}]}
    assert estimate_input_tokens(small) < estimate_input_tokens(large)
