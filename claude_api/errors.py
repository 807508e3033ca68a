"""Every error the proxy answers with, and the one place they become Anthropic envelopes.

ProxyError                      status, error_type, message, headers
├── InvalidRequest              400 invalid_request_error
├── AuthenticationFailed        401 authentication_error (+ x-should-retry: false)
├── PermissionDenied            403 permission_error
├── NotFound                    404 not_found_error
├── MethodNotAllowed            405 invalid_request_error
├── RequestTooLarge             413 request_too_large
├── AllCoolingDown              429 rate_limit_error (+ Retry-After)
├── LimitExceeded               429 rate_limit_error (+ Retry-After): a client key's limit or budget
├── NoCredentialAvailable       503 api_error
├── StoreUnreachable            503 api_error (+ Retry-After): the database is away, nothing cached
└── UpstreamError               the upstream's own status and envelope
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from claude_api.translate.common import error_type_for_status

STATUS_PHRASES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    408: "Request timeout",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable entity",
    429: "Rate limited",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
    529: "Overloaded",
}


class ProxyError(Exception):
    status = 500
    error_type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.headers: dict[str, str] = dict(headers or {})

    def envelope(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
        }
        if request_id:
            body["request_id"] = request_id
        return body

    def body(self, request_id: str | None = None) -> bytes:
        return orjson.dumps(self.envelope(request_id))

    def response_headers(self) -> dict[str, str]:
        return dict(self.headers)


class InvalidRequest(ProxyError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(ProxyError):
    status = 401
    error_type = "authentication_error"

    def response_headers(self) -> dict[str, str]:
        # Without this Claude Code retries a 401 ten times over two minutes.
        return {**self.headers, "x-should-retry": "false"}


class PermissionDenied(ProxyError):
    status = 403
    error_type = "permission_error"


class NotFound(ProxyError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(ProxyError):
    status = 405
    error_type = "invalid_request_error"


class RequestTooLarge(ProxyError):
    status = 413
    error_type = "request_too_large"


class AllCoolingDown(ProxyError):
    status = 429
    error_type = "rate_limit_error"

    def __init__(self, model: str, seconds: float, reason: str = "") -> None:
        self.retry_after = max(1, math.ceil(seconds))
        because = f" ({reason})" if reason else ""
        super().__init__(
            f"All credentials for model {model} are cooling down{because}; the first frees up "
            f"in {self.retry_after} s.",
            headers={"retry-after": str(self.retry_after)},
        )


class LimitExceeded(ProxyError):
    """A client key's own limit or budget (accounts.limits); nothing was sent upstream."""

    status = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, limit: str, seconds: float) -> None:
        self.limit = limit
        self.retry_after = max(1, math.ceil(seconds))
        super().__init__(message, headers={"retry-after": str(self.retry_after)})


class NoCredentialAvailable(ProxyError):
    status = 503
    error_type = "api_error"


class StoreUnreachable(ProxyError):
    """The database does not answer and this worker has nothing cached to decide with (it has
    just started, or a client key it has never seen)."""

    status = 503
    error_type = "api_error"

    def __init__(self) -> None:
        super().__init__(
            "The proxy cannot reach its database right now; try again in a few seconds.",
            headers={"retry-after": "5"},
        )


class UpstreamError(ProxyError):
    """An upstream call that failed, carrying what the cooldown policy needs to classify it.

    ``status`` 0 means there was no HTTP answer (connection refused, timeout, dropped
    connection, empty stream); clients then see ``client_status`` (502/504).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        upstream_headers: dict[str, str] | None = None,
        code: str = "",
        retry_after: float | None = None,
        raw_body: bytes = b"",
    ) -> None:
        self.upstream_status = status
        client_status = status or (504 if error_type == "timeout_error" else 502)
        super().__init__(
            message,
            status=client_status,
            error_type=error_type or error_type_for_status(client_status),
        )
        self.upstream_headers = upstream_headers or {}
        self.code = code
        self.body_retry_after = retry_after
        self.raw_body = raw_body
        # Set once the cooldown policy classified it: the client's own request was at fault.
        self.request_fault = False

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        retry_after = self.upstream_headers.get("retry-after")
        if retry_after and self.status in (429, 503, 529):
            headers["retry-after"] = retry_after
        elif self.body_retry_after is not None and self.status == 429:
            headers["retry-after"] = str(max(1, math.ceil(self.body_retry_after)))
        return headers


ANTHROPIC_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "conflict_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    }
)


def envelope_from_upstream(status: int, body: bytes | str | None) -> tuple[str, str, str]:
    """(error type, message, code), the type always one Anthropic clients know."""
    error_type, message, code = _envelope_fields(status, body)
    if error_type not in ANTHROPIC_ERROR_TYPES:
        # OpenAI-style types (server_error, insufficient_quota, …): keep the wording, use the
        # status's type; the original survives in ``code`` when it had none.
        code = code or error_type
        error_type = error_type_for_status(status)
    return error_type, message, code


def _envelope_fields(status: int, body: bytes | str | None) -> tuple[str, str, str]:
    """(error type, message, code) from an Anthropic-, OpenAI- or Google-style error body.

    Falls back to the status when the body is not JSON or has no usable fields.
    """
    default_type = error_type_for_status(status)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    text = text.strip()
    try:
        data = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Google sometimes wraps the error object in a list
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code") or ""
            error_type = error.get("type")
            code = error.get("code") if isinstance(error.get("code"), str) else ""
            if not isinstance(error_type, str) or not error_type:
                error_type = default_type
            return error_type, str(message) or STATUS_PHRASES.get(status, "Upstream error"), code
        if isinstance(error, str) and error:
            return default_type, error, ""
        message = data.get("message") or data.get("detail")
        top_type = data.get("type")
        if isinstance(message, str) and message:
            error_type = (
                top_type
                if isinstance(top_type, str) and top_type not in ("", "error")
                else default_type
            )
            return error_type, message, ""
    if text and not text.startswith("<"):
        return default_type, text[:2000], ""
    return default_type, STATUS_PHRASES.get(status, f"Upstream returned HTTP {status}"), ""
