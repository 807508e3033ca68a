"""The shared upstream HTTP clients: one per event loop and outbound proxy, pooled connections.

Direct connections use the aiohttp transport behind httpx's API (about a third of the per-request
cost of httpx's default transport, see docs/performance-notes.md); proxied ones use httpx's own
transport, which also speaks SOCKS. Timeouts are explicit on every call (see ``timeout_for``).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

DIRECT = "direct"
_clients: dict[tuple[int, str], httpx.AsyncClient] = {}


def client_for(proxy_url: str = "") -> httpx.AsyncClient:
    """``proxy_url``: "" = honour HTTP(S)_PROXY from the environment, "direct" = never a proxy."""
    loop = asyncio.get_running_loop()
    key = (id(loop), proxy_url)
    client = _clients.get(key)
    if client is None or client.is_closed:
        client = _clients[key] = _build(proxy_url)
    return client


def _no_cookies() -> CookieJar:
    # One client serves every credential: a cookie one upstream account sets (Cloudflare's, say)
    # must never ride along on another account's requests. (A jar, not httpx.Cookies: httpx
    # copies the cookies of a Cookies object into a jar with the default policy.)
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _build(proxy_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS, max_keepalive_connections=100
    )
    if proxy_url and proxy_url != DIRECT:
        return httpx.AsyncClient(
            proxy=proxy_url, limits=limits, trust_env=False, cookies=_no_cookies()
        )
    # With trust_env, httpx reads HTTP(S)_PROXY / NO_PROXY once, here, and mounts its own proxy
    # transport for the URLs they cover; the rest go through aiohttp directly.
    use_environment = proxy_url != DIRECT

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=settings.UPSTREAM_MAX_CONNECTIONS, keepalive_timeout=limits.keepalive_expiry
        )
        # No cookies of aiohttp's own either; and no trust_env there, which would re-read the
        # proxy environment and ~/.netrc on every request (about a millisecond each).
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    transport = AiohttpTransport(limits=limits, client=session)
    return httpx.AsyncClient(
        transport=transport, limits=limits, trust_env=use_environment, cookies=_no_cookies()
    )


@lru_cache(maxsize=64)
def timeout_for(connect: float, read: float) -> httpx.Timeout:
    # read: the longest silence we accept from the upstream; generations can take minutes.
    return httpx.Timeout(connect=connect, read=read, write=60.0, pool=connect)


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """Upstream URLs repeat: parse each once (httpx's parser costs ~0.1 ms a call)."""
    return httpx.URL(url)


async def close_all() -> None:
    """Close this loop's clients (tests and shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _clients if k[0] == loop_id]:
        await _clients.pop(key).aclose()
