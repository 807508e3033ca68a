"""The admin overview in a real browser (Debian's Chromium) against real daphne: the charts are
built from requests sent through the proxy, and a cooldown and an in-flight request show up on
the open page, pushed over its websocket, without a reload. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from accounts.models import CredentialStats, ModelPrice, UsageRecord
from tests.conftest import make_client_key, make_credential
from tests.fakes.upstream import Respond
from tests.live.browser import log_in, orm
from tests.live.conftest import DaphneProcess

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
MODEL = "claude-sonnet-4-6"
BODY = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "Hi"}]}


def send(base_url: str, key: str) -> httpx.Response:
    return httpx.post(
        base_url + "/v1/messages",
        json=BODY,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    )


@pytest.fixture(scope="module")
def daphne(daphne_env):
    """A daphne of this module's own: the session's one may still hold requests of earlier
    tests in flight, and this page counts them."""
    process = DaphneProcess("overview", daphne_env)
    yield process
    process.stop()


def clean_slate() -> None:
    """The session's daphne flushes its bookkeeping every 0.2 s: what an earlier test's last
    requests left lands after that test's teardown. Let it land, then clear it."""
    time.sleep(0.6)
    orm(lambda: (UsageRecord.objects.all().delete(), CredentialStats.objects.all().delete()))


def price_sonnet() -> None:
    """$3 / $15 per million input / output tokens (a transactional test starts with no prices)."""
    orm(
        lambda: ModelPrice.objects.update_or_create(
            model=MODEL,
            defaults={"input": 3, "output": 15, "cache_read": "0.3", "cache_write": "3.75"},
        )
    )


def wait_for_ledger(count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while orm(lambda: UsageRecord.objects.count()) < count:
        assert time.monotonic() < deadline, "the ledger never received the requests"
        time.sleep(0.1)


def chart_totals(page, canvas_id: str) -> dict[str, float]:
    """Each dataset's sum, read from the chart itself through Chart.js's own API."""
    return page.evaluate(
        """(id) => {
            const chart = Chart.getChart(id);
            const totals = {};
            for (const d of chart.data.datasets) {
                totals[d.label] = d.data.reduce((sum, v) => sum + (v || 0), 0);
            }
            return totals;
        }""",
        canvas_id,
    )


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_overview_charts_real_requests_and_shows_a_cooldown_live(
    page, daphne, operator, upstream
):
    clean_slate()
    price_sonnet()
    credential = orm(lambda: make_credential("team-a", base_url=upstream.url, models=[MODEL]))
    orm(lambda: make_credential("team-b", base_url=upstream.url, models=["claude-haiku-4-5"]))
    key = orm(lambda: make_client_key("browser-team"))
    for _ in range(3):
        assert send(daphne.url, key).status_code == 200
    wait_for_ledger(3)

    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, daphne.url, operator)
    page.goto(f"{daphne.url}/admin/?period=1h")
    page.wait_for_selector("#live-status[data-state=live]")

    # The charts hold what the ledger recorded: 3 answered requests, 10 + 5 tokens each, at
    # $3 + $15 per million: $0.000105 each.
    assert chart_totals(page, "chart-requests") == {"answered": 3, "errors": 0}
    tokens = chart_totals(page, "chart-tokens")
    assert (tokens["input"], tokens["output"]) == (30, 15)
    assert chart_totals(page, "chart-cost")["cost (USD)"] == pytest.approx(0.000315)
    assert page.inner_text("#total-cost") == "$0.000315"
    latency = page.evaluate("() => Chart.getChart('chart-latency').data.datasets[0].data")
    assert sum(v is not None for v in latency) >= 1
    assert page.inner_text("#total-requests") == "3"
    assert "browser-team" in page.inner_text("#by-key")
    row = page.locator(f'#pool-table tr[data-credential="{credential.pk}"]')
    assert row.get_attribute("data-state") == "ok"
    assert row.locator("td.ov-state").inner_text() == "ok"
    assert row.locator("td.ov-ok-count").inner_text() == "3"
    screenshot(page, "overview.png")

    # From here on the page is never reloaded: a marker set now must still be there.
    page.evaluate("() => { window.notReloaded = true; }")

    # A request in flight shows on the page while it runs. Every upstream answer is slow for
    # now (the fake upstream is shared: a scripted one-off could go to another process's call).
    upstream.default = lambda request: Respond.anthropic_message("slow", MODEL, delay=2.5)
    slow = threading.Thread(target=send, args=(daphne.url, key))
    slow.start()
    try:
        page.wait_for_function(
            "() => document.querySelector('#in-flight-total').textContent === '1'", timeout=5000
        )
    except Exception:
        slow.join()
        raise AssertionError(
            "in flight: "
            + page.inner_text("#in-flight-total")
            + " "
            + page.inner_text("#in-flight-workers")
            + "; upstream saw "
            + repr([(r.path, r.finished) for r in upstream.requests[-5:]])
        ) from None
    slow.join()
    page.wait_for_function(
        "() => document.querySelector('#in-flight-total').textContent === '0'", timeout=5000
    )

    # The upstream refuses with a 429 and a reset: the credential cools down, live.
    upstream.default = lambda request: Respond.error(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
        headers={"retry-after": "600"},
    )
    assert send(daphne.url, key).status_code == 429
    page.wait_for_function(
        f"""() => document.querySelector('#pool-table tr[data-credential="{credential.pk}"]')
            .dataset.state === 'cooling'""",
        timeout=10_000,
    )
    state = row.locator("td.ov-state").inner_text()
    assert state.startswith(f"{MODEL}: cooling until ") and "(rate_limited)" in state
    assert " left" in state
    assert "1 cooling" in page.inner_text("#pool-summary")
    assert page.evaluate("() => window.notReloaded") is True
    screenshot(page, "overview-cooldown.png")
    page.emulate_media(color_scheme="dark")  # the admin's dark theme: to look at
    page.reload()
    page.wait_for_selector("#live-status[data-state=live]")
    screenshot(page, "overview-dark.png")


def test_the_period_picker_and_split_redraw_the_charts(page, daphne, operator, upstream):
    clean_slate()
    orm(lambda: make_credential("team-a", base_url=upstream.url, models=[MODEL]))
    for name in ("alpha", "beta"):
        key = orm(lambda name=name: make_client_key(name))
        assert send(daphne.url, key).status_code == 200
    wait_for_ledger(2)

    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, daphne.url, operator)
    page.goto(f"{daphne.url}/admin/")
    page.click("#period-picker a[data-period='7d']")
    page.click("#split-picker a[data-split='key']")
    page.wait_for_selector("#chart-requests")
    assert "period=7d" in page.url and "split=key" in page.url
    assert chart_totals(page, "chart-requests") == {"alpha": 1, "beta": 1, "errors": 0}
    assert page.locator("#period-picker a.selected").inner_text() == "7 days"
    screenshot(page, "overview-7d-by-key.png")
    page.click("a.ov-models-link")
    assert page.url.endswith("/admin/models/")
    assert page.locator("#content-main a[href='/admin/accounts/credential/']").count() >= 1
