"""Fields an upstream was seen refusing, remembered per credential (``Credential.learned_omissions``).

When an OpenAI-compatible server answers 400 naming a field the proxy added on its own (echoed
reasoning, ``reasoning_effort``, ``stream_options``, …), the provider retries without it and the
pool calls ``remember`` here. Nothing here is specific to one wire: the names are the provider's
own field names, and any provider may learn through ``Pool.learn_omission``.

The record lives on the credential row, so saving it bumps the config version and every
worker's next snapshot omits the field; it survives restarts. An operator clears it in the
admin (``forget``) when the server has changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction

MAX_EXCERPT_CHARS = 300


def fields(learned: Any) -> frozenset[str]:
    """The learned field names in a stored record (tolerates a hand-edited or garbled value)."""
    if not isinstance(learned, dict):
        return frozenset()
    return frozenset(name for name in learned if isinstance(name, str) and name)


def remember(credential_id: int, field: str, excerpt: str, now: float) -> bool:
    """Record that ``field`` is refused; False if it was known already (nothing written)."""
    from accounts.models import Credential

    with transaction.atomic():
        credential = (
            Credential.objects.select_for_update()
            .only("id", "learned_omissions")
            .filter(pk=credential_id)
            .first()
        )
        if credential is None:
            return False
        learned = credential.learned_omissions
        learned = dict(learned) if isinstance(learned, dict) else {}
        if field in learned:
            return False
        learned[field] = {
            "at": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "error": excerpt[:MAX_EXCERPT_CHARS],
        }
        credential.learned_omissions = learned
        # Through save(): the post_save signal bumps the config version after commit.
        credential.save(update_fields=["learned_omissions"])
    return True


def forget(credential_ids: list[int]) -> int:
    """Clear what was learned for these credentials; returns how many had something."""
    from accounts.models import Credential

    cleared = 0
    with transaction.atomic():
        for credential in Credential.objects.select_for_update().filter(pk__in=credential_ids):
            if credential.learned_omissions:
                credential.learned_omissions = {}
                credential.save(update_fields=["learned_omissions"])
                cleared += 1
    return cleared


def describe(learned: Any) -> list[str]:
    """One line per learned field, for the admin and proxy_status:
    ``reasoning_content (learned 2026-12-02 01:10 UTC from: <error excerpt>)``."""
    if not isinstance(learned, dict):
        return []
    lines = []
    for name in sorted(fields(learned)):
        entry = learned[name] if isinstance(learned[name], dict) else {}
        at = str(entry.get("at") or "")
        when = at[:16].replace("T", " ") + " UTC" if at else "at an unknown time"
        error = str(entry.get("error") or "").strip()
        lines.append(f"{name} (learned {when}" + (f" from: {error})" if error else ")"))
    return lines
