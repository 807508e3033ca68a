"""What the browser tests share: Debian's Chromium driven by playwright (never `playwright
install`), ORM calls off playwright's event-loop thread, and the admin's login form. The
``page`` and ``operator`` fixtures live in tests/live/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

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


def browser_page() -> Iterator[Any]:
    """A fresh page in a headless Chromium, closed afterwards (the ``page`` fixture)."""
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


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Claude proxy" in page.inner_text("#site-name")
