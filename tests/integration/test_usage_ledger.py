"""The usage ledger: one record per client request, with the upstream's own token counts and
the price table's cost, written by the flush and never on the request path."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest

from accounts import usage
from accounts.models import ClientKey, Credential, ModelPrice, UsageRecord
from accounts.pool import pool
from tests.conftest import make_credential, read_stream, set_proxy_settings, sse_events
from tests.fakes.upstream import DROP, Respond, anthropic_events, anthropic_message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("published_prices", "fresh_pool"),
]

# Opus 4.1 at its published price: $15 in, $75 out, $1.50 cache read, $18.75 cache write.
MODEL = "claude-opus-4-1-20250805"
USAGE = {
    "input_tokens": 1200,
    "output_tokens": 0,
    "cache_read_input_tokens": 30_000,
    "cache_creation_input_tokens": 2_000,
}
# 1200*15 + 345*75 + 30000*1.5 + 2000*18.75 = 18000 + 25875 + 45000 + 37500 = 126375 micro
COST = Decimal("0.126375")


def message_with_usage(output_tokens: int = 345) -> dict:
    body = anthropic_message("Hello", MODEL)
    body["usage"] = {**USAGE, "output_tokens": output_tokens}
    return body


def events_with_usage(output_tokens: int = 345) -> list[tuple[str, dict]]:
    events = copy.deepcopy(anthropic_events("one two three", MODEL))
    events[0][1]["message"]["usage"] = {**USAGE, "output_tokens": 1}
    events[-2][1]["usage"] = {"output_tokens": output_tokens}
    return events


async def flushed() -> list[UsageRecord]:
    await pool.settle()
    await pool.flush()
    return list(UsageRecord.objects.order_by("created_at", "id"))


async def test_it_records_a_non_streaming_request_with_exact_tokens_and_cost(api, upstream):
    credential = make_credential("primary", base_url=upstream.url)
    upstream.script("/v1/messages", Respond.json(message_with_usage()))
    response = await api.message(MODEL)
    assert response.status_code == 200
    # Nothing is written on the request path: the record waits for the flush.
    assert not UsageRecord.objects.exists()
    [record] = await flushed()
    key = ClientKey.objects.get()
    assert (record.client_key_id, record.client_key_name) == (key.pk, key.name)
    assert (record.credential_id, record.credential_label) == (credential.pk, "primary")
    assert (record.provider, record.model, record.upstream_model) == ("anthropic", MODEL, MODEL)
    assert (record.stream, record.status, record.error_type, record.cut_off) == (
        False,
        200,
        "",
        False,
    )
    assert (
        record.input_tokens,
        record.output_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
    ) == (1200, 345, 30_000, 2_000)
    assert record.cost == COST
    assert record.request_id == response["request-id"]
    assert record.attempts == 1
    assert record.ttfb_ms is not None and record.latency_ms >= record.ttfb_ms


async def test_it_records_a_stream_from_message_start_and_the_final_message_delta(api, upstream):
    make_credential("primary", base_url=upstream.url)
    upstream.script("/v1/messages", Respond.sse(events_with_usage(), split=7))
    response = await api.message(MODEL, stream=True)
    raw = await read_stream(response)
    # Passed through as the upstream sent it.
    assert [name for name, _ in sse_events(raw)][-1] == "message_stop"
    [record] = await flushed()
    assert record.stream and record.status == 200 and not record.cut_off
    assert (
        record.input_tokens,
        record.output_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
    ) == (1200, 345, 30_000, 2_000)
    assert record.cost == COST


async def test_it_records_a_cut_off_stream_with_the_tokens_seen_so_far(api, upstream):
    set_proxy_settings(request_retry=0)
    make_credential("primary", base_url=upstream.url)
    events = Respond.sse(events_with_usage()).chunks
    upstream.script(
        "/v1/messages",
        Respond(200, {"content-type": "text/event-stream"}, chunks=[*events[:3], DROP]),
    )
    response = await api.message(MODEL, stream=True)
    assert sse_events(await read_stream(response))[-1][0] == "error"
    [record] = await flushed()
    assert record.cut_off
    assert record.status == 502 and record.error_type == "api_error"
    # message_start's counts: the final message_delta never came.
    assert (record.input_tokens, record.output_tokens) == (1200, 1)
    assert (record.cache_read_tokens, record.cache_write_tokens) == (30_000, 2_000)
    # 1200*15 + 1*75 + 30000*1.5 + 2000*18.75 = 100575 micro-dollars
    assert record.cost == Decimal("0.100575")


async def test_it_records_a_failed_request_with_its_error_and_no_tokens(api, upstream):
    set_proxy_settings(request_retry=0)
    make_credential("primary", base_url=upstream.url)
    upstream.script("/v1/messages", Respond.error(500, "api_error", "boom"))
    response = await api.message(MODEL)
    assert response.status_code == 500
    [record] = await flushed()
    assert (record.status, record.error_type, record.attempts) == (500, "api_error", 1)
    assert (record.input_tokens, record.output_tokens) == (0, 0)
    # A request that used nothing cost nothing, at a known price.
    assert record.cost == Decimal(0)
    assert record.credential_label == "primary"


async def test_it_records_the_answering_credential_after_a_failover(api, upstream):
    make_credential("first", base_url=f"{upstream.url}/first", priority=10)
    make_credential("second", base_url=f"{upstream.url}/second")
    upstream.script("/first/", Respond.error(529, "overloaded_error", "busy"))
    upstream.script("/second/", Respond.json(message_with_usage()))
    assert (await api.message(MODEL)).status_code == 200
    [record] = await flushed()
    assert (record.credential_label, record.attempts, record.cost) == ("second", 2, COST)


async def test_it_leaves_the_cost_unknown_for_a_model_without_a_price(api, upstream):
    make_credential("primary", base_url=upstream.url, models=["house-model"])
    body = message_with_usage()
    upstream.script("/v1/messages", Respond.json(body))
    assert (await api.message("house-model")).status_code == 200
    [record] = await flushed()
    assert record.output_tokens == 345
    assert record.cost is None


async def test_it_prices_with_the_admins_table_and_wildcards(api, upstream):
    ModelPrice.objects.create(model="house-*", input=Decimal("1"), output=Decimal("2"))
    make_credential("primary", base_url=upstream.url, models=["house-model"])
    body = message_with_usage()
    body["usage"] = {"input_tokens": 1000, "output_tokens": 500}
    upstream.script("/v1/messages", Respond.json(body))
    assert (await api.message("house-model")).status_code == 200
    [record] = await flushed()
    assert record.cost == Decimal("0.002")


async def test_it_keeps_a_batch_the_database_refused_for_the_next_flush(api, upstream, monkeypatch):
    make_credential("primary", base_url=upstream.url)
    assert (await api.message(MODEL)).status_code == 200
    original = usage.write

    def broken(batch):
        raise RuntimeError("database is down")

    monkeypatch.setattr(usage, "write", broken)
    await pool.settle()
    await pool.flush()
    assert not UsageRecord.objects.exists()
    assert len(pool.ledger.pending) == 1
    monkeypatch.setattr(usage, "write", original)
    await pool.flush()
    assert UsageRecord.objects.count() == 1


async def test_it_keeps_the_names_of_a_deleted_credential(api, upstream):
    make_credential("gone", base_url=upstream.url)
    assert (await api.message(MODEL)).status_code == 200
    await pool.settle()
    Credential.objects.all().delete()
    [record] = await flushed()
    assert (record.credential_id, record.credential_label) == (None, "gone")


async def test_it_records_count_tokens_as_its_own_endpoint(api, upstream):
    make_credential("primary", base_url=upstream.url)
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = await api.post("/v1/messages/count_tokens", payload)
    assert json.loads(response.content) == {"input_tokens": 42}
    [record] = await flushed()
    assert record.endpoint == "count_tokens"
    assert (record.input_tokens, record.output_tokens, record.cost) == (0, 0, Decimal(0))


async def test_the_ledger_keeps_rows_the_collector_stops_tracking(api, upstream):
    # Rows waiting for the flush (thousands under load) must add nothing to the collector's
    # full collections: plain tuples of plain values are untracked once it has seen them.
    import gc

    make_credential("primary", base_url=upstream.url)
    upstream.script("/v1/messages", Respond.json(message_with_usage()))
    assert (await api.message(MODEL)).status_code == 200
    gc.collect()
    [row] = pool.ledger.pending
    assert not gc.is_tracked(row)
    [record] = await flushed()
    assert (record.output_tokens, record.cost) == (345, COST)


async def test_a_slow_flush_does_not_hold_up_the_request_paths_database_reads(
    api, upstream, monkeypatch
):
    # The pool's change check (every POOL_REFRESH_SECONDS, awaited by a request) once shared a
    # thread with the flush, and waited for a whole batch of ledger rows to be written.
    import asyncio
    import threading

    from channels.db import database_sync_to_async

    from accounts import versions

    make_credential("primary", base_url=upstream.url)
    assert (await api.message(MODEL)).status_code == 200
    writing, release = threading.Event(), threading.Event()
    original = usage.write

    def slow_write(batch):
        writing.set()
        release.wait(30)
        return original(batch)

    monkeypatch.setattr(usage, "write", slow_write)
    await pool.settle()
    flush = asyncio.ensure_future(pool.flush())
    try:
        assert await asyncio.to_thread(writing.wait, 10)
        check = database_sync_to_async(versions.read_from_database)()
        assert await asyncio.wait_for(check, 5) is not None
    finally:
        release.set()
        await flush
    assert UsageRecord.objects.count() == 1


async def test_the_batch_insert_stores_times_the_orm_reads_back_exactly(api, upstream):
    # The insert writes SQLite's text form itself (no per-row timezone calls).
    from datetime import UTC, datetime

    make_credential("primary", base_url=upstream.url)
    assert (await api.message(MODEL)).status_code == 200
    await pool.settle()
    moments = [1796540000.0, 1796540000.123456, 1796540000.5, 1796543999.999999]  # before now
    for moment in moments:
        row = list(pool.ledger.pending[0])
        row[0] = moment
        pool.ledger.pending.append(tuple(row))
    records = await flushed()
    assert [r.created_at for r in records[:-1]] == [
        datetime.fromtimestamp(moment, tz=UTC) for moment in moments
    ]
