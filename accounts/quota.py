"""Quota state and counters in the database: the record every worker process shares.

Synchronous functions, each one short transaction; async code calls them through
``database_sync_to_async``. Writes happen on failures (rare), on the first success after a
failure, and when aggregated counters are flushed; a healthy request writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts import notices, versions
from accounts.cooldown import Failure, QuotaRecord, apply_failure
from accounts.models import ClientKey, CredentialStats, QuotaState, RoutingTrace

logger = logging.getLogger(__name__)

TRACE_RETENTION = timedelta(days=7)
TRACE_MAX_ROWS = 20_000


def _to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def record_from_row(row: QuotaState) -> QuotaRecord:
    return QuotaRecord(
        status=row.status,
        reason=row.reason,
        next_retry_at=_to_epoch(row.next_retry_at),
        backoff_level=row.backoff_level,
        last_status=row.last_status,
        last_error=row.last_error,
        reset_source=row.reset_source,
    )


def _write_record(row: QuotaState, record: QuotaRecord) -> None:
    row.status = record.status
    row.reason = record.reason
    row.next_retry_at = _to_datetime(record.next_retry_at)
    row.backoff_level = record.backoff_level
    row.last_status = record.last_status
    row.last_error = record.last_error
    row.reset_source = record.reset_source
    row.updated_at = timezone.now()


def load_records() -> dict[tuple[int, str], QuotaRecord]:
    """Every state that is not plainly healthy, keyed by (credential id, model)."""
    rows = QuotaState.objects.exclude(status="ok", backoff_level=0, last_error="")
    return {(row.credential_id, row.model): record_from_row(row) for row in rows}


def persist_failure(
    credential_id: int,
    model: str,
    failure: Failure,
    now: float,
    *,
    transient_seconds: int,
    cooling_disabled: bool,
) -> QuotaRecord | None:
    """Apply a failure to the stored state atomically; returns the new record."""
    scope = "" if failure.credential_wide else model
    try:
        with transaction.atomic():
            row = (
                QuotaState.objects.select_for_update()
                .filter(credential_id=credential_id, model=scope)
                .first()
            )
            previous = record_from_row(row) if row else None
            record = apply_failure(
                previous,
                failure,
                now,
                transient_seconds=transient_seconds,
                cooling_disabled=cooling_disabled,
            )
            if record is None:
                return None
            row = row or QuotaState(credential_id=credential_id, model=scope)
            _write_record(row, record)
            row.save()
            versions.bump(quota=True)
    except IntegrityError:
        # The credential was deleted while its request was in flight: nothing left to record.
        logger.info("quota state not recorded: credential %s no longer exists", credential_id)
        return None
    return record


def persist_success(credential_id: int, model: str) -> None:
    """A success clears that model's state (not a credential-wide block, which must expire)."""
    with transaction.atomic():
        changed = QuotaState.objects.filter(credential_id=credential_id, model=model).delete()[0]
        if changed:
            versions.bump(quota=True)


def reset(
    credentials: Iterable[int] | None = None, model: str | None = None
) -> list[tuple[str, str, str]]:
    """Clear cooldowns. Returns (credential label, model or '*', previous status) per row."""
    rows = QuotaState.objects.select_related("credential")
    if credentials is not None:
        rows = rows.filter(credential_id__in=list(credentials))
    if model is not None:
        rows = rows.filter(Q(model=model) | Q(model=""))
    with transaction.atomic():
        cleared = [
            (row.credential.label, row.model or "*", row.get_status_display())
            for row in rows.order_by("credential_id", "model")
        ]
        if cleared:
            rows.delete()
            versions.bump(quota=True)
    return cleared


def flush_counters(
    successes: dict[int, int],
    failures: dict[int, int],
    keys_used: dict[int, float],
    now: float,
    *,
    skips: dict[int, int] | None = None,
) -> None:
    hour = datetime.fromtimestamp(now - now % 3600, tz=UTC)
    skips = skips or {}
    for credential_id in set(successes) | set(failures) | set(skips):
        ok, failed = successes.get(credential_id, 0), failures.get(credential_id, 0)
        skipped = skips.get(credential_id, 0)
        changes = {
            "successes": F("successes") + ok,
            "failures": F("failures") + failed,
            "skips": F("skips") + skipped,
        }
        rows = CredentialStats.objects.filter(credential_id=credential_id, hour=hour)
        if not rows.update(**changes):
            try:
                with transaction.atomic():
                    CredentialStats.objects.create(
                        credential_id=credential_id,
                        hour=hour,
                        successes=ok,
                        failures=failed,
                        skips=skipped,
                    )
            except IntegrityError:
                # Another worker created the row first, or the credential is gone.
                rows.update(**changes)
    for key_id, used_at in keys_used.items():
        moment = _to_datetime(used_at)
        ClientKey.objects.filter(pk=key_id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment)
        ).update(last_used_at=moment)
    if successes or failures or skips:
        # Each credential's successes and failures changed (no version bump for counters).
        notices.pool_changed()


def save_trace(trace: dict) -> None:
    RoutingTrace.objects.create(**trace)


def prune_traces(now: float) -> int:
    cutoff = _to_datetime(now) - TRACE_RETENTION
    removed = RoutingTrace.objects.filter(created_at__lt=cutoff).delete()[0]
    newest = RoutingTrace.objects.order_by("-created_at").values_list("created_at", flat=True)
    boundary = newest[TRACE_MAX_ROWS : TRACE_MAX_ROWS + 1]
    if boundary:
        removed += RoutingTrace.objects.filter(created_at__lt=boundary[0]).delete()[0]
    return removed


def recent_counts(credential_ids: Iterable[int], hours: int = 24) -> dict[int, tuple[int, int]]:
    since = timezone.now() - timedelta(hours=hours)
    counts: dict[int, tuple[int, int]] = {}
    for row in CredentialStats.objects.filter(
        credential_id__in=list(credential_ids), hour__gte=since
    ):
        ok, failed = counts.get(row.credential_id, (0, 0))
        counts[row.credential_id] = (ok + row.successes, failed + row.failures)
    return counts


def recent_skips(credential_id: int, hours: int = 24) -> int:
    since = timezone.now() - timedelta(hours=hours)
    rows = CredentialStats.objects.filter(credential_id=credential_id, hour__gte=since)
    return sum(rows.values_list("skips", flat=True))
