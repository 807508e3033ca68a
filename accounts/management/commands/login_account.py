from __future__ import annotations

import asyncio
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.oauth import sessions


class Command(BaseCommand):
    help = (
        "Log in a subscription account without a browser on this machine: prints the sign-in "
        "URL, then reads what the browser showed afterwards (the redirect URL with code and "
        "state, or Claude's code#state) from stdin."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("provider", choices=sorted(sessions.COMMAND_NAMES))

    def handle(self, *args, provider: str, **options) -> str:
        started = sessions.start(sessions.COMMAND_NAMES[provider])
        self.stdout.write("Open this URL, sign in, and paste what the browser shows afterwards")
        self.stdout.write("(the localhost address it failed to open, or the code#state page):")
        self.stdout.write("")
        self.stdout.write(started.url)
        self.stdout.write("")
        self.stdout.write("Paste: ", ending="")
        self.stdout.flush()
        paste = sys.stdin.readline()
        try:
            result = asyncio.run(sessions.complete(paste))
        except sessions.LoginError as exc:
            raise CommandError(exc.message) from None
        return f"{result.action} account #{result.credential_id} {result.label}"
