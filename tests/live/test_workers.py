"""Several daphne workers on one port (proxysite.workers): a rolling restart under load drops no
request, a stopping worker lets its open streams finish, and a scrape of the shared port reports
the whole server's counters, which never go down."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from claude_api import metrics_share
from tests.conftest import make_client_key, make_credential, sse_events
from tests.fakes.upstream import Respond
from tests.live.conftest import ROOT, DaphneProcess, free_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

BODY = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


class Supervisor:
    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.log = Path(env["DATA_DIR"]) / f"workers-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxysite.workers", "--workers", str(workers)]
            + ["--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.wait_for_line(f"{workers} workers ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the supervisor's output:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            self._log_file.close()


class Load(threading.Thread):
    """A client sending requests back to back on keep-alive connections until told to stop."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.key = key
        self.statuses: list[int | str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"x-api-key": self.key}, timeout=30) as c:
            while not self.done.is_set():
                try:
                    self.statuses.append(c.post("/v1/messages", json=BODY).status_code)
                except httpx.HTTPError as exc:
                    self.statuses.append(type(exc).__name__)


def test_it_drops_no_request_during_a_rolling_restart(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    supervisor = Supervisor({**daphne_env, "SHUTDOWN_GRACE_SECONDS": "20"}, workers=2)
    try:
        upstream.script("/only/", Respond.anthropic_stream("a slow answer in six parts", gap=0.5))
        loads = [Load(supervisor.url, key) for _ in range(3)]
        for load in loads:
            load.start()
        with httpx.Client(base_url=supervisor.url, headers={"x-api-key": key}, timeout=30) as c:
            with c.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as stream:
                supervisor.process.send_signal(signal.SIGHUP)  # while the stream is open
                events = sse_events(b"".join(stream.iter_bytes()))
        supervisor.wait_for_line("restarted 2 workers")
        time.sleep(0.5)
        for load in loads:
            load.done.set()
        for load in loads:
            load.join(30)
        statuses = [status for load in loads for status in load.statuses]
        assert events[-1][0] == "message_stop"  # the stream outlived its worker's restart
        assert len(statuses) > 20
        assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    finally:
        assert supervisor.stop() == 0


def test_it_lets_an_open_stream_finish_when_stopped_and_then_exits(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    worker = DaphneProcess("drain", {**daphne_env, "SHUTDOWN_GRACE_SECONDS": "20"})
    try:
        upstream.script("/only/", Respond.anthropic_stream("one two three four", gap=0.4))
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as c:
            with c.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as stream:
                chunks = stream.iter_bytes()
                first = next(chunks)
                worker.process.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                with pytest.raises(httpx.ConnectError):  # no longer accepting
                    httpx.get(worker.url + "/healthz", timeout=2)
                events = sse_events(first + b"".join(chunks))
            assert events[-1][0] == "message_stop"
        assert worker.process.wait(15) == 0
    finally:
        worker.stop()


def test_it_ends_streams_that_outlast_the_grace_period(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    worker = DaphneProcess(
        "grace", {**daphne_env, "SHUTDOWN_GRACE_SECONDS": "1", "PYTHONFAULTHANDLER": "1"}
    )
    try:
        upstream.script("/only/", Respond.anthropic_stream("a b c d e f g h i j", gap=1.0))
        with httpx.Client(base_url=worker.url, headers={"x-api-key": key}, timeout=30) as c:
            with c.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as stream:
                chunks = stream.iter_bytes()
                next(chunks)
                started = time.monotonic()
                worker.process.send_signal(signal.SIGTERM)
                with pytest.raises(httpx.HTTPError):
                    b"".join(chunks)
        assert worker.process.wait(15) == 0
        assert time.monotonic() - started < 8
    finally:
        worker.stop()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def send(url: str, key: str, count: int, clients: int = 4) -> None:
    """``count`` requests from a few clients at once, each on a new connection (so the shared
    socket hands them to either worker)."""
    statuses: list[int] = []

    def client(share: int) -> None:
        for _ in range(share):
            response = httpx.post(
                url + "/v1/messages",
                json=BODY,
                headers={"x-api-key": key, "connection": "close"},
                timeout=30,
            )
            statuses.append(response.status_code)

    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * count


class Scraper(threading.Thread):
    """Scrapes the shared port over and over (each on a new connection, so each lands on either
    worker) and keeps every total it saw."""

    FAMILIES = (
        "claude_proxy_requests_total",
        "claude_proxy_tokens_total",
        "claude_proxy_request_duration_seconds_count",
        "claude_proxy_upstream_attempts_total",
    )

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[dict[str, float]] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def scrape(self) -> dict[str, float] | None:
        try:
            response = httpx.get(self.url + "/metrics", timeout=10)
        except httpx.HTTPError as exc:  # a worker stopping under the connection
            self.failures.append(type(exc).__name__)
            return None
        if response.status_code != 200:  # 503 from a worker past its last flush
            self.failures.append(str(response.status_code))
            return None
        totals = dict.fromkeys(self.FAMILIES, 0.0)
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
        self.seen.append(totals)
        return totals

    def run(self) -> None:
        while not self.done.is_set():
            self.scrape()
            time.sleep(0.02)

    def wait_for(self, requests: int, timeout: float = 10) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            totals = self.scrape()
            if totals and totals["claude_proxy_requests_total"] >= requests:
                return totals
            time.sleep(0.05)
        raise AssertionError(f"no scrape reached {requests} requests: {self.seen[-3:]}")

    def assert_never_went_down(self) -> None:
        for name in self.FAMILIES:
            values = [totals[name] for totals in self.seen]
            assert values == sorted(values), (name, values)


def test_a_scrape_of_the_shared_port_counts_every_worker_and_never_goes_down(daphne_env, upstream):
    make_credential("only", base_url=upstream.url + "/only")
    key = make_client_key()
    flush = 0.2
    supervisor = Supervisor({**daphne_env, "STATS_FLUSH_SECONDS": str(flush)}, workers=2)
    run_directory = Path(daphne_env["DATA_DIR"]) / "metrics" / f"run-{supervisor.process.pid}"
    scraper = Scraper(supervisor.url)
    try:
        send(supervisor.url, key, 40)
        totals = scraper.wait_for(40, timeout=flush * 10)
        assert totals["claude_proxy_requests_total"] == 40
        assert totals["claude_proxy_request_duration_seconds_count"] == 40
        assert totals["claude_proxy_tokens_total"] == 40 * (10 + 5)  # the fake's usage
        assert totals["claude_proxy_upstream_attempts_total"] == 40
        # Both workers served some of them (so the total really is a sum).
        time.sleep(flush * 3)
        served = [
            sum(snapshot["claude_proxy_requests_total"].samples.values())
            for path in sorted(run_directory.glob("worker-*.json"))
            if (snapshot := metrics_share.from_json(json.loads(path.read_text())))
        ]
        assert len(served) == 2 and sum(served) == 40 and min(served) > 0, served

        scraper.start()  # from now on, scraping all the time
        supervisor.process.send_signal(signal.SIGHUP)
        send(supervisor.url, key, 30)  # during the rolling restart
        supervisor.wait_for_line("restarted 2 workers")
        send(supervisor.url, key, 20)
        assert scraper.wait_for(90, timeout=flush * 10)["claude_proxy_requests_total"] == 90
        # The retired workers were folded: one snapshot per live worker.
        assert (run_directory / "retired.json").exists()
        assert len(list(run_directory.glob("worker-*.json"))) == 2

        # A worker killed outright: what it published stays counted; it is replaced.
        time.sleep(flush * 5)  # a few snapshots since the last request
        os.kill(children(supervisor.process.pid)[0], signal.SIGKILL)
        supervisor.wait_for_line("starting another")
        assert scraper.wait_for(90)["claude_proxy_requests_total"] == 90
        send(supervisor.url, key, 10)
        final = scraper.wait_for(100, timeout=flush * 10)
        time.sleep(flush * 3)
        scraper.done.set()
        scraper.join(10)
        assert final["claude_proxy_requests_total"] == 100
        assert scraper.scrape()["claude_proxy_requests_total"] == 100
        assert len(scraper.seen) > 20
        scraper.assert_never_went_down()
    finally:
        scraper.done.set()
        assert supervisor.stop() == 0
    assert not run_directory.exists()  # this run's counters ended with it


def established_by_process(port: int) -> dict[int, int]:
    """Accepted connections to ``port``, counted by the process that holds them (ss -tnp)."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[int, int] = {}
    for pid in (int(p) for p in re.findall(r"pid=(\d+)", out)):
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def test_a_burst_of_keep_alive_clients_is_spread_over_the_workers(daphne_env):
    # Twisted accepted every waiting connection at once: the first worker to wake took a whole
    # burst of clients, and with keep-alive kept them; a second worker then added nothing.
    import socket

    supervisor = Supervisor(daphne_env, workers=2)
    try:
        workers = children(supervisor.process.pid)
        clients = [socket.create_connection(("127.0.0.1", supervisor.port)) for _ in range(32)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = established_by_process(supervisor.port)
            if sum(counts.values()) >= 32:
                break
            time.sleep(0.05)
        assert sorted(counts) == sorted(workers)
        assert min(counts.values()) >= 8, counts
        for client in clients:
            client.close()
    finally:
        assert supervisor.stop() == 0
