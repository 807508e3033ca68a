"""Request ids on every response, and Anthropic envelopes instead of Django's HTML errors."""

from __future__ import annotations

import logging
import secrets
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

from accounts import versions
from accounts.store import DatabaseFailure
from claude_api.errors import MethodNotAllowed, NotFound, ProxyError
from claude_api.streaming import ATTEMPTS_HEADER

logger = logging.getLogger(__name__)

# Paths whose errors stay Django's own (the admin's pages, static files).
HTML_PREFIXES = ("/admin/", "/static/")


class RequestIdMiddleware:
    """Gives each request an id (``request-id`` header, and in error bodies), and turns Django's
    own 404/405/500 answers outside the admin into JSON envelopes."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        request.request_id = new_request_id()
        return self._finish(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest):
        request.request_id = new_request_id()
        return self._finish(request, await self.get_response(request))

    def _finish(self, request: HttpRequest, response: HttpResponse):
        if response.status_code in (404, 405, 500) and not _is_json(response):
            if not request.path.startswith(HTML_PREFIXES):
                response = _envelope(request, response.status_code)
        response["request-id"] = request.request_id
        if not response.streaming and "Content-Length" not in response:
            # Without it daphne sends the body chunked; with it a client knows the size upfront.
            response["Content-Length"] = str(len(response.content))
        if request.path.startswith("/v1/") and ATTEMPTS_HEADER not in response:
            # Every API response says how many upstream calls it took; errors the proxy
            # answered by itself (auth, validation) took none.
            response[ATTEMPTS_HEADER] = "0"
        return response


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith(("application/json", "text/event-stream"))


def _envelope(request: HttpRequest, status: int) -> HttpResponse:
    if status == 404:
        error: ProxyError = NotFound(f"Not found: {request.method} {request.path}")
    elif status == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}")
    else:
        error = ProxyError("The proxy hit an internal error.")
    return HttpResponse(
        error.body(request.request_id), status=status, content_type="application/json"
    )


class StoreStatusMiddleware:
    """The admin says when a store is away instead of failing with a server error: a 503 page
    naming the database when it does not answer, a warning on every page while Redis does not
    (workers then poll the database for changes, which still works).

    Async and sync capable, with hooks of the same kind, so Django never wraps it in a
    thread-sensitive adapter (the request would then run inside one, and so would the
    bookkeeping tasks it spawns)."""

    sync_capable = True
    async_capable = True
    REDIS_CHECK_SECONDS = 5.0

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            self.process_view = self._process_view_async
            self.process_exception = self._process_exception_async
        self._redis_checked_at = 0.0
        self._redis_problem = ""

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view, args, kwargs):
        if self._redis_check_due(request):
            self._note_redis(_ping_error(versions.ping_sync))
        self._warn(request)
        return None

    async def _process_view_async(self, request: HttpRequest, view, args, kwargs):
        if self._redis_check_due(request):
            try:
                await versions.ping()
            except Exception as exc:  # noqa: BLE001 - any failure: Redis is away
                self._note_redis(type(exc).__name__)
            else:
                self._note_redis("")
        self._warn(request)
        return None

    def process_exception(self, request: HttpRequest, exc: Exception):
        return _database_unreachable_page(request, exc)

    async def _process_exception_async(self, request: HttpRequest, exc: Exception):
        return _database_unreachable_page(request, exc)

    def _redis_check_due(self, request: HttpRequest) -> bool:
        if not (request.path.startswith("/admin/") and settings.REDIS_URL):
            return False
        now = time.monotonic()
        if now - self._redis_checked_at < self.REDIS_CHECK_SECONDS:
            return False
        self._redis_checked_at = now
        return True

    def _note_redis(self, error: str) -> None:
        self._redis_problem = (
            f"Redis is unreachable ({error}): workers poll the database for changes until it "
            "is back."
            if error
            else ""
        )

    def _warn(self, request: HttpRequest) -> None:
        if self._redis_problem and request.path.startswith("/admin/") and settings.REDIS_URL:
            messages.warning(request, self._redis_problem)


def _ping_error(ping) -> str:
    try:
        ping()
    except Exception as exc:  # noqa: BLE001 - any failure: Redis is away
        return type(exc).__name__
    return ""


def _database_unreachable_page(request: HttpRequest, exc: Exception) -> HttpResponse | None:
    if not isinstance(exc, DatabaseFailure) or not request.path.startswith("/admin/"):
        return None
    logger.warning("admin page without a database: %s", type(exc).__name__)
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return HttpResponse(
        "<!doctype html><title>Database unreachable</title>"
        "<h1>The database is unreachable</h1>"
        f"<p>{escape(type(exc).__name__)}: {escape(first_line)}</p>"
        "<p>The API keeps serving from each worker's memory; cooldowns and counters are "
        "written when the database is back. This page works again then.</p>",
        status=503,
        content_type="text/html; charset=utf-8",
        headers={"Retry-After": "5"},
    )
