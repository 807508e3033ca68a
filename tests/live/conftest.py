"""Real daphne processes serving the test database, for what only a real server shows:
incremental streaming, keep-alives, client disconnects, the official SDK, several workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaphneProcess:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log = Path(env["DATA_DIR"]) / f"daphne-{name}-{os.getpid()}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "proxysite.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne {self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne {self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log_file.close()


@pytest.fixture(scope="session", autouse=True)
def flush_survives_background_writes():
    """After answering, a daphne under test may still write its bookkeeping (request counters,
    routing traces) while the test's teardown empties the tables. On PostgreSQL the TRUNCATE and
    such a write can deadlock, and the database may pick the TRUNCATE as the one to abort: then
    the teardown runs it again (the daphne's write has finished or was aborted by then)."""
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self) -> None:
        for attempt in range(5):
            try:
                return original(self)
            except CommandError as exc:
                if "deadlock detected" not in str(exc.__cause__) or attempt == 4:
                    raise
                time.sleep(0.1)

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(scope="session")
def daphne_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    return service_env()


@pytest.fixture(scope="session")
def daphne(daphne_env) -> Iterator[DaphneProcess]:
    process = DaphneProcess("a", daphne_env)
    yield process
    process.stop()


@pytest.fixture
def sdk_client():
    """Official SDK clients for a base URL, closed after the test (no leaked sockets)."""
    import anthropic

    made: list[anthropic.Anthropic] = []

    def make(base_url: str, api_key: str) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def page():
    """A headless Chromium page (tests/live/browser.py)."""
    from tests.live.browser import browser_page

    yield from browser_page()


@pytest.fixture
def operator() -> str:
    """A superuser the browser tests log in as, with tests.live.browser.PASSWORD."""
    from django.contrib.auth import get_user_model

    from tests.live.browser import PASSWORD, orm

    orm(lambda: get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD))
    return "ops"
