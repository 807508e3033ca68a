"""Prices and costs (accounts.prices) and reading usage from replies and streams."""

from __future__ import annotations

import importlib
from decimal import Decimal

import orjson

from accounts import catalog
from accounts.prices import PUBLISHED, Price, Tokens, cost, price_for
from claude_api.sse import SSEEvent
from claude_api.usage import StreamUsage, from_body

OPUS = Price(Decimal("15"), Decimal("75"), Decimal("1.5"), Decimal("18.75"))


def test_it_costs_every_kind_of_token_at_its_own_price():
    tokens = Tokens(input=1_000_000, output=2_000_000, cache_read=10_000_000, cache_write=100_000)
    assert cost(tokens, OPUS) == Decimal("15") + Decimal("150") + Decimal("15") + Decimal("1.875")


def test_it_leaves_the_cost_unknown_without_a_price_never_zero():
    assert cost(Tokens(input=10), None) is None
    gemini = PUBLISHED["gemini-2.5-pro"]
    assert cost(Tokens(input=10, cache_write=5), gemini) is None
    # A kind the request did not use needs no price.
    assert cost(Tokens(input=1_000_000), gemini) == Decimal("1.25")


def test_it_prefers_an_exact_name_then_the_longest_wildcard():
    table = {
        "claude-*": Price(Decimal(1), None, None, None),
        "claude-opus-*": Price(Decimal(2), None, None, None),
        "claude-opus-4-1": Price(Decimal(3), None, None, None),
    }
    assert price_for(table, "claude-opus-4-1").input == 3
    assert price_for(table, "claude-opus-4-9").input == 2
    assert price_for(table, "claude-haiku").input == 1
    assert price_for(table, "", "claude-opus-4-1").input == 3
    assert price_for(table, "gpt-5") is None


def test_it_prices_every_catalogue_model():
    assert set(PUBLISHED) == set(catalog.BY_ID)


def test_it_seeds_the_published_prices_in_the_migration():
    migration = importlib.import_module("accounts.migrations.0005_usage_ledger")
    published = {
        model: tuple(
            None if v is None else str(v) for v in (p.input, p.output, p.cache_read, p.cache_write)
        )
        for model, p in PUBLISHED.items()
    }
    assert migration.PRICES == published


def event(name: str, data: dict) -> SSEEvent:
    return SSEEvent(name, orjson.dumps(data))


def test_it_reads_a_streams_usage_from_message_start_and_message_delta_only():
    seen = StreamUsage()
    seen.observe(
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "usage": {
                        "input_tokens": 7,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 50,
                        "cache_creation_input_tokens": 3,
                    }
                },
            },
        )
    )
    # Other events are never parsed: not even invalid JSON disturbs the reader.
    seen.observe(SSEEvent("content_block_delta", b"{not json"))
    assert not seen.finished and seen.tokens == Tokens(7, 1, 50, 3)
    seen.observe(event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 90}}))
    assert seen.finished and seen.tokens == Tokens(7, 90, 50, 3)


def test_it_takes_the_input_counts_a_final_message_delta_repeats():
    seen = StreamUsage()
    seen.observe(event("message_start", {"message": {"usage": {"input_tokens": 0}}}))
    seen.observe(event("message_delta", {"usage": {"input_tokens": 12, "output_tokens": 4}}))
    assert seen.tokens == Tokens(12, 4, 0, 0)


def test_it_reads_a_replys_usage_and_tolerates_none():
    body = orjson.dumps(
        {"usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 5}}
    )
    assert from_body(body) == Tokens(3, 4, 5, 0)
    assert from_body(b"[]") == Tokens()
    assert from_body(b"not json") == Tokens()
    assert (
        from_body(orjson.dumps({"usage": {"input_tokens": -1, "output_tokens": "x"}})) == Tokens()
    )
