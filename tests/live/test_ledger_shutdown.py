"""A daphne worker stopped (SIGTERM) in the middle of traffic writes a usage record for every
request it took, the ones it answered and the ones the shutdown cut short."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.models import UsageRecord
from tests.conftest import make_client_key, make_credential
from tests.fakes.upstream import Respond, anthropic_message
from tests.live.conftest import DaphneProcess

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def test_it_loses_no_usage_record_when_stopped_under_load(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    # Answers take a while, so requests are in flight when the signal comes.
    upstream.default = lambda request: Respond.json(
        anthropic_message("ok", "claude-sonnet-4-6"), delay=0.2
    )
    # A flush interval no test reaches: every record written, the shutdown wrote.
    worker = DaphneProcess(
        "ledger-sigterm", {**daphne_env, "STATS_FLUSH_SECONDS": "3600", "PYTHONFAULTHANDLER": "1"}
    )
    answered: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/messages", json=BODY)
                except httpx.HTTPError:
                    return  # the server is going away
                if response.status_code == 503 and "shutting down" in response.text:
                    return  # refused: the shutdown had begun
                with lock:
                    answered.append(response.headers.get("request-id", ""))

    try:
        with ThreadPoolExecutor(8) as executor:
            for _ in range(8):
                executor.submit(client_loop)
            # Under way: a good number answered (a loaded machine takes longer to get there).
            deadline = time.monotonic() + 20
            while len(answered) < 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert UsageRecord.objects.count() == 0
            worker.process.send_signal(signal.SIGTERM)
            # A clean exit: interpreter teardown used to crash (SIGSEGV) on a request the
            # shutdown had cancelled but not ended (proxysite.handlers).
            assert worker.process.wait(20) == 0
            stop.set()
        reached = len(upstream.requests)
        records = list(UsageRecord.objects.values_list("request_id", "status"))
        assert len(answered) >= 20
        # One record per request the worker took: every upstream call, answered or cut short.
        assert len(records) == reached
        assert {request_id for request_id, _ in records} >= set(answered)
        assert {status for _, status in records} <= {200, 499}
        assert sum(1 for _, status in records if status == 200) >= len(answered)
    finally:
        stop.set()
        worker.stop()
