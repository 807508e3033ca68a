"""Several daphne workers on one port (proxysite.workers): a rolling restart under load drops no
request, and a stopping worker lets its open streams finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

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
