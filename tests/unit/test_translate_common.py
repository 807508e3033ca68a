from __future__ import annotations

from claude_api.translate.common import (
    sanitize_tool_use_id,
    system_texts,
    thinking_signature_family,
)


def test_it_drops_the_billing_header_block_from_system():
    body = {
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.1c0;"},
            {"type": "text", "text": "You are helpful."},
        ]
    }
    assert system_texts(body) == ["You are helpful."]


def test_it_makes_tool_ids_anthropic_safe():
    assert sanitize_tool_use_id("call:1/2") == "call_1_2"
    assert sanitize_tool_use_id(None).startswith("toolu_")


def test_it_tells_signature_families_apart():
    assert thinking_signature_family("gemini.abc") == "gemini"
    assert thinking_signature_family("openai.x") == "openai"
    assert thinking_signature_family("EqQBCkYIBxgCKkB+/=") == "anthropic"
    assert thinking_signature_family("") is None
