"""Several daphne workers on one port, for a machine with more than one core.

    python -m proxysite.workers --workers 4 --host 0.0.0.0 --port 8317      (make serve WORKERS=4)

The supervisor binds the listening socket once and hands it to every worker (``daphne -e
fd:…``): the workers accept from one shared queue, so a worker that stops accepting leaves
waiting connections to the others, and a rolling restart drops nothing (with SO_REUSEPORT each
worker would own a queue, and a closing worker would drop what waits in its own). Each worker
accepts one connection at a time and then leaves the socket to the others for a millisecond
(proxysite.lifecycle.accept_one_at_a_time), so a burst of keep-alive clients is spread over the
workers instead of landing on whichever woke first.

- SIGTERM / SIGINT: every worker drains (stops accepting, finishes open requests for up to
  ``SHUTDOWN_GRACE_SECONDS``, flushes its bookkeeping; see proxysite.lifecycle), then the
  supervisor exits.
- SIGHUP: rolling restart, one worker at a time: a new worker starts and reports ready before
  the old one is told to drain, so the port always has ready workers behind it (new code and
  settings take effect without a dropped request).
- A worker that dies is started again (after a pause if it keeps dying).
- ``/metrics`` on any worker reports the whole server: the supervisor gives its workers a
  directory for their metric snapshots (``DATA_DIR/metrics/run-<pid>``, ``PROXY_METRICS_DIR``)
  and folds each exited worker's last snapshot into the retired workers' totals, so counters
  never go down across restarts (claude_api.metrics_share).

Every worker shares the database; with more than one machine, or for change notices without
database polling, set ``REDIS_URL`` too (README, "Scaling out").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from claude_api import metrics_share

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

    def __init__(
        self,
        sock: socket.socket,
        number: int,
        daphne_args: list[str],
        extra_env: dict[str, str] | None = None,
    ) -> None:
        ready_read, ready_write = os.pipe()
        env = {
            **os.environ,
            **(extra_env or {}),
            "PROXY_READY_FD": str(ready_write),
            "PROXY_WORKER": str(number),
        }
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
    def __init__(
        self,
        sock: socket.socket,
        count: int,
        daphne_args: list[str],
        metrics_dir: Path | None = None,
    ) -> None:
        self.sock = sock
        self.count = count
        self.daphne_args = daphne_args
        self.metrics_dir = metrics_dir
        self.workers: list[Worker] = []
        # Told to stop but perhaps not exited yet: retired once they have.
        self.leaving: list[Worker] = []
        self.next_number = 0
        self.stopping = False
        self.reload_requested = False

    def spawn(self) -> Worker:
        extra_env = {"PROXY_METRICS_DIR": str(self.metrics_dir)} if self.metrics_dir else {}
        worker = Worker(self.sock, self.next_number, self.daphne_args, extra_env)
        self.next_number += 1
        return worker

    def retire(self, worker: Worker) -> None:
        """Once ``worker`` has exited: its last metric counts join the retired workers'."""
        if self.metrics_dir is None:
            return
        try:
            metrics_share.retire_worker(self.metrics_dir, str(worker.number))
        except OSError as exc:
            # Its snapshot stays where it is and still counts; only the folding is missed.
            print(f"could not fold worker {worker.number}'s metrics: {exc}", file=sys.stderr)

    def reap_leaving(self) -> None:
        for worker in list(self.leaving):
            if not worker.alive():
                self.leaving.remove(worker)
                self.retire(worker)

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
                self.leaving.append(new)
                continue
            self.workers[self.workers.index(old)] = new
            old.drain()
            old.process.wait()
            self.retire(old)
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
            self.retire(worker)
            if time.monotonic() - worker.started_at < 10:
                time.sleep(RESTART_PAUSE_SECONDS)  # dying at start-up: do not spin
            replacement = self.spawn()
            replacement.wait_ready()
            self.workers[index] = replacement

    def stop(self) -> int:
        for worker in self.workers:
            worker.drain()
        codes = [worker.process.wait() for worker in self.workers]
        for worker in self.leaving:
            worker.process.wait()
        self.sock.close()
        if self.metrics_dir is not None:
            # The counters of this run end with it; the next run's start from zero.
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
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
            self.reap_leaving()
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
    metrics_dir = metrics_share.run_directory(data_dir(), os.getpid())
    return Supervisor(sock, args.workers, daphne_args, metrics_dir).run()


def data_dir() -> Path:
    """The workers' DATA_DIR (proxysite.settings), as they resolve it (they run in ROOT)."""
    return (ROOT / os.environ.get("DATA_DIR", str(ROOT / "data"))).resolve()


if __name__ == "__main__":
    sys.exit(main())
