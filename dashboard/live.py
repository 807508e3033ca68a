"""The overview's live view: how a change in one worker reaches the pages open on every worker.

Two parts, both per process, talking through one group of the channel layer (Redis with
REDIS_URL, so across workers and machines; in memory otherwise, so within one worker):

- ``Publisher``, in every serving worker. When this worker commits a change to the pool's
  shared state (a cooldown applied or cleared, a config edit: every version bump; counters
  flushed), ``accounts.notices`` tells it, from whatever thread ran the write; it sends
  ``pool.changed`` to the group at once. Twice a second it looks at this worker's in-flight
  count (``serving.in_flight``, kept by the server for its drain) and sends it when it changed,
  and every ``HEARTBEAT_SECONDS`` anyway so a page learns of idle workers. Nothing is added to
  a request's path: the count already exists and the publisher only reads it.
- ``Hub``, in a worker with pages open (its consumers, dashboard.consumers, are the group's
  members). However many pages it serves and however many workers announce changes, it reads
  the pool's state from the database once per change, at most once a second, and sends that
  to each of its pages; it also re-reads every ``RESYNC_SECONDS`` (a cooldown's end, a change
  made by a process without a publisher) and checks that each page's login still holds. With
  the in-memory layer, other workers' announcements cannot reach it: it then reads the change
  counters (accounts.versions, one row) every ``VERSION_CHECK_SECONDS`` instead, so another
  worker's cooldown still shows within seconds (its in-flight count does not: that needs Redis).

A process without a publisher (a management command such as ``reset_quota``) sends its notice
straight to the group when the layer is Redis; with the in-memory layer nobody else could hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import sys
import time
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from accounts import notices, versions
from dashboard import pool_state

logger = logging.getLogger(__name__)

GROUP = "claude-proxy.overview"
TICK_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0
# A worker not heard from for this long is gone (stopped, crashed): pages drop it.
WORKER_TIMEOUT_SECONDS = 3 * HEARTBEAT_SECONDS
MIN_RELOAD_SECONDS = 1.0
RESYNC_SECONDS = 30.0
VERSION_CHECK_SECONDS = 2.0
ERROR_LOG_SECONDS = 60.0

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def worker_status() -> dict[str, Any]:
    """This worker's in-flight requests, as a group message (and as sent to a page)."""
    from proxysite.lifecycle import serving

    return {
        "type": "worker.status",
        "worker": WORKER_ID,
        "in_flight": max(0, serving.in_flight),
        "draining": serving.draining,
        "at": time.time(),
    }


class Publisher:
    """Tells the group what changed in this worker (see the module's docstring)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._changed = False
        self._sent: tuple[int, bool] | None = None
        self._sent_at = 0.0
        self._error_logged_at = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def install(self) -> None:
        """At import under daphne: start once the reactor (and so the event loop) runs."""
        if "twisted.internet.reactor" not in sys.modules:
            return
        from twisted.internet import reactor

        reactor.callWhenRunning(self.start)

    def start(self) -> None:
        """On the server's event loop (the loop, not the running one: daphne calls this before
        its loop runs, as it does the pool's flush timer)."""
        if self.running:
            return
        self._loop = asyncio.get_event_loop()
        self._wake = asyncio.Event()
        notices.unsubscribe(notice_from_outside)
        notices.subscribe(self.notice)
        self._task = self._loop.create_task(self._run(), context=contextvars.Context())

    async def stop(self) -> None:
        notices.subscribe(notice_from_outside)
        notices.unsubscribe(self.notice)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.__init__()

    def send_next(self) -> None:
        """Send this worker's status on the next tick whether or not it changed since the last
        one sent (a page just opened with a count read outside the ticks)."""
        self._sent = None

    def notice(self) -> None:
        """The pool's shared state changed (any thread; O(1), no I/O)."""
        loop = self._loop
        if loop is None or self._changed:
            # Not started, or a send is already due and will cover this change too.
            return
        self._changed = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is ending
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        layer = get_channel_layer()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()
            try:
                await self.publish(layer)
            except Exception:  # a bug here must not end the live view for the process
                logger.exception("live view: publishing failed")

    async def publish(self, layer) -> None:
        messages = []
        if self._changed:
            self._changed = False
            messages.append({"type": "pool.changed", "worker": WORKER_ID})
        status = worker_status()
        shown = (status["in_flight"], status["draining"])
        now = time.monotonic()
        if shown != self._sent or now - self._sent_at >= HEARTBEAT_SECONDS:
            self._sent, self._sent_at = shown, now
            messages.append(status)
        for message in messages:
            try:
                await layer.group_send(GROUP, message)
            except Exception as exc:  # noqa: BLE001 - the live view must never hurt serving
                if now - self._error_logged_at >= ERROR_LOG_SECONDS:
                    self._error_logged_at = now
                    logger.warning("live view: could not reach the channel layer: %r", exc)
                if message["type"] == "pool.changed":
                    self._changed = True  # try again on the next tick
                return


def notice_from_outside() -> None:
    """A change made in a process that runs no publisher (a management command)."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return
    try:
        async_to_sync(layer.group_send)(GROUP, {"type": "pool.changed", "worker": WORKER_ID})
    except Exception as exc:  # noqa: BLE001 - a command's write must not fail for the live view
        logger.warning("live view: could not announce a pool change: %r", exc)


class Viewer(Protocol):
    async def send_pool(self, state: dict[str, Any]) -> None: ...

    async def still_allowed(self) -> bool: ...

    async def end(self, code: int) -> None: ...


class Hub:
    """This process's open pages and what they were last sent (see the module's docstring)."""

    def __init__(self) -> None:
        self.viewers: set[Viewer] = set()
        self.workers: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Any] | None = None
        # The change counters as they were just before ``state`` was read.
        self.versions: tuple[int, int, int] | None = None
        self.loads = 0
        self._loaded_at = 0.0
        self._dirty = False
        self._reload: asyncio.Task | None = None
        self._resync: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None

    def join(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(
                self._resync_periodically(), context=contextvars.Context()
            )

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers and self._resync is not None:
            self._resync.cancel()
            self._resync = None

    async def current(self) -> dict[str, Any]:
        """The pool's state for a page that just opened: fresh unless read a moment ago."""
        if self.state is None or self._dirty or self._age() >= MIN_RELOAD_SECONDS:
            return await self._load()
        return self.state

    def changed(self) -> None:
        """A ``pool.changed`` from any worker: one reload for every page of this process."""
        self._dirty = True
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(
                self._reload_and_send(), context=contextvars.Context()
            )

    def heard(self, status: dict[str, Any]) -> None:
        self.workers[status["worker"]] = status
        cutoff = time.time() - WORKER_TIMEOUT_SECONDS
        for worker, seen in list(self.workers.items()):
            if seen["at"] < cutoff:
                del self.workers[worker]

    def known_workers(self) -> list[dict[str, Any]]:
        cutoff = time.time() - WORKER_TIMEOUT_SECONDS
        return [s for s in self.workers.values() if s["at"] >= cutoff]

    def _age(self) -> float:
        return time.monotonic() - self._loaded_at

    async def _load(self) -> dict[str, Any]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._dirty = False
            self.versions, self.state = await database_sync_to_async(_read_pool)()
            self._loaded_at = time.monotonic()
            self.loads += 1
            return self.state

    async def _reload_and_send(self) -> None:
        while self._dirty and self.viewers:
            wait = MIN_RELOAD_SECONDS - self._age()
            if wait > 0:
                await asyncio.sleep(wait)  # changes arriving meanwhile share this reload
            try:
                state = await self._load()
            except Exception:
                logger.exception("live view: could not read the pool's state")
                return
            viewers = list(self.viewers)
            await asyncio.gather(*(v.send_pool(state) for v in viewers), return_exceptions=True)

    async def _resync_periodically(self) -> None:
        shared = not isinstance(get_channel_layer(), InMemoryChannelLayer)
        resynced = time.monotonic()
        while self.viewers:
            await asyncio.sleep(RESYNC_SECONDS if shared else VERSION_CHECK_SECONDS)
            if not shared and not self._dirty:
                try:
                    current = await database_sync_to_async(versions.read_from_database)()
                except Exception:  # noqa: BLE001 - the database is away: look again later
                    current = self.versions
                if current != self.versions:
                    self.changed()  # another worker changed the pool since the last read
            if time.monotonic() - resynced < RESYNC_SECONDS:
                continue
            resynced = time.monotonic()
            for viewer in list(self.viewers):
                try:
                    allowed = await viewer.still_allowed()
                except Exception:  # noqa: BLE001 - the database is away: keep the page, try later
                    continue
                if not allowed:
                    await viewer.end(4401)
            self.changed()

    def reset(self) -> None:
        for task in (self._reload, self._resync):
            if task is not None:
                task.cancel()
        self.__init__()


def _read_pool() -> tuple[tuple[int, int, int], dict[str, Any]]:
    """The counters first: a change committed after them is seen on the next comparison."""
    return versions.read_from_database(), pool_state.build()


publisher = Publisher()
hub = Hub()
notices.subscribe(notice_from_outside)
