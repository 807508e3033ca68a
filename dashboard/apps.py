from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ProxyAdminConfig(admin_apps.AdminConfig):
    """Django's admin, whose site (``admin.site``) has the overview as its front page.
    Named in INSTALLED_APPS in place of "django.contrib.admin"."""

    default = False
    default_site = "dashboard.site.ProxyAdminSite"


class DashboardConfig(AppConfig):
    default = True
    name = "dashboard"
    verbose_name = "Overview"

    def ready(self) -> None:
        from dashboard import live  # noqa: F401  (listens for pool changes: dashboard.live)
