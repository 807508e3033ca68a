from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Credential, CredentialModel, Provider


class Command(BaseCommand):
    help = (
        "Add an upstream credential. The secret is read from an environment variable or a file, "
        "never from the command line (which other users can see and shells keep in history)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--provider", choices=[p.value for p in Provider], required=True)
        parser.add_argument("--label", required=True)
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--secret-env", metavar="VAR", help="Environment variable holding it.")
        source.add_argument("--secret-file", metavar="FILE", help="File holding it.")
        parser.add_argument("--base-url", default="")
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="UPSTREAM[=ALIAS]",
            help="A model this credential serves, optionally under an alias (repeatable).",
        )
        parser.add_argument("--priority", type=int, default=0)
        parser.add_argument("--weight", type=int, default=1)
        parser.add_argument("--prefix", default="")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args, **options) -> str:
        secret = self._secret(options)
        credential = Credential(
            provider=options["provider"],
            label=options["label"],
            base_url=options["base_url"],
            priority=options["priority"],
            weight=options["weight"],
            prefix=options["prefix"],
            enabled=not options["disabled"],
        )
        credential.set_secret(secret)
        try:
            credential.full_clean()
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        with transaction.atomic():
            credential.save()
            for spec in options["model"]:
                name, _, alias = spec.partition("=")
                if not name.strip():
                    raise CommandError(f"--model {spec!r}: the upstream name is empty")
                CredentialModel.objects.create(
                    credential=credential, name=name.strip(), alias=alias.strip()
                )
        return f"Added credential #{credential.pk} {credential} (secret {credential.secret_hint})"

    @staticmethod
    def _secret(options) -> str:
        if options["secret_env"]:
            value = os.environ.get(options["secret_env"], "")
            if not value.strip():
                raise CommandError(
                    f"The environment variable {options['secret_env']} is empty or unset."
                )
            return value.strip()
        path = Path(options["secret_file"])
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        if not value:
            raise CommandError(f"{path} is empty.")
        return value
