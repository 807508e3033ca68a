"""The few endpoints outside the Claude API: the root (Claude Code sends HEAD / at start-up),
a health check for load balancers (no auth) and the worker's Prometheus metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from claude_api import metrics

LOOPBACK = frozenset({"127.0.0.1", "::1"})


async def root(request: HttpRequest) -> HttpResponse:
    if request.method == "HEAD":
        return HttpResponse(status=200, content_type="application/json")
    return JsonResponse(
        {"name": "claude-proxy", "message": "Claude Messages API proxy", "api": "/v1/messages"}
    )


async def healthz(request: HttpRequest) -> HttpResponse:
    if request.method == "HEAD":
        return HttpResponse(status=200, content_type="application/json")
    return JsonResponse({"status": "ok"})


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """With METRICS_TOKEN set: for ``Authorization: Bearer <token>`` from anywhere. Without:
    for loopback clients only (a scraper on the same machine)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip(), token):
            return _error(
                401, "authentication_error", "Send Authorization: Bearer <METRICS_TOKEN>."
            )
    elif request.META.get("REMOTE_ADDR") not in LOOPBACK:
        return _error(
            403,
            "permission_error",
            "Metrics are served to loopback only unless METRICS_TOKEN is set.",
        )
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _error(status: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"type": "error", "error": {"type": error_type, "message": message}}, status=status
    )
