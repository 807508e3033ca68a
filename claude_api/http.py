"""Sending requests upstream: httpx transports, one per event loop and outbound proxy.

Direct connections use the aiohttp transport (httpx-aiohttp: about a third of the per-request
cost of httpx's default transport, see docs/performance-notes.md); proxied ones use httpx's own
transport, which also speaks SOCKS. Requests go straight to the transport
(``handle_async_request``): the AsyncClient layers on top (auth flows, redirects, cookie jar,
event hooks) do nothing a proxy wants (it never follows an upstream redirect, and a cookie one
account's upstream sets must never ride along on another account's request) and cost about
0.25 ms a request here. Timeouts are explicit on every call (see ``timeout_for``).
"""

from __future__ import annotations

import asyncio
import urllib.request
from functools import lru_cache

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

DIRECT = "direct"
_transports: dict[tuple[int, str], httpx.AsyncBaseTransport] = {}


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS, max_keepalive_connections=100
    )


def _direct_transport() -> httpx.AsyncBaseTransport:
    limits = _limits()

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=settings.UPSTREAM_MAX_CONNECTIONS, keepalive_timeout=limits.keepalive_expiry
        )
        # No cookie jar, and no trust_env (which re-reads the proxy environment and ~/.netrc on
        # every request): the environment's proxies are resolved once, in transport_for().
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(limits=limits, client=session)


def _proxy_transport(proxy_url: str) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(proxy=proxy_url, limits=_limits())


def transport_for(proxy_url: str, url: httpx.URL) -> httpx.AsyncBaseTransport:
    """``proxy_url``: a proxy URL; "direct" = never a proxy; "" = what the environment says
    (HTTP(S)_PROXY / NO_PROXY) for this URL."""
    if not proxy_url:
        proxy_url = environment_proxy(url.scheme, url.host) or DIRECT
    loop_id = id(asyncio.get_running_loop())
    transport = _transports.get((loop_id, proxy_url))
    if transport is None:
        transport = _direct_transport() if proxy_url == DIRECT else _proxy_transport(proxy_url)
        _transports[(loop_id, proxy_url)] = transport
    return transport


@lru_cache(maxsize=256)
def environment_proxy(scheme: str, host: str) -> str:
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return ""
    return proxies.get(scheme) or proxies.get("all") or ""


async def send(
    proxy_url: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes,
    timeout: httpx.Timeout,
) -> httpx.Response:
    """Send one request; the response's body is unread (the caller reads and closes it)."""
    target = parsed_url(url)
    request = httpx.Request(
        method, target, headers=headers, content=content, extensions={"timeout": timeout.as_dict()}
    )
    return await transport_for(proxy_url, target).handle_async_request(request)


@lru_cache(maxsize=64)
def timeout_for(connect: float, read: float) -> httpx.Timeout:
    # read: the longest silence we accept from the upstream; generations can take minutes.
    return httpx.Timeout(connect=connect, read=read, write=60.0, pool=connect)


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """Upstream URLs repeat: parse each once (httpx's parser costs ~0.1 ms a call)."""
    return httpx.URL(url)


async def close_all() -> None:
    """Close this loop's transports (tests and shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _transports if k[0] == loop_id]:
        await _transports.pop(key).aclose()
