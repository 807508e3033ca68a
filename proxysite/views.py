"""The few endpoints outside the Claude API: the root (Claude Code sends HEAD / at start-up)
and a health check for load balancers (no auth)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


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
