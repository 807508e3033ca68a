"""The one NinjaAPI, and the exception handlers that make every error an Anthropic envelope."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.store import StoreUnavailable
from claude_api.api import router
from claude_api.errors import AuthenticationFailed, InvalidRequest, ProxyError, StoreUnreachable

logger = logging.getLogger("claude_api")

api = NinjaAPI(
    title="Claude API proxy",
    urls_namespace="claude",
    docs_url=None,
    openapi_url=None,
)
api.add_router("/", router)


def error_response(request: HttpRequest, exc: ProxyError) -> HttpResponse:
    response = HttpResponse(
        exc.body(getattr(request, "request_id", None)),
        status=exc.status,
        content_type="application/json",
    )
    for name, value in exc.response_headers().items():
        response[name] = value
    return response


@api.exception_handler(ProxyError)
def proxy_error(request: HttpRequest, exc: ProxyError) -> HttpResponse:
    return error_response(request, exc)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return error_response(request, InvalidRequest(f"{where}: {first.get('msg', 'invalid')}"))


@api.exception_handler(AuthenticationError)
def authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(request, AuthenticationFailed("Invalid API key."))


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(request, ProxyError(str(exc), status=exc.status_code))


@api.exception_handler(StoreUnavailable)
def store_unavailable(request: HttpRequest, exc: StoreUnavailable) -> HttpResponse:
    return error_response(request, StoreUnreachable())


@api.exception_handler(Exception)
def unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled error on %s", request.path)
    return error_response(request, ProxyError("The proxy hit an internal error."))
