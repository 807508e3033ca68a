"""The admin site, with an overview as its front page.

``/admin/`` shows traffic over a period (requests, errors, tokens, cost, latency; split by
client key, credential or model: dashboard.overview) and the pool's state, kept live over a
websocket (dashboard.live). The stock list of models stays below it, and on its own page at
``/admin/models/``. What a user sees follows their permissions: the traffic needs "view usage
record", the pool "view credential"; a staff user with neither sees the list of models only.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse

from dashboard import overview, periods, pool_state

USAGE_PERMISSION = "accounts.view_usagerecord"


class ProxyAdminSite(admin.AdminSite):
    def get_urls(self) -> list:
        return [
            path("models/", self.admin_view(self.models_index), name="models"),
            *super().get_urls(),
        ]

    def index(self, request: HttpRequest, extra_context: dict | None = None):
        user = request.user
        context = {
            **self.each_context(request),
            "title": "Overview",
            "subtitle": None,
            "app_list": self.get_app_list(request),
            **(extra_context or {}),
        }
        if user.has_perm(USAGE_PERMISSION):
            period = periods.period(request.GET.get("period"))
            split = periods.split(request.GET.get("split"))
            context["overview"] = overview.build(period, split)
            context["period_choices"] = [(p.key, p.label) for p in periods.PERIODS.values()]
            context["split_choices"] = [(k, label) for k, (label, _) in periods.SPLITS.items()]
            context["breakdowns"] = [
                (by, title, context["overview"]["breakdown"][by])
                for by, (_, title) in overview.BREAKDOWNS.items()
            ]
        if user.has_perm(pool_state.PERMISSION):
            context["pool"] = pool_state.build()
            context["live_url"] = reverse("admin:index", current_app=self.name) + "live/"
        request.current_app = self.name
        return TemplateResponse(request, "admin/dashboard/overview.html", context)

    def models_index(self, request: HttpRequest):
        """The stock front page: every app and model this user may see."""
        return super().index(request)
