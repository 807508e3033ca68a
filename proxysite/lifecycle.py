"""What a serving worker runs beside its requests: the counters' flush timer, and the last flush
when the server shuts down.

Daphne (Twisted) handles SIGTERM and SIGINT by stopping its reactor; before it stops, its
"before shutdown" triggers run and may hold the stop with a Deferred. Daphne's own trigger
cancels the requests still open. Ours waits for those requests to end (their ``finally``
blocks write routing traces and count outcomes), then flushes the pool's bookkeeping, so a
clean shutdown loses no counter. Daphne serves no ASGI lifespan events, hence the reactor hook.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys

from accounts.pool import pool

logger = logging.getLogger(__name__)

# How long shutdown waits for cancelled requests to finish their bookkeeping.
REQUESTS_GRACE_SECONDS = 5.0


class ServingProcess:
    """Requests in flight in this process, and the services started with the first one."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.started = False
        # Set when shutdown begins: requests arriving after that are refused (503), since their
        # outcome could land after the last flush.
        self.stopping = False
        self._idle: asyncio.Event | None = None

    def request_started(self) -> None:
        if not self.started:
            self.start()
        self.in_flight += 1

    def request_ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    def start(self) -> None:
        """Called on the server's event loop (with the first request)."""
        self.started = True
        pool.start_flush_timer()
        self._flush_at_shutdown()

    def _flush_at_shutdown(self) -> None:
        if "twisted.internet.reactor" not in sys.modules:
            return  # not served by daphne: nothing to hook
        from twisted.internet import defer, reactor

        def trigger() -> defer.Deferred:
            # A context of its own: Twisted runs this from its SIGTERM handler, that is inside
            # whatever the loop was running at that instant, and a copy of that context can
            # carry asgiref's "a thread-sensitive call is running here" flag, which made every
            # database call of the shutdown fail ("would deadlock") now and then.
            task = asyncio.get_running_loop().create_task(
                self.shutdown(), context=contextvars.Context()
            )
            return defer.Deferred.fromFuture(task)

        reactor.addSystemEventTrigger("before", "shutdown", trigger)

    async def shutdown(self) -> None:
        self.stopping = True
        if self.in_flight > 0:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), REQUESTS_GRACE_SECONDS)
            except TimeoutError:
                logger.warning("%d requests still open at shutdown", self.in_flight)
        try:
            await pool.shutdown()
        except Exception:
            logger.exception("could not flush the bookkeeping at shutdown")


serving = ServingProcess()
