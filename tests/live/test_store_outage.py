"""A store that goes away: a throwaway PostgreSQL cluster (and a throwaway Redis) is stopped
under a running daphne worker and started again. Requests keep being served from the worker's
memory, a cooldown learned meanwhile holds in memory and is written when the database is back,
and nothing answers 500."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import Respond
from tests.live.conftest import ROOT, DaphneProcess, free_port

pytestmark = [pytest.mark.live]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def _missing(what: str) -> None:
    message = f"needs {what} for a throwaway server"
    if os.environ.get("REQUIRE_SERVICES"):
        pytest.fail(message + " (REQUIRE_SERVICES is set)")
    pytest.skip(message)


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class ThrowawayPostgres:
    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            _missing("PostgreSQL's initdb")
        self.bin = Path(binaries[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="proxy-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.dir / "data")])
            + ["-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data")])
            + ["-o", options, "-l", str(self.dir / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data")])
            + ["-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )

    def query(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    yield cluster
    cluster.remove()


def manage(env: dict[str, str], *args: str, **kwargs) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        **kwargs,
    ).stdout.strip()


def prepare(env: dict[str, str], upstream_url: str) -> str:
    """Migrate, two credentials (fill-first: 'first' serves while it can), a client key."""
    manage(env, "migrate", "-v0")
    for label in ("first", "second"):
        manage(
            {**env, "SECRET": f"sk-ant-api03-{label}-secret-000000"},
            "add_credential",
            "--provider",
            "anthropic",
            "--label",
            label,
            "--secret-env",
            "SECRET",
            "--base-url",
            f"{upstream_url}/{label}",
        )
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import ProxySettings; s = ProxySettings.load(); "
        "s.routing_strategy = 'fill-first'; s.request_retry = 0; s.save()",
    )
    return manage(env, "create_client_key", "outage")


def served_by(upstream) -> list[str]:
    return [r.path.split("/")[1] for r in upstream.requests]


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:  # noqa: BLE001 - the database may still be starting
            pass
        time.sleep(0.2)
    return False


def test_it_serves_through_a_database_outage_and_writes_what_it_learned_after(
    daphne_env, upstream, postgres
):
    env = {
        **daphne_env,
        "DATABASE_URL": postgres.url,
        "REDIS_URL": "",
        "POOL_REFRESH_SECONDS": "0.5",
        "STATS_FLUSH_SECONDS": "0.5",
    }
    key = prepare(env, upstream.url)
    worker = DaphneProcess("outage", env)
    try:
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            assert client.post("/v1/messages", json=BODY).status_code == 200
            assert client.get("/readyz").status_code == 200

            postgres.stop()
            assert client.post("/v1/messages", json=BODY).status_code == 200  # from memory
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["database"].startswith("database unreachable")

            upstream.script(
                "/first/",
                Respond.error(429, "rate_limit_error", "slow", headers={"retry-after": "120"}),
            )
            assert client.post("/v1/messages", json=BODY).status_code == 200  # failed over
            assert client.post("/v1/messages", json=BODY).status_code == 200
            # The cooldown held in memory: the last request went straight to the second.
            assert served_by(upstream) == ["first", "first", "first", "second", "second"]

            postgres.start()
            assert wait_until(
                lambda: (
                    postgres.query(
                        "select q.reason from accounts_quotastate q join accounts_credential c "
                        "on c.id = q.credential_id where c.label = 'first'"
                    )
                    == [("rate_limited",)]
                )
            ), "the cooldown learned during the outage was never written"
            assert wait_until(
                lambda: (
                    postgres.query(
                        "select sum(successes), sum(failures) from accounts_credentialstats"
                    )
                    == [(4, 1)]
                )  # four requests: two on first, one 429 there, two on second
            ), postgres.query("select * from accounts_credentialstats")
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
            assert client.post("/v1/messages", json=BODY).status_code == 200
        assert "Traceback" not in worker.log.read_text()
    finally:
        worker.stop()


def test_it_answers_503_not_500_when_it_starts_without_its_database(daphne_env, postgres):
    env = {**daphne_env, "DATABASE_URL": postgres.url, "REDIS_URL": ""}
    key = prepare(env, "http://127.0.0.1:9")
    postgres.stop()
    worker = DaphneProcess("cold", env)
    try:
        response = httpx.post(
            worker.url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=30
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"] == {
            "type": "api_error",
            "message": "The proxy cannot reach its database right now; try again in a few seconds.",
        }
        assert httpx.get(worker.url + "/healthz", timeout=5).status_code == 200
    finally:
        worker.stop()


class ThrowawayRedis:
    def __init__(self) -> None:
        if not shutil.which("redis-server"):
            _missing("redis-server")
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        assert wait_until(lambda: httpx_free_ping(self.port), timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def httpx_free_ping(port: int) -> bool:
    import redis

    return bool(redis.Redis(port=port, socket_timeout=1).ping())


@pytest.mark.django_db(transaction=True)
def test_it_serves_through_a_redis_outage(daphne_env, upstream):
    from tests.conftest import make_client_key, make_credential

    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    redis_server = ThrowawayRedis()
    worker = DaphneProcess(
        "redis-outage", {**daphne_env, "REDIS_URL": redis_server.url, "POOL_REFRESH_SECONDS": "0.2"}
    )
    try:
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as client:
            assert client.post("/v1/messages", json=BODY).status_code == 200
            redis_server.stop()
            for _ in range(3):
                assert client.post("/v1/messages", json=BODY).status_code == 200
                time.sleep(0.3)
            assert client.get("/readyz").json()["redis"].startswith("redis unreachable")
            redis_server.start()
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
            assert client.post("/v1/messages", json=BODY).status_code == 200
        assert "Traceback" not in worker.log.read_text()
    finally:
        worker.stop()
        redis_server.stop()
