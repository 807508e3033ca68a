"""/healthz says the process runs; /readyz says whether a load balancer should send it traffic."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError
from django.test import AsyncClient

from proxysite import views
from proxysite.lifecycle import serving

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_is_ready_when_the_database_answers():
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ready", "database": "ok"}


async def test_it_is_not_ready_when_the_database_fails(monkeypatch):
    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "_database_answers", refuse)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["status"] == "unavailable"
    assert body["database"] == "database unreachable (OperationalError)"
    assert (await AsyncClient().get("/healthz")).status_code == 200  # still alive


async def test_it_is_not_ready_while_the_worker_drains(monkeypatch):
    monkeypatch.setattr(serving, "draining", True)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    assert json.loads(response.content)["worker"] == "draining for a stop"
