"""The proxy under test: a real daphne process on a cell's own SQLite database, behind a relay
that records every byte between the client and the proxy (the artifacts of a failing cell).

Each cell gets its own database and daphne. Cooldowns live in the database and in the
worker's memory, and two rows exist to create them (a dropped stream, a 429): a daphne shared by
a column would carry one cell's cooldown into the next cell and make the result depend on the
order. A daphne starts in about a second, so isolation costs little.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
_template_lock = threading.Lock()
_template: Path | None = None
# One set of secrets for the whole run: they only protect throwaway databases.
SECRETS = {
    "DJANGO_SECRET_KEY": "compat-secret-key-not-for-production",
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "CLIENT_KEY_PEPPER": "compat-pepper",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proxy_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SECRETS)
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
            "DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "proxysite.settings",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def template_database(work: Path) -> Path:
    """Migrate once per run; every cell starts from a copy (migrating takes seconds)."""
    global _template
    with _template_lock:
        if _template is None:
            data = work / "template"
            data.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=ROOT,
                env=proxy_env(data),
                check=True,
            )
            _template = data / "db.sqlite3"
        return _template


class Daphne:
    """``tests.compat.serve``: seeds the cell's database copy, then runs daphne's CLI."""

    def __init__(self, data_dir: Path, spec: dict[str, Any], template: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, data_dir / "db.sqlite3")
        spec_path = data_dir / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        key_path = Path(f"{spec_path}.key")
        self.port = free_port()
        self.log_path = data_dir / "daphne.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.compat.serve", str(spec_path), str(self.port)],
            cwd=ROOT,
            env=proxy_env(data_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                lines = self.log_path.read_text().strip().splitlines() or ["(no output)"]
                raise RuntimeError(f"daphne exited: {lines[-1]} (see proxy/daphne.log)")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    self.key = key_path.read_text().strip()
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # never leave a half-started server behind
        raise RuntimeError("daphne did not start within 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class Relay:
    """A TCP pass-through on its own port that keeps each connection's bytes, both ways.

    Byte-level on purpose: the artifacts then show what the client really received (keep-alive
    comments, leading newlines, a stream's exact end), which a parsing client would hide.
    """

    def __init__(self, target_port: int, out_dir: Path) -> None:
        self.target_port = target_port
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.connections: list[tuple[bytearray, bytearray]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent, received = bytearray(), bytearray()
        self.connections.append((sent, received))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, buf: bytearray
        ) -> None:
            try:
                while data := await src.read(65536):
                    buf.extend(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer, sent), pipe(up_reader, writer, received))
        except asyncio.CancelledError:
            # The recorder stopping with a connection open: ending quietly keeps asyncio's
            # stream callback from printing the cancelled task's traceback into the run.
            return

    def client_to_proxy(self) -> bytes:
        return b"\n".join(bytes(s) for s, _ in self.connections)

    def proxy_to_client(self) -> bytes:
        return b"\n".join(bytes(r) for _, r in self.connections)

    def proxy_statuses(self) -> list[int]:
        statuses = []
        for _, received in self.connections:
            for line in bytes(received).split(b"\r\n"):
                if line.startswith(b"HTTP/1.1 "):
                    try:
                        statuses.append(int(line.split()[1]))
                    except (IndexError, ValueError):
                        pass
        return statuses

    def dump(self) -> None:
        for n, (sent, received) in enumerate(self.connections, 1):
            (self.out_dir / f"connection-{n:02d}.client-to-proxy.txt").write_bytes(bytes(sent))
            (self.out_dir / f"connection-{n:02d}.proxy-to-client.txt").write_bytes(bytes(received))

    def stop(self) -> None:
        async def _stop() -> None:
            self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
