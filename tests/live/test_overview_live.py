"""The overview's live view across workers: a page connected to one daphne sees a cooldown that
another daphne applied, and that daphne's in-flight count, through the Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import REDIS_TEST_URL, make_client_key, make_credential
from tests.fakes.upstream import Respond
from tests.live.browser import orm
from tests.live.conftest import DaphneProcess

pytestmark = [pytest.mark.live, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MODEL = "claude-sonnet-4-6"


@pytest.fixture(scope="module")
def workers(daphne_env):
    from tests.services import redis_reachable

    if not redis_reachable(REDIS_TEST_URL):
        pytest.skip(f"needs Redis at {REDIS_TEST_URL}")
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    pair = [DaphneProcess(f"live-{n}", {**daphne_env, "REDIS_URL": REDIS_TEST_URL}) for n in "ab"]
    yield pair
    for worker in pair:
        worker.stop()


@pytest.fixture(autouse=True)
def shared_redis(settings):
    # This process's writes (credentials, keys) publish their version bump where workers look.
    settings.REDIS_URL = REDIS_TEST_URL


def admin_cookie() -> str:
    def log_in() -> str:
        user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-live-1")
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return orm(log_in)


async def next_message(ws, wanted, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the awaited message never came")
        message = await ws.receive(timeout=left)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data = json.loads(message.data)
        if wanted(data):
            return data


def test_a_cooldown_applied_by_one_worker_reaches_a_page_on_another(workers, upstream):
    a, b = workers
    credential = orm(lambda: make_credential("shared", base_url=upstream.url, models=[MODEL]))
    key = orm(lambda: make_client_key("live"))
    cookie = admin_cookie()

    async def scenario() -> tuple[dict, dict, float]:
        headers = {"Cookie": f"sessionid={cookie}", "Origin": a.url}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(a.url.replace("http", "ws") + "/admin/live/", headers=headers) as ws,
        ):
            first = await next_message(ws, lambda m: m["type"] == "pool", 5)
            assert [c["state"] for c in first["credentials"]] == ["ok"]
            upstream.script(
                "/v1/messages",
                Respond.error(429, "rate_limit_error", "slow down", headers={"retry-after": "300"}),
            )
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    b.url + "/v1/messages",
                    json={
                        "model": MODEL,
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "x"}],
                    },
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                )
            assert response.status_code == 429
            cooling = await next_message(
                ws, lambda m: m["type"] == "pool" and m["credentials"][0]["state"] == "cooling", 5
            )
            seen_after = time.monotonic() - started
            b_worker = await next_message(
                ws,
                lambda m: m["type"] == "worker" and m["worker"].endswith(f":{b.process.pid}"),
                10,
            )
            return cooling, b_worker, seen_after

    cooling, b_worker, seen_after = asyncio.run(scenario())
    (row,) = cooling["credentials"]
    assert row["id"] == credential.pk
    (block,) = row["blocks"]
    assert block["reason"] == "rate_limited" and block["model"] == MODEL
    # Pushed, not found by the half-minute resync.
    assert seen_after < 5
    assert b_worker["in_flight"] >= 0 and b_worker["draining"] is False


def test_a_page_without_an_admin_session_is_refused_by_every_worker(workers):
    async def attempt(url: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url.replace("http", "ws") + "/admin/live/"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    for worker in workers:
        assert asyncio.run(attempt(worker.url)) == 403
