"""What a serving worker runs beside its requests: the pool's timers, a graceful stop,
and the last flush before it exits.

Daphne (Twisted) serves no ASGI lifespan events, so this hooks its reactor instead:

- once the reactor runs: start the pool's timers (the counters' flush, the change check) and,
  under a supervisor, the metrics' publishing (claude_api.metrics), take over SIGTERM / SIGINT,
  and tell the supervisor that this worker is ready (``PROXY_READY_FD``, see proxysite.workers);
- on SIGTERM or SIGINT: stop accepting connections (other workers sharing the socket keep
  accepting), let open requests and streams finish for up to ``SHUTDOWN_GRACE_SECONDS``, ask
  keep-alive clients to close their connections, then stop the reactor. A second signal stops
  at once;
- before the reactor stops: daphne cancels what is still open; we wait for those requests'
  ``finally`` blocks (routing traces, outcome counters), then flush the pool's bookkeeping and
  publish the final metrics, so a clean shutdown loses no counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import logging
import os
import signal
import sys
import time

from django.conf import settings

from accounts.pool import pool
from claude_api import http, metrics

logger = logging.getLogger(__name__)

# How long the last flush waits for cancelled requests to finish their bookkeeping.
CANCELLED_REQUESTS_GRACE_SECONDS = 5.0
# The freeze at start misses what a worker's first requests create for good: modules imported on
# first use, compiled schemas, caches, connection pools (about 15,000 objects, which every full
# collection then traversed: 10-40 ms stalls). After this many requests it freezes once more.
WARM_UP_REQUESTS = 200
# ... at a moment with no request open if one comes (an open request's objects would be frozen
# with the rest, never to be collected); after this many, whatever is open.
WARM_UP_REQUESTS_AT_MOST = 2_000
# How long a thread may hold the interpreter lock while another waits for it. Python's 5 ms
# default lets the bookkeeping thread (a ledger flush) hold a request up to 5 ms each time the
# request's code wakes from I/O; 1 ms bounds that at a negligible cost in switches.
SWITCH_INTERVAL_SECONDS = 0.001
# With several workers on one socket, how long a worker that has just accepted a connection
# leaves the next ones to the others (accept_one_at_a_time).
ACCEPT_PAUSE_SECONDS = 0.001
# How long a draining worker keeps serving its open connections at the least.
DRAIN_LINGER_SECONDS = 1.0


class ServingProcess:
    """Requests in flight in this process, and the worker's background duties."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.started = False
        self.draining = False
        # Set when the last flush begins: requests arriving after that are refused (503), since
        # their outcome could land after it.
        self.stopping = False
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.served = 0
        self.warm = False

    # Requests ---------------------------------------------------------------------------

    def request_started(self) -> None:
        if not self.started:
            # Served without a reactor hook (another ASGI server): start what we can here.
            self.start()
        self.in_flight += 1

    def request_ended(self) -> None:
        self.in_flight -= 1
        self.served += 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()
        if not self.warm and self.served >= WARM_UP_REQUESTS:
            if self.in_flight == 0 or self.served >= WARM_UP_REQUESTS_AT_MOST:
                self.warm = True
                if settings.GC_FREEZE:
                    freeze_long_lived()

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight, False if ``timeout`` passed first."""
        if self.in_flight <= 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True

    # Start --------------------------------------------------------------------------------

    def install(self) -> None:
        """At import under daphne: run ``start`` as soon as the reactor runs."""
        if "twisted.internet.reactor" not in sys.modules:
            return  # no reactor in this process (tests, management commands)
        from twisted.internet import reactor

        reactor.callWhenRunning(self.start)

    def start(self) -> None:
        """On the server's event loop, once."""
        if self.started:
            return
        self.started = True
        if settings.GC_FREEZE:
            # What exists now (Django, the URL resolver, the imported code) lives as long as
            # the process. Frozen, the collector stops traversing it in every full collection:
            # those traversals were the 10–80 ms stalls at p99. Again after the first requests.
            freeze_long_lived()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        pool.start_flush_timer()
        pool.start_refresh_timer()
        metrics.sharing.start()
        if "twisted.internet.reactor" not in sys.modules:
            return
        from twisted.internet import defer, reactor

        def last_flush() -> defer.Deferred:
            return defer.Deferred.fromFuture(_background(self.last_flush()))

        reactor.addSystemEventTrigger("before", "shutdown", last_flush)
        if os.environ.get("PROXY_WORKER"):
            accept_one_at_a_time()
        self._loop = asyncio.get_event_loop()
        if reactor.running:
            # Twisted's own handlers stop the reactor at once; ours drain first.
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._announce_ready()

    def _announce_ready(self) -> None:
        fd = os.environ.pop("PROXY_READY_FD", "")
        if fd.isdigit():
            with contextlib.suppress(OSError):
                os.write(int(fd), b"ready\n")
                os.close(int(fd))

    # Stop ---------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        # A signal handler runs in whatever context the interrupted code had (a request's,
        # say): the drain must not inherit it (asgiref keys its thread executors on context).
        self._loop.call_soon_threadsafe(self.begin_drain, context=contextvars.Context())

    def begin_drain(self) -> None:
        from twisted.internet import reactor

        if self.draining:
            logger.warning("second stop signal: stopping now")
            reactor.stop()
            return
        self.draining = True
        self._stop_listening()
        _background(self._drain_then_stop())

    def _stop_listening(self) -> None:
        from twisted.internet import reactor, tcp

        for reader in list(reactor.getReaders()):
            if isinstance(reader, tcp.Port):
                reader.stopListening()

    async def _drain_then_stop(self) -> None:
        from twisted.internet import reactor

        started = time.monotonic()
        deadline = started + settings.SHUTDOWN_GRACE_SECONDS
        # A keep-alive client may be about to send its next request on a connection that is
        # idle right now: stopping the moment nothing is in flight would close it under that
        # request. Lingering a moment serves it (with Connection: close, so it moves on).
        linger_until = started + DRAIN_LINGER_SECONDS
        while True:
            now = time.monotonic()
            if now >= deadline:
                logger.warning(
                    "%d requests still open after %.0f s: ending them",
                    self.in_flight,
                    settings.SHUTDOWN_GRACE_SECONDS,
                )
                break
            if self.in_flight <= 0 and now >= linger_until:
                logger.info("drained in %.1f s", now - started)
                break
            await asyncio.sleep(0.05)
        if reactor.running:
            # From the reactor, not from inside this task: stopping runs daphne's trigger, which
            # cancels and awaits the open requests' tasks.
            reactor.callLater(0, reactor.stop)

    async def last_flush(self) -> None:
        self.stopping = True
        if not await self.wait_idle(CANCELLED_REQUESTS_GRACE_SECONDS):
            logger.warning("%d requests still open at shutdown", self.in_flight)
        try:
            await pool.shutdown()
        except Exception:
            logger.exception("could not flush the bookkeeping at shutdown")
        try:
            await metrics.sharing.last_publish()  # the final counts, for the other workers
        except Exception:
            logger.exception("could not publish the metrics at shutdown")
        await _end_leftover_tasks()
        with contextlib.suppress(Exception):
            await http.close_all()  # upstream connections, closed rather than dropped


def accept_one_at_a_time() -> None:
    """Spread new connections over the workers sharing one listening socket.

    Twisted accepts up to a hundred waiting connections at once (more under load), and every
    idle worker wakes for the same burst: the first to run took them all. Thirty-two keep-alive
    clients opening at once all landed on one worker (1 to 6 of 32 on the other), so a second
    worker added no throughput (1.01 times one worker's, measured). Here a worker accepts one
    connection, then leaves the socket to the others for ``ACCEPT_PAUSE_SECONDS``: a burst
    alternates between the workers, and a busy worker, slower to come back, takes fewer."""
    from twisted.internet import reactor, tcp

    for reader in list(reactor.getReaders()):
        if isinstance(reader, tcp.Port):
            reader.doRead = functools.partial(_accept_one, reader, reactor)


def _accept_one(port, reactor) -> None:
    port.numberAccepts = 1  # Twisted raises it after a full batch; keep it at one
    before = port.sessionno
    type(port).doRead(port)
    if port.sessionno != before and port.connected:
        port.stopReading()
        reactor.callLater(ACCEPT_PAUSE_SECONDS, _resume_accepting, port)


def _resume_accepting(port) -> None:
    if port.connected and not serving.draining:
        port.startReading()


def freeze_long_lived() -> None:
    """Move every object alive now out of the collector's reach for good (after collecting
    what is garbage, so no garbage is frozen)."""
    gc.collect()
    gc.freeze()


def _background(coroutine) -> asyncio.Task:
    """A task in a context of its own, not the caller's (which may be a request's)."""
    return asyncio.get_event_loop().create_task(coroutine, context=contextvars.Context())


async def _end_leftover_tasks() -> None:
    """Cancel and await every task still pending (a request's disconnect listener waiting on
    its receive queue, say). Left pending when the loop stops, they are finalised by the
    interpreter's last garbage collection, which crashes CPython 3.11 here (SIGSEGV in
    asyncio.Queue.get, seen with a stream open at SIGTERM)."""
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    if leftover:
        await asyncio.wait(leftover, timeout=CANCELLED_REQUESTS_GRACE_SECONDS)


serving = ServingProcess()
