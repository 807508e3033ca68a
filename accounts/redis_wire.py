"""A lean Redis connection for the one call on the request path: a key's limit admission.

redis-py's asyncio client spends about 90 µs of Python per command here (a connection checked
out of a pool and back, retry and observability hooks, its parser), and its pipelines as much
again; a key with limits paid that twice a request (admission, then release). This speaks RESP2
directly on one connection per event loop, pipelining every caller's commands on it in order
(all the commands of one turn of the event loop in one write): about a third of the CPU, and
under load one system call for many requests' admissions.

What it supports is what REDIS_URL may say: ``redis://`` and ``rediss://`` (TLS), a user and
password, the database as the path (``/2``) or ``?db=2``, ``?ssl_cert_reqs=none``. Anything
else (a unix socket URL) makes ``for_url`` return None and the caller uses redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from urllib.parse import parse_qs, unquote, urlsplit

Reply = bytes | int | list | None

DEFAULT_TIMEOUT = 2.0


class ReplyError(Exception):
    """Redis answered ``-ERR …`` (or ``-NOSCRIPT …``) to one command."""


class WireError(ConnectionError):
    """The connection failed, timed out or closed: nothing is known of the pending commands."""


def encode(command: tuple) -> bytes:
    """A RESP array of bulk strings (str, bytes or int arguments)."""
    out = [b"*%d\r\n" % len(command)]
    append = out.append
    for arg in command:
        kind = type(arg)  # exact types: the admission's 20 arguments cost 4 us, not 8
        if kind is str:
            data = arg.encode()
        elif kind is int:
            data = b"%d" % arg
        elif kind is bytes:
            data = arg
        else:
            raise TypeError(f"cannot send a {kind.__name__} to Redis")
        append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Reply | ReplyError:
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise WireError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return ReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        return (await reader.readexactly(length + 2))[:-2]
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [await read_reply(reader) for _ in range(count)]
    raise WireError(f"unexpected reply from Redis: {line[:40]!r}")


class RedisWire:
    """One pipelined connection, opened on first use and again after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password, self.tls = username, password, tls
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._waiting: deque[asyncio.Future] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._connecting = asyncio.Lock()

    @classmethod
    def for_url(cls, url: str, timeout: float = DEFAULT_TIMEOUT) -> RedisWire | None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            return None
        query = parse_qs(parts.query)
        db = query.get("db", [""])[0] or parts.path.lstrip("/") or "0"
        tls = None
        if parts.scheme == "rediss":
            tls = ssl.create_default_context()
            if query.get("ssl_cert_reqs", [""])[0].lower() in ("none", "cert_none"):
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            db=int(db),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            timeout=timeout,
        )

    async def execute(self, *commands: tuple) -> list[Reply | ReplyError]:
        """Send ``commands`` in one write and return their replies in order (a command that
        Redis refused has a ``ReplyError`` in its place). Raises ``WireError`` when the
        connection fails or Redis does not answer within the timeout."""
        writer = self._writer
        if writer is None or writer.is_closing():
            writer = await self._connect()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._waiting.extend(futures)
        # Written once this turn of the event loop ends, with every other caller's commands of
        # the same turn: under load the admissions of many requests share one write and one
        # read on each side, instead of a system call and a wake-up of Redis each.
        self._outgoing.extend(encode(command) for command in commands)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        try:
            async with asyncio.timeout(self.timeout):
                if len(futures) == 1:
                    return [await futures[0]]
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            # Replies still owed cannot be told apart from the next ones: start afresh.
            self._fail(WireError(f"Redis did not answer within {self.timeout:g} s"))
            raise WireError(f"Redis did not answer within {self.timeout:g} s") from None

    def _flush(self) -> None:
        self._flush_scheduled = False
        data, self._outgoing = b"".join(self._outgoing), []
        if data and self._writer is not None:
            self._writer.write(data)

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, ssl=self.tls), self.timeout
                )
            except (OSError, TimeoutError) as exc:
                raise WireError(f"cannot reach Redis: {type(exc).__name__}") from None
            hello: list[tuple] = []
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                hello.append(("AUTH", *auth))
            if self.db:
                hello.append(("SELECT", self.db))
            try:
                if hello:
                    writer.write(b"".join(encode(command) for command in hello))
                    for _ in hello:
                        reply = await asyncio.wait_for(read_reply(reader), self.timeout)
                        if isinstance(reply, ReplyError):
                            raise WireError(f"Redis refused the connection's set-up: {reply}")
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                writer.close()
                raise WireError(f"cannot reach Redis: {type(exc).__name__}") from None
            except WireError:
                writer.close()
                raise
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
            return writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                if not self._waiting:
                    raise WireError("Redis sent a reply nobody asked for")
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except asyncio.CancelledError:
            self._fail(WireError("the connection was closed"))
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError, WireError) as exc:
            self._fail(exc if isinstance(exc, WireError) else WireError(type(exc).__name__))

    def _fail(self, error: WireError) -> None:
        self._outgoing = []
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        task = self._reader_task
        self._fail(WireError("the connection was closed"))
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


_per_loop: dict[tuple[int, str], RedisWire | None] = {}


def for_loop(url: str) -> RedisWire | None:
    """This event loop's connection for ``url`` (a connection belongs to the loop that opened
    it), or None when the URL needs redis-py."""
    key = (id(asyncio.get_running_loop()), url)
    if key not in _per_loop:
        _per_loop.clear()
        _per_loop[key] = RedisWire.for_url(url)
    return _per_loop[key]


async def close_for_loop() -> None:
    """Close the connection (tests, each of which runs its own event loop)."""
    wires = [wire for wire in _per_loop.values() if wire is not None]
    _per_loop.clear()
    for wire in wires:
        await wire.close()
