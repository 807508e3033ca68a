"""The few endpoints outside the Claude API: the root (Claude Code sends HEAD / at start-up),
a liveness and a readiness check for load balancers (no auth), and the server's Prometheus
metrics.

``/healthz`` answers while the process runs. ``/readyz`` answers 503 while this worker should
get no new traffic: its database (or its Redis, when configured) does not answer within
``READY_CHECK_SECONDS``, or it is draining for a stop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts import versions
from claude_api import metrics
from proxysite.lifecycle import serving

logger = logging.getLogger(__name__)

READY_CHECK_SECONDS = 2.0
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


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _problem(check, name: str) -> str | None:
    try:
        await asyncio.wait_for(check, READY_CHECK_SECONDS)
    except TimeoutError:
        return f"{name} did not answer within {READY_CHECK_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the type says why
        return f"{name} unreachable ({type(exc).__name__})"
    return None


async def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": _problem(database_sync_to_async(_database_answers)(), "database")}
    if versions.redis_configured():
        checks["redis"] = _problem(versions.ping(), "redis")
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    problems = {name: problem for name, problem in results.items() if problem}
    if serving.draining:
        problems["worker"] = "draining for a stop"
    status = 503 if problems else 200
    body = {"status": "unavailable" if problems else "ready", **{k: "ok" for k in results}}
    body.update(problems)
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type="application/json")
    return JsonResponse(body, status=status)


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
    try:
        text = await metrics.exposition()
    except OSError:
        # Without the other workers' counts the totals would drop: fail the scrape instead
        # (Prometheus records it as down) rather than report a counter going down.
        logger.exception("could not add up the workers' metrics")
        return _error(503, "api_error", "The other workers' metrics could not be read.")
    return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")


def _error(status: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"type": "error", "error": {"type": error_type, "message": message}}, status=status
    )
