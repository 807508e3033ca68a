from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts import limiter, usage


class Command(BaseCommand):
    help = (
        "Delete usage records older than the retention (USAGE_RETENTION_DAYS, or --days), and "
        "limit counters of windows long past. Workers also do this on their own about every "
        "100 flushes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            help=f"Keep this many days instead of USAGE_RETENTION_DAYS "
            f"({settings.USAGE_RETENTION_DAYS}); 0 keeps everything.",
        )

    def handle(self, *args, days: int | None, **options) -> str:
        if days is not None and days < 0:
            raise CommandError("--days must be 0 or more.")
        removed = usage.prune(retention_days=days)
        counters = limiter.prune_database()
        return f"pruned {removed} usage record(s) and {counters} limit counter(s)"
