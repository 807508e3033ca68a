"""Several daphne workers on one port, for a machine with more than one core.

    python -m proxysite.workers --workers 4 --host 0.0.0.0 --port 8317      (make serve WORKERS=4)

The supervisor binds the listening socket once and hands it to every worker (``daphne -e
fd:…``): the workers accept from one shared queue, so a worker that stops accepting leaves
waiting connections to the others, and a rolling restart drops nothing (with SO_REUSEPORT each
worker would own a queue, and a closing worker would drop what waits in its own).

- SIGTERM / SIGINT: every worker drains (stops accepting, finishes open requests for up to
  ``SHUTDOWN_GRACE_SECONDS``, flushes its bookkeeping; see proxysite.lifecycle), then the
  supervisor exits.
- SIGHUP: rolling restart, one worker at a time: a new worker starts and reports ready before
  the old one is told to drain, so the port always has ready workers behind it (new code and
  settings take effect without a dropped request).
- A worker that dies is started again (after a pause if it keeps dying).

Every worker shares the database; with more than one machine, or for change notices without
database polling, set ``REDIS_URL`` too (README, "Scaling out").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "proxysite.asgi:application"
READY_TIMEOUT_SECONDS = 60.0
RESTART_PAUSE_SECONDS = 1.0


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    # IPv4 only: daphne adopts an inherited socket as AF_INET (its fd endpoint takes no family
    # from a command line).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Worker:
    """One daphne process serving the shared socket."""

    def __init__(self, sock: socket.socket, number: int, daphne_args: list[str]) -> None:
        ready_read, ready_write = os.pipe()
        env = {**os.environ, "PROXY_READY_FD": str(ready_write), "PROXY_WORKER": str(number)}
        self.number = number
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "--fd",
                str(sock.fileno()),
                *daphne_args,
                APPLICATION,
            ],
            cwd=ROOT,
            env=env,
            pass_fds=(sock.fileno(), ready_write),
        )
        os.close(ready_write)
        self._ready_read = ready_read
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
        """True once the worker serves; False if it exited or took longer than ``timeout``."""
        try:
            readable, _, _ = select.select([self._ready_read], [], [], timeout)
            return bool(readable) and os.read(self._ready_read, 16).startswith(b"ready")
        except InterruptedError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.close(self._ready_read)

    def drain(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def alive(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    def __init__(self, sock: socket.socket, count: int, daphne_args: list[str]) -> None:
        self.sock = sock
        self.count = count
        self.daphne_args = daphne_args
        self.workers: list[Worker] = []
        self.next_number = 0
        self.stopping = False
        self.reload_requested = False

    def spawn(self) -> Worker:
        worker = Worker(self.sock, self.next_number, self.daphne_args)
        self.next_number += 1
        return worker

    def start(self) -> None:
        self.workers = [self.spawn() for _ in range(self.count)]
        for worker in self.workers:
            if not worker.wait_ready():
                raise SystemExit(f"worker {worker.number} (pid {worker.pid}) did not start")
        print(f"{self.count} workers ready on {self._address()}", flush=True)

    def _address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def rolling_restart(self) -> None:
        for old in list(self.workers):
            if self.stopping:
                return
            new = self.spawn()
            if not new.wait_ready():
                print(f"a new worker did not start: keeping pid {old.pid}", file=sys.stderr)
                new.drain()
                continue
            self.workers[self.workers.index(old)] = new
            old.drain()
            old.process.wait()
        print(f"restarted {self.count} workers", flush=True)

    def replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.alive() or self.stopping:
                continue
            print(
                f"worker {worker.number} (pid {worker.pid}) exited with "
                f"{worker.process.returncode}: starting another",
                file=sys.stderr,
                flush=True,
            )
            if time.monotonic() - worker.started_at < 10:
                time.sleep(RESTART_PAUSE_SECONDS)  # dying at start-up: do not spin
            replacement = self.spawn()
            replacement.wait_ready()
            self.workers[index] = replacement

    def stop(self) -> int:
        for worker in self.workers:
            worker.drain()
        codes = [worker.process.wait() for worker in self.workers]
        self.sock.close()
        return 0 if all(code == 0 for code in codes) else 1

    def run(self) -> int:
        def on_stop(signum, frame) -> None:
            self.stopping = True

        def on_reload(signum, frame) -> None:
            self.reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)
        self.start()
        while not self.stopping:
            if self.reload_requested:
                self.reload_requested = False
                self.rolling_restart()
            self.replace_dead()
            time.sleep(0.2)
        return self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8317)
    args, daphne_args = parser.parse_known_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if ":" in args.host:
        parser.error("--host must be an IPv4 address (put an IPv6 listener in front, e.g. nginx)")
    sock = listening_socket(args.host, args.port)
    return Supervisor(sock, args.workers, daphne_args).run()


if __name__ == "__main__":
    sys.exit(main())
