from __future__ import annotations

from django.contrib import admin
from django.urls import path

from proxysite import views
from proxysite.api import api

urlpatterns = [
    path("v1/", api.urls),  # first: every API request resolves through this list
    path("", views.root),
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", views.metrics_view),
    path("admin/", admin.site.urls),
]
