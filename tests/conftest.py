"""Shared fixtures: the fake upstream, pool personas, an API client, daphne processes.

Integration tests run the proxy in-process through Django's AsyncClient against a real fake
upstream on 127.0.0.1. The proxy's own database calls run on a worker thread, so those tests use
``django_db(transaction=True)``. Live tests start real daphne processes on the test database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import AsyncClient

from accounts import versions
from accounts.models import ClientKey, Credential, CredentialModel, ProxySettings
from accounts.pool import pool
from claude_api import http
from tests.fakes.upstream import FakeUpstream

# Test bodies set up data with the plain ORM from inside async tests; the proxy under test does
# its own database work on worker threads, exactly as in production.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM_SECRET = "sk-ant-api03-upstream-secret-0001"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "claude-code" / name).read_text())


def claude_code_fixtures() -> list[str]:
    return sorted(p.name for p in (FIXTURES / "claude-code").glob("*.json"))


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.reset()
    yield upstream_server
    upstream_server.reset()


@pytest.fixture
async def fresh_pool(settings):
    """A clean in-process pool that re-reads the database on every request."""
    settings.POOL_REFRESH_SECONDS = 0
    pool.reset()
    # Django keeps database connections per async context. Creating the connection object here
    # puts it in storage the test body's (copied) context shares, so teardown can close what the
    # test body opened while setting up data with the plain ORM.
    connections["default"]
    yield pool
    await pool.settle()
    await http.close_all()
    await versions.close_async_clients()
    pool.reset()
    connections.close_all()


def make_credential(
    label: str = "primary",
    *,
    base_url: str = "",
    provider: str = "anthropic",
    secret: str = UPSTREAM_SECRET,
    models: list[str | tuple[str, str]] | None = None,
    **fields: Any,
) -> Credential:
    credential = Credential(provider=provider, label=label, base_url=base_url, **fields)
    credential.set_secret(secret)
    credential.save()
    for model in models or []:
        name, alias = (model, "") if isinstance(model, str) else model
        CredentialModel.objects.create(credential=credential, name=name, alias=alias)
    return credential


def make_client_key(name: str = "alice", allowed_models: str = "", **limits: Any) -> str:
    client_key, plaintext = ClientKey.issue(name=name, allowed_models=allowed_models)
    if limits:
        for field, value in limits.items():
            setattr(client_key, field, value)
        client_key.save()
    return plaintext


@pytest.fixture
def published_prices(db) -> None:
    """The price table as migration 0004 seeds it (transactional tests empty every table)."""
    from accounts.models import ModelPrice
    from accounts.prices import PUBLISHED

    for model, price in PUBLISHED.items():
        ModelPrice.objects.update_or_create(
            model=model,
            defaults={
                "input": price.input,
                "output": price.output,
                "cache_read": price.cache_read,
                "cache_write": price.cache_write,
            },
        )


def set_proxy_settings(**values: Any) -> ProxySettings:
    row = ProxySettings.load()
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    return row


class Api:
    """Django's AsyncClient, speaking to the proxy like an Anthropic client."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.client = AsyncClient()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"x-api-key": self.key, "anthropic-version": "2023-06-01", **(extra or {})}

    async def post(
        self,
        path: str,
        body: dict[str, Any] | bytes,
        headers: dict[str, str] | None = None,
    ):
        data = body if isinstance(body, bytes) else json.dumps(body)
        return await self.client.post(
            path, data, content_type="application/json", headers=self.headers(headers)
        )

    async def get(self, path: str, headers: dict[str, str] | None = None):
        return await self.client.get(path, headers=self.headers(headers))

    async def message(self, model: str = "claude-sonnet-4-6", **body: Any):
        payload = {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hello"}],
            **body,
        }
        return await self.post("/v1/messages", payload)


async def read_stream(response) -> bytes:
    chunks = []
    async for chunk in response.streaming_content:
        chunks.append(chunk)
    return b"".join(chunks)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = json.loads(line[5:].strip())
        if name and data is not None:
            events.append((name, data))
    return events


@pytest.fixture
def api_key(db) -> str:
    return make_client_key()


@pytest.fixture
def api(api_key: str) -> Api:
    return Api(api_key)


def service_env() -> dict[str, str]:
    """What a daphne subprocess needs to share this test session's database and secrets."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = (
            f"postgres://{db.get('USER') or ''}:{db.get('PASSWORD') or ''}@"
            f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        )
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "CLIENT_KEY_PEPPER": settings.CLIENT_KEY_PEPPER,
            "DATA_DIR": str(settings.DATA_DIR),
            # Check the change counters on every request: a test's writes are then seen by its
            # very next request (with any interval, a fast test can beat the worker's next check
            # and be served the previous test's credentials and settings).
            "POOL_REFRESH_SECONDS": "0",
            "STATS_FLUSH_SECONDS": "0.2",
            "REDIS_URL": settings.REDIS_URL,
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def _database_is_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.services import redis_reachable

    required = bool(os.environ.get("REQUIRE_SERVICES"))
    if item.get_closest_marker("postgres") and not _database_is_postgres():
        pytest.skip("needs PostgreSQL: runs in the PostgreSQL pass of `make test`")
    if item.get_closest_marker("redis") and not redis_reachable(REDIS_TEST_URL):
        message = f"needs Redis, which is not reachable at {REDIS_TEST_URL}"
        if required:
            pytest.fail(message + " (REQUIRE_SERVICES is set)")
        pytest.skip(message)


# The fake OAuth provider fixture, for every test package (defined beside its helpers).
from tests.oauth_helpers import oauth  # noqa: E402, F401
