"""Turning a dispatch into the HTTP response: SSE relay, non-stream replies, keep-alives.

Streams: no response headers until the upstream's first event has arrived (so a failure before
that is a real HTTP status and may fail over); then every event is written as it arrives; a
failure after that ends the stream with ``event: error``, never a silent close.

Non-stream with ``nonstream_keepalive_interval`` N: if the answer is not there after N seconds,
commit 200 and write a newline every N seconds until it is. Clients cannot handle an error body
under 200, so from then on the dispatch keeps failing over and writes an error envelope only when
nothing is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from django.http import HttpResponse, StreamingHttpResponse

from accounts.prices import Tokens
from claude_api import usage
from claude_api.dispatch import Dispatch, OpenedStream
from claude_api.errors import ProxyError, UpstreamError
from claude_api.providers.base import Reply, passthrough_headers
from claude_api.request import MESSAGES
from claude_api.sse import KEEPALIVE_COMMENT, encode_event

logger = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-proxy-attempts"
JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
# The ledger's error type for a request the client abandoned (status 499).
CLIENT_CLOSED = "client_closed"


async def reply_response(dispatch: Dispatch) -> HttpResponse | StreamingHttpResponse:
    """A non-streaming message or token count, with the keep-alive when it is configured."""
    interval = dispatch.config.nonstream_keepalive_interval
    if interval <= 0 or dispatch.request.endpoint != MESSAGES:
        return await _answered(dispatch, dispatch.send())

    task = asyncio.ensure_future(dispatch.send())
    try:
        done, _ = await asyncio.wait({task}, timeout=interval)
    except asyncio.CancelledError:
        task.cancel()
        dispatch.finish(499, error_type=CLIENT_CLOSED)
        raise
    if done:
        return await _answered(dispatch, task)
    response = StreamingHttpResponse(
        _keepalive_body(dispatch, task, interval), status=200, content_type=JSON
    )
    response[ATTEMPTS_HEADER] = str(dispatch.attempts)
    return response


async def _keepalive_body(
    dispatch: Dispatch, task: asyncio.Future, interval: float
) -> AsyncIterator[bytes]:
    status, error_type, tokens = 200, "", None
    try:
        dispatch.ttfb = time.monotonic() - dispatch.started
        yield b"\n"  # the first interval has already passed
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                break
            yield b"\n"
        try:
            reply = task.result()
        except ProxyError as exc:
            status, error_type = exc.status, exc.error_type
            yield exc.body(dispatch.request.request_id)
        else:
            status, tokens = reply.status, _reply_tokens(dispatch, reply)
            yield reply.body
    except asyncio.CancelledError:
        status, error_type = 499, CLIENT_CLOSED
        raise
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        dispatch.finish(status, error_type=error_type, tokens=tokens)


async def _answered(dispatch: Dispatch, pending: Awaitable[Reply]) -> HttpResponse:
    """The response for a reply that arrives before anything was committed to the client."""
    try:
        reply = await pending
    except ProxyError as exc:
        _failed(dispatch, exc)
        raise
    except asyncio.CancelledError:
        dispatch.finish(499, error_type=CLIENT_CLOSED)
        raise
    dispatch.ttfb = time.monotonic() - dispatch.started
    dispatch.finish(reply.status, tokens=_reply_tokens(dispatch, reply))
    return _reply(dispatch, reply)


def _reply_tokens(dispatch: Dispatch, reply: Reply) -> Tokens | None:
    if dispatch.request.endpoint != MESSAGES or reply.status != 200:
        return None
    return usage.from_body(reply.body)


def _failed(dispatch: Dispatch, exc: ProxyError) -> None:
    """The request ends with an error response (rendered by the API's exception handler)."""
    exc.headers[ATTEMPTS_HEADER] = str(dispatch.attempts)
    dispatch.finish(exc.status, error_type=exc.error_type)


def _reply(dispatch: Dispatch, reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=JSON)
    if dispatch.config.passthrough_headers:
        for name, value in passthrough_headers(reply.upstream_headers).items():
            response[name] = value
    for name, value in reply.extra_headers.items():
        response[name] = value
    response[ATTEMPTS_HEADER] = str(dispatch.attempts)
    return response


async def stream_response(dispatch: Dispatch) -> StreamingHttpResponse:
    try:
        opened = await dispatch.open_stream()
    except ProxyError as exc:
        _failed(dispatch, exc)
        raise
    except asyncio.CancelledError:
        dispatch.finish(499, error_type=CLIENT_CLOSED)
        raise
    response = StreamingHttpResponse(_relay(dispatch, opened), content_type=SSE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    if dispatch.config.passthrough_headers:
        for name, value in passthrough_headers(opened.events.upstream_headers).items():
            if name not in response:
                response[name] = value
    response[ATTEMPTS_HEADER] = str(dispatch.attempts)
    return response


async def _relay(dispatch: Dispatch, opened: OpenedStream) -> AsyncIterator[bytes]:
    status, error_type = 200, ""
    seen = usage.StreamUsage()
    try:
        seen.observe(opened.first)
        dispatch.ttfb = time.monotonic() - dispatch.started
        yield opened.first.encode()
        interval = dispatch.config.stream_keepalive_seconds
        if interval > 0:
            async for chunk in _with_keepalive(opened, interval, seen):
                yield chunk
        else:
            async for event in opened.events:
                seen.observe(event)
                yield event.encode()
    except UpstreamError as exc:
        # Headers are out: the error goes in-band, and it counts against the credential.
        status, error_type = exc.status, exc.error_type
        await dispatch.failed(opened.route, exc, after_first_byte=True)
        yield encode_event("error", exc.envelope(dispatch.request.request_id))
    except asyncio.CancelledError:
        # The client went away: never held against the credential.
        status, error_type = 499, CLIENT_CLOSED
        raise
    except Exception:
        logger.exception("relaying a stream failed")
        status, error_type = 500, "api_error"
        error = ProxyError("The proxy failed while relaying the stream.")
        yield encode_event("error", error.envelope(dispatch.request.request_id))
    else:
        await dispatch.succeeded(opened.route)
    finally:
        await opened.events.aclose()
        # Cut off: ended before the final message_delta; the ledger keeps the tokens seen so far.
        dispatch.finish(
            status,
            error_type=error_type,
            tokens=seen.tokens,
            cut_off=status != 200 or not seen.finished,
        )


async def _with_keepalive(
    opened: OpenedStream, interval: float, seen: usage.StreamUsage
) -> AsyncIterator[bytes]:
    """Events as they come, and ``: keep-alive`` after every ``interval`` seconds of silence."""
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(opened.events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEPALIVE_COMMENT
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            seen.observe(event)
            yield event.encode()
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
