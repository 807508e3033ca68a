"""An operator's first session in a real browser against real daphne: log in, add a credential,
see its status and hint (never the secret), issue a client key and copy it from the page."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from accounts import keys
from accounts.models import ClientKey, Credential

pytestmark = [
    pytest.mark.browser,
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple-7"
SECRET = "sk-ant-api03-Browser-Canary-5e4d3c2b1a-WXYZ"
KEY_PATTERN = re.compile(r"^sk-px-[A-Za-z0-9_-]{43}$")

T = TypeVar("T")


def orm(query: Callable[[], T]) -> T:
    """Run ORM code on a thread of its own and close its connection there.

    Playwright's sync API keeps an event loop running on the test's thread, so Django would see an
    async context (SynchronousOnlyOperation), and the connection it opened in that context would
    outlive the test and keep PostgreSQL from dropping the test database. The data is committed
    (transaction=True), so any thread sees it, daphne included.
    """

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(run).result()


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture
def page() -> Iterator[Any]:
    missing = _missing_browser()
    if missing:
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail(f"browser test cannot run: {missing} (REQUIRE_SERVICES is set)")
        pytest.skip(f"browser test needs Chromium and playwright: {missing}")
    from playwright.sync_api import sync_playwright

    # Never `playwright install`: the system Chromium is the only browser this machine can have.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture
def operator() -> str:
    orm(lambda: get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD))
    return "ops"


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Claude proxy" in page.inner_text("#site-name")


def test_it_adds_a_credential_and_a_client_key_in_a_browser(page, daphne, operator):
    log_in(page, daphne.url, operator)

    page.goto(f"{daphne.url}/admin/accounts/credential/add/")
    page.fill("#id_label", "browser-team")
    page.fill("#id_secret", SECRET)
    page.fill("#id_models-0-name", "claude-sonnet-4-6")
    page.fill("#id_models-0-alias", "sonnet")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")

    row = page.locator("#result_list tbody tr", has_text="browser-team")
    assert row.locator("td.field-status").inner_text().strip() == "ok"
    assert row.locator("td.field-secret_column").inner_text().strip() == "…WXYZ"
    assert "sonnet → claude-sonnet-4-6" in row.inner_text()
    assert "Browser-Canary" not in page.content()
    credential = orm(lambda: Credential.objects.get(label="browser-team"))
    assert credential.get_secret() == SECRET

    page.goto(f"{daphne.url}/admin/accounts/credential/{credential.pk}/change/")
    assert page.input_value("#id_secret") == ""
    assert "Browser-Canary" not in page.content()

    page.goto(f"{daphne.url}/admin/accounts/clientkey/add/")
    page.fill("#id_name", "browser-client")
    page.click("input[name=_save]")
    key = page.inner_text("code.issued-key").strip()

    assert KEY_PATTERN.match(key)
    assert orm(lambda: ClientKey.objects.get(digest=keys.digest(key)).name) == "browser-client"
    page.goto(f"{daphne.url}/admin/accounts/clientkey/")
    assert "browser-client" in page.content()
    assert key not in page.content()

    # The key works at once: the admin's save reached the serving process through the version
    # bump, with no restart.
    deadline = time.monotonic() + 5
    while True:
        response = httpx.get(
            f"{daphne.url}/v1/models",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            timeout=5,
        )
        if response.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code != 401, response.text
