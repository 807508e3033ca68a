"""One cell's proxy: ``python -m tests.compat.serve SPEC.json PORT`` seeds the cell's database
from the spec, writes a client key to ``SPEC.json.key``, then runs daphne's own command line
in this process (one Django start-up per cell instead of two).

The spec is ``{"credentials": [{provider, label, secret, base_url, models, fields}],
"settings": {...}}``; DATABASE_URL points at the cell's own SQLite copy.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def seed(spec: dict) -> str:
    from accounts.models import ClientKey, Credential, CredentialModel, ProxySettings

    for entry in spec["credentials"]:
        credential = Credential(
            provider=entry["provider"],
            label=entry["label"],
            base_url=entry["base_url"],
            **entry.get("fields", {}),
        )
        credential.set_secret(entry["secret"])
        credential.save()
        for model in entry.get("models", []):
            CredentialModel.objects.create(credential=credential, name=model)
    settings = ProxySettings.load()
    for name, value in spec.get("settings", {}).items():
        setattr(settings, name, value)
    settings.save()
    return ClientKey.issue(name="compat")[1]


def main() -> None:
    spec_path, port = Path(sys.argv[1]), sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxysite.settings")
    import django

    django.setup()
    from django.db import connections

    key = seed(json.loads(spec_path.read_text()))
    connections.close_all()  # the server's threads open their own
    Path(f"{spec_path}.key").write_text(key)
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, "proxysite.asgi:application"])


if __name__ == "__main__":
    main()
