"""ASGI entry point: ``daphne proxysite.asgi:application`` serves the API and the admin.

API paths go to a lean handler (see proxysite.handlers); everything else (the admin, and static
files served by Django's static handler) to Django's standard ASGI handler.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxysite.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_application = ASGIStaticFilesHandler(get_asgi_application())

from proxysite.handlers import ApiASGIHandler, is_api_request  # noqa: E402

api_application = ApiASGIHandler()


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and is_api_request(scope):
        await api_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
