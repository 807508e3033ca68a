from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.oauth import importer


class Command(BaseCommand):
    help = (
        "Import CLIProxyAPI account files (claude-*.json, codex-*.json; files or directories). "
        "The same account again updates it; a refresh token another account holds is refused. "
        "Tokens are encrypted at rest and never printed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would happen; write nothing."
        )

    def handle(self, *args, paths: list[str], dry_run: bool, **options) -> str:
        outcomes = importer.import_paths(paths, dry_run=dry_run)
        if not outcomes:
            raise CommandError("No account files found (looked for *.json in directories).")
        for outcome in outcomes:
            self.stdout.write(outcome.line())
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        summary = ", ".join(f"{count} {action}" for action, count in sorted(counts.items()))
        return ("dry run, nothing written: " if dry_run else "") + summary
