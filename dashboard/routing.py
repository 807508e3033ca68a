"""Websocket routes (proxysite.asgi routes websocket scopes here, with the session's user)."""

from __future__ import annotations

from django.urls import path

from dashboard.consumers import OverviewConsumer

websocket_urlpatterns = [
    path("admin/live/", OverviewConsumer.as_asgi()),
]
