from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts import quota
from accounts.models import Credential


class Command(BaseCommand):
    help = (
        "Clear cooldowns and 'needs attention' states so credentials are tried again at once. "
        "Every worker notices within a second. Prints what it cleared."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--credential",
            action="append",
            default=[],
            metavar="ID|LABEL",
            help="Only this credential, by id or exact label (repeatable).",
        )
        parser.add_argument(
            "--model",
            help="Only this upstream model (credential-wide blocks are cleared too).",
        )
        parser.add_argument("--all", action="store_true", help="Every credential.")

    def handle(self, *args, credential: list[str], model: str | None, **options) -> str:
        if options["all"] and credential:
            raise CommandError("Give either --all or --credential, not both.")
        if not options["all"] and not credential:
            raise CommandError(
                "Say what to reset: --credential ID|LABEL (repeatable) for some credentials, "
                "or --all for every credential; add --model M to limit it to one model."
            )
        ids = [resolve(value) for value in credential] if credential else None
        cleared = quota.reset(credentials=ids, model=model)
        if not cleared:
            return "nothing to reset"
        for label, cleared_model, status in cleared:
            scope = "whole credential" if cleared_model == "*" else cleared_model
            self.stdout.write(f"cleared {label} ({scope}): {status.lower()}")
        return f"{len(cleared)} state(s) cleared"


def resolve(value: str) -> int:
    """A credential id, or else an exact label; an ambiguous label is an error listing the ids."""
    value = value.strip()
    if value.isdigit() and Credential.objects.filter(pk=int(value)).exists():
        return int(value)
    ids = list(Credential.objects.filter(label=value).order_by("id").values_list("id", flat=True))
    if not ids:
        raise CommandError(f"No credential has the id or label {value!r}.")
    if len(ids) > 1:
        listed = ", ".join(str(pk) for pk in ids)
        raise CommandError(f"The label {value!r} matches credentials {listed}; use an id.")
    return ids[0]
