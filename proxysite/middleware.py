"""Request ids on every response, and Anthropic envelopes instead of Django's HTML errors."""

from __future__ import annotations

import secrets

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from claude_api.errors import MethodNotAllowed, NotFound, ProxyError
from claude_api.streaming import ATTEMPTS_HEADER

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
