"""A daphne worker writes its counters on a timer, without waiting for more traffic, and writes
what is left when it is stopped (SIGTERM), so the admin's figures are right and a deploy loses
none of them."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from accounts.models import ClientKey, CredentialStats
from tests.conftest import make_client_key, make_credential
from tests.fakes.upstream import Respond
from tests.live.conftest import DaphneProcess

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def counts() -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for stats in CredentialStats.objects.select_related("credential"):
        ok, failed = totals.get(stats.credential.label, (0, 0))
        totals[stats.credential.label] = (ok + stats.successes, failed + stats.failures)
    return totals


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_it_writes_the_counters_of_a_last_request_without_further_traffic(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    worker = DaphneProcess("timer", {**daphne_env, "STATS_FLUSH_SECONDS": "0.5"})
    try:
        upstream.script("/only/", Respond.error(500, "api_error", "boom"))
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            assert client.post("/v1/messages", json=BODY).status_code == 500
            assert client.post("/v1/messages", json=BODY).status_code == 200
        # No request follows: only the worker's own timer can write these.
        assert wait_for(lambda: counts() == {"only": (1, 1)}, timeout=5), counts()
        assert ClientKey.objects.get().last_used_at is not None
    finally:
        worker.stop()


def test_it_writes_every_counter_still_in_memory_when_stopped(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    # A flush interval no test reaches: whatever is written, the shutdown wrote.
    worker = DaphneProcess("sigterm", {**daphne_env, "STATS_FLUSH_SECONDS": "3600"})
    try:
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            for _ in range(5):
                assert client.post("/v1/messages", json=BODY).status_code == 200
        time.sleep(0.5)
        assert counts() == {}
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(15) == 0
        assert counts() == {"only": (5, 0)}
        assert ClientKey.objects.get().last_used_at is not None
    finally:
        worker.stop()


def test_it_writes_the_counters_of_a_stream_cut_short_by_the_shutdown(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    worker = DaphneProcess("sigterm-stream", {**daphne_env, "STATS_FLUSH_SECONDS": "3600"})
    try:
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            assert client.post("/v1/messages", json=BODY).status_code == 200
            upstream.script("/only/", Respond.anthropic_stream("slow answer", gap=2.0))
            with client.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as stream:
                next(stream.iter_bytes())  # the stream is open and relaying
                worker.process.send_signal(signal.SIGTERM)
                assert worker.process.wait(15) == 0
        # The finished request's success is written; the stream the shutdown ended is not
        # held against the credential.
        assert counts() == {"only": (1, 0)}
    finally:
        worker.stop()
