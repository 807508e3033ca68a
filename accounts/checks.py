"""System checks: refuse to run in production without explicit secrets."""

from __future__ import annotations

import os

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_encryption_keys(app_configs, **kwargs):
    problems = []
    for index, key in enumerate(settings.FIELD_ENCRYPTION_KEYS):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            problems.append(
                Error(
                    f"FIELD_ENCRYPTION_KEYS entry {index + 1} is not a valid Fernet key.",
                    hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="accounts.E001",
                )
            )
    shared_database = not os.getenv("DATABASE_URL", "sqlite").startswith("sqlite")
    if shared_database and not os.getenv("FIELD_ENCRYPTION_KEYS"):
        problems.append(
            Warning(
                "FIELD_ENCRYPTION_KEYS is not set; using the key generated in the data directory.",
                hint="Fine for one machine. Several machines sharing a database must all set the "
                "same FIELD_ENCRYPTION_KEYS (and CLIENT_KEY_PEPPER).",
                id="accounts.W001",
            )
        )
    return problems
