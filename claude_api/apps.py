from __future__ import annotations

from django.apps import AppConfig


class ClaudeApiConfig(AppConfig):
    name = "claude_api"
    verbose_name = "Claude API"
