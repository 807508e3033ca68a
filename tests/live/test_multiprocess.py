"""Several daphne workers share one database (PostgreSQL in the PostgreSQL pass of `make test`)
and optionally Redis: what one worker learns, every worker acts on within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from accounts.models import QuotaState
from tests.conftest import REDIS_TEST_URL, make_client_key, make_credential, set_proxy_settings
from tests.fakes.upstream import Respond
from tests.live.conftest import DaphneProcess

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def production_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    # The production refresh interval, so the test shows the real "within a second".
    return {**env, "POOL_REFRESH_SECONDS": "0.5", **extra}


@pytest.fixture(scope="module")
def workers(daphne_env):
    pair = [DaphneProcess(f"db-{n}", production_env(daphne_env)) for n in "ab"]
    yield pair
    for worker in pair:
        worker.stop()


@pytest.fixture(scope="module")
def redis_workers(daphne_env):
    from tests.services import redis_reachable

    if not redis_reachable(REDIS_TEST_URL):
        pytest.skip(f"needs Redis at {REDIS_TEST_URL}")
    pair = [
        DaphneProcess(f"redis-{n}", production_env(daphne_env, REDIS_URL=REDIS_TEST_URL))
        for n in "ab"
    ]
    yield pair
    for worker in pair:
        worker.stop()


def settle() -> None:
    """Let one refresh interval pass, so every worker has seen the data a test just wrote."""
    time.sleep(0.6)


def post(worker: DaphneProcess, key: str) -> httpx.Response:
    return httpx.post(
        worker.url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=30
    )


def check_429_is_shared(workers, upstream) -> None:
    set_proxy_settings(routing_strategy="fill-first", request_retry=0)
    make_credential("first", base_url=upstream.url + "/first")
    make_credential("second", base_url=upstream.url + "/second")
    key = make_client_key()
    a, b = workers
    settle()
    # Both workers have loaded the pool and used the first credential.
    assert post(a, key).status_code == 200 and post(b, key).status_code == 200
    assert [r.path.split("/")[1] for r in upstream.requests] == ["first", "first"]

    upstream.script(
        "/first/", Respond.error(429, "rate_limit_error", "busy", headers={"retry-after": "60"})
    )
    assert post(a, key).status_code == 200  # A fails over to second
    seen_by_a = time.monotonic()
    time.sleep(max(0.0, 1.0 - (time.monotonic() - seen_by_a)))
    assert post(b, key).status_code == 200
    served = [r.path.split("/")[1] for r in upstream.requests]
    assert served[2:] == ["first", "second", "second"]  # B never tried the cooling credential
    assert QuotaState.objects.get(credential__label="first").reason == "rate_limited"


def test_it_shares_a_429_between_workers_through_the_database(workers, upstream):
    check_429_is_shared(workers, upstream)


@pytest.mark.redis
def test_it_shares_a_429_between_workers_through_redis(redis_workers, upstream, settings):
    settings.REDIS_URL = REDIS_TEST_URL  # this process's admin-side writes publish there too
    check_429_is_shared(redis_workers, upstream)


def test_it_applies_an_admin_change_in_every_worker_within_two_seconds(workers, upstream):
    credential = make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    settle()
    for worker in workers:
        assert post(worker, key).status_code == 200
    credential.enabled = False
    credential.save()
    time.sleep(1.0)
    for worker in workers:
        assert post(worker, key).status_code == 404  # no enabled credential serves the model


def test_it_keeps_gemini_thought_signatures_when_the_next_turn_lands_on_another_worker(
    workers, upstream, sdk_client
):
    make_credential("gemini", provider="gemini", base_url=upstream.url, secret="AIza-test-key-0001")
    key = make_client_key()
    a, b = workers
    settle()
    tools = [
        {
            "name": "lookup",
            "description": "Look something up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    upstream.script(
        "/v1beta/models/gemini-3-pro-preview:streamGenerateContent",
        Respond.sse(
            [
                (
                    None,
                    {
                        "candidates": [
                            {
                                "content": {
                                    "role": "model",
                                    "parts": [{"text": "Thinking it over", "thought": True}],
                                }
                            }
                        ]
                    },
                ),
                (
                    None,
                    {
                        "candidates": [
                            {
                                "content": {
                                    "role": "model",
                                    "parts": [
                                        {
                                            "functionCall": {
                                                "name": "lookup",
                                                "args": {"q": "moon"},
                                            },
                                            "thoughtSignature": "U0lHTkFUVVJFLTE=",
                                        }
                                    ],
                                },
                                "finishReason": "STOP",
                            }
                        ],
                        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4},
                    },
                ),
            ],
            terminator=b"\r\n\r\n",
            split=11,
        ),
    )
    client_a = sdk_client(a.url, key)
    history = [{"role": "user", "content": "How far is the moon?"}]
    with client_a.messages.stream(
        model="gemini-3-pro-preview", max_tokens=256, tools=tools, messages=history
    ) as stream:
        first = stream.get_final_message()
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.input == {"q": "moon"}
    history += [
        {
            "role": "assistant",
            "content": [block.model_dump(exclude_none=True) for block in first.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "384,400 km"}
            ],
        },
    ]
    upstream.script(
        "/v1beta/models/gemini-3-pro-preview:generateContent",
        Respond.json(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "About 384,400 km."}]},
                        "finishReason": "STOP",
                    }
                ]
            }
        ),
    )
    client_b = sdk_client(b.url, key)
    second = client_b.messages.create(
        model="gemini-3-pro-preview", max_tokens=256, tools=tools, messages=history
    )
    assert second.content[0].text == "About 384,400 km."
    contents = upstream.requests[-1].json()["contents"]
    calls = [part for content in contents for part in content["parts"] if "functionCall" in part]
    assert calls == [
        {
            "functionCall": {"name": "lookup", "args": {"q": "moon"}},
            "thoughtSignature": "U0lHTkFUVVJFLTE=",
        }
    ]
