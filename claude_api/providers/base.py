"""The one small interface every upstream provider implements.

Given the client's request (already parsed), a route (credential + upstream model) and the
settings, a provider either
- ``send``s it and returns a complete Anthropic message (``Reply``), or
- opens a ``stream`` of Anthropic events (returned once the upstream answered 200), or
- ``count_tokens``,
raising ``UpstreamError`` for anything that went wrong upstream. Anthropic is the identity
translation; Gemini and OpenAI differ only in their translators.
"""

from __future__ import annotations

import gzip
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from accounts.pool import ProxyConfig, Route
from claude_api import http
from claude_api.errors import UpstreamError
from claude_api.request import ClientRequest
from claude_api.sse import SSEEvent, SSEParser
from claude_api.translate.common import ErrorInfo, TranslatedStreamError

GZIP_MAGIC = b"\x1f\x8b"
# Marks a count_tokens answer the proxy estimated locally instead of asking the upstream.
ESTIMATE_HEADER = "x-proxy-token-count"
# Never forwarded to the client even with passthrough_headers (hop-by-hop, framing, cookies,
# and other gateways' internals).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "content-length",
        "content-encoding",
        "content-type",
        "date",
        "server",
    }
)
GATEWAY_PREFIXES = ("x-litellm-", "helicone-", "x-portkey-", "cf-aig-", "x-kong-", "x-bt-")


@dataclass(slots=True)
class UpstreamCall:
    request: ClientRequest
    route: Route
    config: ProxyConfig
    # Trace steps the provider took within this attempt ({"outcome", "status", "reason"}),
    # which the dispatch adds to the routing trace.
    notes: list[dict[str, Any]] = field(default_factory=list)
    # The version of the account token this call sent (OAuth accounts), so that a 401 refreshes
    # only if no other worker has replaced that token already.
    token_version: int | None = None

    @property
    def credential(self):
        return self.route.credential

    @property
    def upstream_model(self) -> str:
        return self.route.upstream_model


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    upstream_headers: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)


class EventStream:
    """Anthropic events from an upstream, iterated once; ``aclose`` releases the connection.

    ``aclose`` closes the response itself as well as the generator: a generator that was never
    started would not run its ``finally``.
    """

    def __init__(
        self,
        events: AsyncIterator[SSEEvent],
        response: httpx.Response,
    ) -> None:
        self._events = events
        self._response = response
        self.upstream_headers = lower_headers(response)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SSEEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._response.aclose()


class Provider(ABC):
    name: str

    @abstractmethod
    async def send(self, call: UpstreamCall) -> Reply: ...

    @abstractmethod
    async def stream(self, call: UpstreamCall) -> EventStream: ...

    @abstractmethod
    async def count_tokens(self, call: UpstreamCall) -> Reply: ...


def lower_headers(response: httpx.Response) -> dict[str, str]:
    return {key.lower(): value for key, value in response.headers.items()}


def passthrough_headers(headers: dict[str, str]) -> dict[str, str]:
    """The upstream headers a client may see (only with the passthrough_headers setting)."""
    return {
        key: value
        for key, value in headers.items()
        if key not in HOP_BY_HOP
        and not key.startswith(GATEWAY_PREFIXES)
        and not key.startswith("access-control-")
    }


def decode_body(body: bytes) -> bytes:
    """Some upstreams gzip without saying so (no Content-Encoding): sniff the magic bytes."""
    if body[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            return body
    return body


def connection_error(exc: httpx.HTTPError, label: str) -> UpstreamError:
    """A failure with no HTTP answer. The message names the error class, never a URL or key."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(
            f"The upstream ({label}) did not answer in time ({type(exc).__name__}).",
            status=0,
            error_type="timeout_error",
        )
    return UpstreamError(
        f"Could not reach the upstream ({label}): {type(exc).__name__}.",
        status=0,
        error_type="api_error",
    )


async def post(
    call: UpstreamCall, url: str, *, headers: dict[str, str], content: bytes
) -> httpx.Response:
    """Send one request; return the response with its body unread. The caller closes it
    (``finally: await response.aclose()``), also on cancellation, so no connection outlives the
    client's request."""
    timeout = http.timeout_for(
        call.config.upstream_connect_timeout, call.config.upstream_read_timeout
    )
    try:
        return await http.send(
            call.credential.proxy_url,
            "POST",
            url,
            headers=headers,
            content=content,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise connection_error(exc, call.credential.label) from None


async def read_all(response: httpx.Response, label: str) -> bytes:
    """Read the whole body and close the response."""
    try:
        return decode_body(await response.aread())
    except httpx.HTTPError as exc:
        raise connection_error(exc, label) from None
    finally:
        await response.aclose()


def json_object(body: bytes, label: str) -> dict[str, Any]:
    """A 2xx body that must be a JSON object; anything else is the upstream's fault (502)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamError(
            f"The upstream ({label}) sent a response that is not a JSON object.",
            status=502,
            error_type="api_error",
        )
    return data


async def sse_events(response: httpx.Response, label: str) -> AsyncIterator[SSEEvent]:
    """Parse an upstream SSE body as it arrives; a dropped connection becomes UpstreamError."""
    parser = SSEParser()
    try:
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
    except httpx.HTTPError as exc:
        raise connection_error(exc, label) from None
    for event in parser.flush():
        yield event


ERROR_TYPE_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def dumps(value: Any) -> bytes:
    """orjson, falling back to the stdlib for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def error_from_info(info: ErrorInfo, headers: dict[str, str] | None = None) -> UpstreamError:
    """A translator's mapped upstream error, as the one exception the dispatch understands."""
    return UpstreamError(
        info.message,
        status=info.status,
        error_type=info.error_type,
        upstream_headers=headers or {},
        retry_after=info.retry_after,
        code=info.code,
    )


class StreamTranslator(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]: ...

    def finish(self) -> list[tuple[str, dict[str, Any]]]: ...


async def translated_events(
    response: httpx.Response, translator: StreamTranslator, label: str
) -> AsyncIterator[SSEEvent]:
    """Anthropic events from a Gemini / OpenAI-style stream of JSON ``data:`` chunks, translated
    as they arrive. ``[DONE]`` (OpenAI) ends it; so does the end of the body (Gemini sends none).
    An error object inside the stream becomes UpstreamError."""
    try:
        async for event in sse_events(response, label):
            data = event.data.strip()
            if not data:
                continue
            if data == b"[DONE]":
                break
            try:
                chunk: Any = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    f"The upstream ({label}) sent a stream chunk that is not JSON.",
                    status=502,
                    error_type="api_error",
                ) from None
            if isinstance(chunk, list):  # Google sometimes wraps a bare error object in a list
                chunk = chunk[0] if chunk and isinstance(chunk[0], dict) else {}
            if not isinstance(chunk, dict):
                continue
            if event.name == "error" and "error" not in chunk:
                chunk = {"error": chunk}
            for name, payload in translator.feed(chunk):
                yield SSEEvent(name, dumps(payload))
        for name, payload in translator.finish():
            yield SSEEvent(name, dumps(payload))
    except TranslatedStreamError as exc:
        raise error_from_info(exc.info) from None
