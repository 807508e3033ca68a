from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Pool"

    def ready(self) -> None:
        from accounts import checks, signals  # noqa: F401  (registration)
