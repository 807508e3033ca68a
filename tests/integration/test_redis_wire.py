"""The lean Redis connection the limits' admission uses, against a real Redis (and against a
server that never answers)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from accounts.redis_wire import RedisWire, ReplyError, WireError, encode
from tests.conftest import REDIS_TEST_URL

pytestmark = pytest.mark.redis


@pytest.fixture
async def wire():
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    connection = RedisWire.for_url(REDIS_TEST_URL, timeout=2)
    yield connection
    await connection.close()


async def test_it_answers_a_batch_in_order_with_each_commands_reply(wire):
    replies = await wire.execute(
        ("SET", "k", "v"),
        ("GET", "k"),
        ("INCRBY", "n", 5),
        ("GET", "missing"),
        ("LRANGE", "l", 0, -1),
    )
    assert replies == [b"OK", b"v", 5, None, []]


async def test_a_refused_command_gets_its_error_in_its_place(wire):
    replies = await wire.execute(("SET", "k", "v"), ("INCR", "k"), ("GET", "k"))
    assert replies[0] == b"OK" and replies[2] == b"v"
    assert isinstance(replies[1], ReplyError) and "not an integer" in str(replies[1])


async def test_concurrent_callers_share_the_connection_and_each_gets_its_own_replies(wire):
    async def count(name: str, times: int) -> list:
        return [(await wire.execute(("INCR", name)))[0] for _ in range(times)]

    results = await asyncio.gather(*(count(f"c{i}", 20) for i in range(10)))
    assert all(result == list(range(1, 21)) for result in results)


async def test_it_uses_the_urls_database(wire):
    import redis

    await wire.execute(("SET", "which-db", "this one"))
    assert redis.Redis.from_url(REDIS_TEST_URL).get("which-db") == b"this one"


async def test_it_reconnects_after_redis_closes_the_connection(wire):
    import redis

    [client_id] = await wire.execute(("CLIENT", "ID"))
    redis.Redis.from_url(REDIS_TEST_URL).client_kill_filter(_id=client_id)
    await asyncio.sleep(0.1)  # the connection's reader sees it closed
    [new_id] = await wire.execute(("CLIENT", "ID"))
    assert new_id != client_id


async def test_a_server_that_never_answers_times_out_and_the_next_call_starts_afresh():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        wire = RedisWire("127.0.0.1", silent.getsockname()[1], timeout=0.2)
        with pytest.raises(WireError, match="did not answer"):
            await wire.execute(("PING",))
        assert wire._writer is None and not wire._waiting
        await wire.close()
    finally:
        silent.close()


async def test_an_unreachable_redis_is_a_wire_error():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(WireError, match="cannot reach Redis"):
        await RedisWire("127.0.0.1", port, timeout=1).execute(("PING",))


def test_it_reads_what_a_redis_url_may_say():
    wire = RedisWire.for_url("rediss://user:p%40ss@cache.internal:6380/3?ssl_cert_reqs=none")
    assert (wire.host, wire.port, wire.db) == ("cache.internal", 6380, 3)
    assert (wire.username, wire.password) == ("user", "p@ss")
    assert wire.tls is not None and not wire.tls.check_hostname
    assert RedisWire.for_url("redis://:secret@127.0.0.1?db=2").db == 2
    assert RedisWire.for_url("redis://127.0.0.1").tls is None
    assert RedisWire.for_url("unix:///run/redis.sock") is None  # left to redis-py


def test_it_encodes_commands_as_resp_arrays():
    assert encode(("SET", b"k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


async def test_the_commands_of_one_turn_of_the_event_loop_go_out_in_one_write(wire):
    # Under load, many requests' admissions share one system call and one wake-up of Redis.
    await wire.execute(("PING",))  # connected
    writes: list[bytes] = []
    write = wire._writer.write

    def counting(data: bytes) -> None:
        writes.append(data)
        write(data)

    wire._writer.write = counting
    replies = await asyncio.gather(*(wire.execute(("INCR", "turn")) for _ in range(10)))
    assert sorted(reply for [reply] in replies) == list(range(1, 11))
    assert len(writes) == 1
