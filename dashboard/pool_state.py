"""The pool as the overview shows it: each credential's state now (ok / cooling until … / needs
attention / needs login / disabled) and its successes and failures over the last 24 hours.

Three queries whatever the pool's size (credentials with their accounts, the blocking quota
states, the hourly counters summed per credential). Run on page load and, for the live view,
once per worker per change (dashboard.live), never per open page.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Sum

from accounts.admin_accounts import needs_login_line
from accounts.models import Credential, CredentialStats, QuotaState, QuotaStatus

# Who may see the pool's state (on the overview and over its websocket): the permission the
# admin's credential list needs.
PERMISSION = "accounts.view_credential"
COUNT_HOURS = 24
# Worst first: what a credential's state is when several of its scopes block.
SEVERITY = {"disabled": 0, "ok": 1, "cooling": 2, "attention": 3, "needs_login": 4}


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def build(now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, tz=UTC)
    credentials = list(Credential.objects.select_related("oauth").order_by("-priority", "id"))
    blocks: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    # Same rule as QuotaRecord.blocks: a state whose retry time has passed blocks nothing.
    for row in QuotaState.objects.filter(next_retry_at__gt=moment).order_by(
        "credential_id", "model"
    ):
        blocks[row.credential_id].append(
            {
                "model": row.model,
                "status": "attention" if row.status == QuotaStatus.ATTENTION else "cooling",
                "reason": row.reason or "error",
                "until": _epoch(row.next_retry_at),
                "last_status": row.last_status,
            }
        )
    since = moment - timedelta(hours=COUNT_HOURS)
    counts = {
        row["credential_id"]: row
        for row in CredentialStats.objects.filter(hour__gte=since)
        .values("credential_id")
        .annotate(ok=Sum("successes"), failed=Sum("failures"), skipped=Sum("skips"))
        .order_by()
    }
    rows = []
    for credential in credentials:
        own = blocks.get(credential.pk, [])
        state = "ok"
        login = needs_login_line(credential)
        if not credential.enabled:
            state = "disabled"
        elif login:
            state = "needs_login"
        elif own:
            state = max((b["status"] for b in own), key=SEVERITY.__getitem__)
        count = counts.get(credential.pk, {})
        rows.append(
            {
                "id": credential.pk,
                "label": credential.label,
                "provider": credential.get_provider_display(),
                "state": state,
                "login": login or "",
                # The whole credential first, then each model that is blocked on its own.
                "blocks": own,
                "successes": count.get("ok") or 0,
                "failures": count.get("failed") or 0,
                "skips": count.get("skipped") or 0,
            }
        )
    summary = defaultdict(int)
    for row in rows:
        summary[row["state"]] += 1
    return {
        "at": now,
        "count_hours": COUNT_HOURS,
        "credentials": rows,
        "summary": dict(summary),
    }
