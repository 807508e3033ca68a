from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.models import ClientKey


class Command(BaseCommand):
    help = "Create a client key for the proxy and print it once (only its HMAC is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Who or what uses the key, e.g. 'alice-laptop'.")
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            help="Allow only this model (repeatable; * wildcards). Default: every model.",
        )

    def handle(self, *args, name: str, model: list[str], **options) -> str:
        _, plaintext = ClientKey.issue(name=name, allowed_models="\n".join(model))
        self.stderr.write(f"Created client key {name!r}. It is shown only now; store it safely:")
        return plaintext
