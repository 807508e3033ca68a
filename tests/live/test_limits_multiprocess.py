"""Two daphne workers share one database and one Redis: a client key's limits hold across both,
as if one process counted (the PostgreSQL pass of `make test` runs this on PostgreSQL)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.models import ClientKey
from tests.conftest import REDIS_TEST_URL, make_client_key, make_credential
from tests.fakes.upstream import Respond, anthropic_message
from tests.live.conftest import DaphneProcess

pytestmark = [pytest.mark.live, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}
DELAY = 0.3


@pytest.fixture
def workers(daphne_env):
    # One pair per test, stopped before the test's tables are emptied: a pair kept for the
    # module wrote its last test's usage records at its final flush, after that test's
    # teardown, into whatever test ran next.
    from tests.services import redis_reachable

    if not redis_reachable(REDIS_TEST_URL):
        pytest.skip(f"needs Redis at {REDIS_TEST_URL}")
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    pair = [DaphneProcess(f"limits-{n}", {**daphne_env, "REDIS_URL": REDIS_TEST_URL}) for n in "ab"]
    yield pair
    for worker in pair:
        worker.stop()


@pytest.fixture(autouse=True)
def shared_redis(settings):
    # This process's writes (new keys) publish their version bump where the workers look.
    settings.REDIS_URL = REDIS_TEST_URL


def reply(request=None) -> Respond:
    body = anthropic_message("ok", "claude-sonnet-4-6")
    body["usage"] = {"input_tokens": 10, "output_tokens": 5}
    return Respond.json(body, delay=DELAY)


def post(worker: DaphneProcess, key: str) -> httpx.Response:
    return httpx.post(
        worker.url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=30
    )


def wait_for_a_fresh_minute() -> None:
    """rpm windows are calendar minutes: start where the whole test fits in one."""
    if time.time() % 60 > 45:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_it_lets_exactly_the_rpm_limit_through_across_two_workers(workers, upstream):
    make_credential("only", base_url=upstream.url)
    upstream.default = lambda request: reply()
    key = make_client_key("ten", rpm_limit=10)
    wait_for_a_fresh_minute()
    with ThreadPoolExecutor(20) as executor:
        responses = list(executor.map(lambda n: post(workers[n % 2], key), range(20)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 10
    refused = [r for r in responses if r.status_code == 429]
    assert all("limit of 10 requests per minute" in r.json()["error"]["message"] for r in refused)
    assert all(0 < int(r.headers["retry-after"]) <= 60 for r in refused)
    # Both workers served and refused: the count is shared, not per process.
    assert len(upstream.requests) == 10


def test_it_holds_a_concurrency_limit_of_two_under_twenty_parallel_clients(workers, upstream):
    make_credential("only", base_url=upstream.url)
    upstream.default = lambda request: reply()
    key = make_client_key("pair", max_concurrent=2)
    # Both workers load the new key first, so the clients' time goes to the limit.
    statuses = [post(worker, key).status_code for worker in workers]
    lock = threading.Lock()
    deadline = time.monotonic() + 3

    def client_loop(n: int) -> None:
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as client:
            while time.monotonic() < deadline:
                response = client.post(workers[n % 2].url + "/v1/messages", json=BODY)
                with lock:
                    statuses.append(response.status_code)
                if response.status_code == 429:
                    assert "2 concurrent requests" in response.json()["error"]["message"]
                    time.sleep(0.1)  # a client backing off; also leaves the GIL to the upstream

    with ThreadPoolExecutor(20) as executor:
        list(executor.map(client_loop, range(20)))
    # What the upstream saw: each call lasts at least DELAY from its arrival.
    arrivals = sorted(r.received_at for r in upstream.requests)
    most = max(sum(1 for other in arrivals if t <= other < t + DELAY) for t in arrivals)
    assert most == 2
    assert statuses.count(200) == len(arrivals) >= 6
    assert set(statuses) == {200, 429}


def test_it_stops_the_request_that_would_cross_a_token_budget_on_either_worker(workers, upstream):
    from claude_api.translate.tokens import estimate_input_tokens

    make_credential("only", base_url=upstream.url)
    upstream.default = lambda request: reply()
    # Two requests use 15 tokens each; a third would reserve its estimate on top: one too many.
    budget = 30 + estimate_input_tokens(BODY) - 1
    key = make_client_key("budget", budget_tokens=budget, budget_period="day")
    a, b = workers
    assert post(a, key).status_code == 200
    time.sleep(0.2)  # the release (real tokens for the reservation) runs after the answer
    assert post(b, key).status_code == 200
    time.sleep(0.2)
    for worker in (a, b):
        refused = post(worker, key)
        assert refused.status_code == 429
        assert refused.json()["error"]["message"].startswith(
            f"This API key has used its daily budget of {budget:,} tokens"
        )
    assert len(upstream.requests) == 2
    # The ledger has all four, the refused ones included (each worker's timer writes them).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ClientKey.objects.get(name="budget").usage.count() < 4:
        time.sleep(0.1)
    rows = ClientKey.objects.get(name="budget").usage.order_by("status")
    assert [(r.status, r.input_tokens + r.output_tokens) for r in rows] == [
        (200, 15),
        (200, 15),
        (429, 0),
        (429, 0),
    ]


def test_it_serves_each_workers_own_metrics(workers, upstream):
    from prometheus_client.parser import text_string_to_metric_families

    make_credential("only", base_url=upstream.url)
    upstream.default = lambda request: reply()
    key = make_client_key("metered", rpm_limit=1)
    a, b = workers
    before = {}
    for worker in workers:
        text = httpx.get(worker.url + "/metrics", timeout=10).text
        before[worker.name] = _refused(text_string_to_metric_families(text))
    assert post(a, key).status_code == 200
    assert post(b, key).status_code == 429
    after = {
        worker.name: _refused(
            text_string_to_metric_families(httpx.get(worker.url + "/metrics", timeout=10).text)
        )
        for worker in workers
    }
    # Per worker: the refusal is counted by the worker that refused it (Prometheus sums them).
    assert after[b.name] - before[b.name] == 1
    assert after[a.name] - before[a.name] == 0


def _refused(families) -> float:
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "claude_proxy_limit_rejections_total"
        and sample.labels.get("client_key") == "metered"
    )
