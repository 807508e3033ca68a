"""ASGI entry point: ``daphne proxysite.asgi:application`` serves the API and the admin.

Static files (the admin's CSS and JS) are served by Django's static handler in front of the
application; only /static/ requests go through it.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxysite.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

application = ASGIStaticFilesHandler(get_asgi_application())
