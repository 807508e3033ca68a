"""One cell's proxy: ``python -m tests.compat.serve SPEC.json PORT`` seeds the cell's database
from the spec, writes a client key to ``SPEC.json.key``, then runs daphne's own command line
in this process (one Django start-up per cell instead of two).

The spec is ``{"credentials": [{provider, label, secret, base_url, models, fields, account?}],
"settings": {...}, "env": {...}}``; a credential with ``account`` is a logged-in Claude or Codex
account (its token set, saved as a login saves it). DATABASE_URL points at the cell's own
SQLite copy.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def seed(spec: dict) -> str:
    from accounts.models import ClientKey, Credential, CredentialModel, ProxySettings

    for entry in spec["credentials"]:
        if "account" in entry:
            credential = _account(entry)
        else:
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


def _account(entry: dict):
    """A logged-in account (Claude or Codex), saved as the account layer saves a login or an
    import."""
    from datetime import UTC, datetime, timedelta

    from accounts.models import Credential
    from accounts.oauth import store
    from accounts.oauth.files import AccountData

    account = entry["account"]
    result = store.save_account(
        AccountData(
            provider=account["provider"],
            access_token=account["access_token"],
            refresh_token=account["refresh_token"],
            expires_at=datetime.now(UTC) - timedelta(minutes=5),
            email=account["email"],
            # Codex: the ChatGPT workspace the proxy sends as Chatgpt-Account-Id.
            account_id=account.get("account_id") or account["email"],
            plan=account.get("plan", ""),
            id_token=account.get("id_token", ""),
        ),
        label=entry["label"],
    )
    credential = Credential.objects.get(pk=result.credential_id)
    credential.base_url = entry["base_url"]
    for name, value in entry.get("fields", {}).items():
        setattr(credential, name, value)
    credential.save()
    return credential


def main() -> None:
    spec_path, port = Path(sys.argv[1]), sys.argv[2]
    os.environ.update(json.loads(spec_path.read_text()).get("env", {}))
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
