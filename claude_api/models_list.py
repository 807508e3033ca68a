"""GET /v1/models: the models at least one enabled credential serves, in Anthropic's format."""

from __future__ import annotations

from typing import Any

from accounts.pool import ClientKeyView, ModelRoute, Snapshot
from claude_api.errors import InvalidRequest, NotFound

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def model_entries(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every client-visible model id, newest first (then by id), with what is known about it."""
    if snapshot.model_entries is not None:
        return snapshot.model_entries
    found: dict[str, ModelRoute] = {}
    force = snapshot.config.force_model_prefix
    for credential in snapshot.credentials:
        for model_id, route in credential.listed_models(force):
            found.setdefault(model_id, route)
    entries = [_entry(model_id, route) for model_id, route in found.items()]
    entries.sort(key=lambda e: e["id"])
    entries.sort(key=lambda e: e["created_at"], reverse=True)
    snapshot.model_entries = entries
    return entries


def _entry(model_id: str, route: ModelRoute) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": route.display_name or model_id,
        "created_at": route.created_at,
    }
    if route.max_input_tokens:
        entry["max_input_tokens"] = route.max_input_tokens
    if route.max_tokens:
        entry["max_tokens"] = route.max_tokens
    return entry


def page(
    snapshot: Snapshot,
    client_key: ClientKeyView,
    *,
    limit: str | None,
    after_id: str | None,
    before_id: str | None,
) -> dict[str, Any]:
    try:
        size = DEFAULT_LIMIT if limit in (None, "") else int(limit)
    except ValueError:
        raise InvalidRequest("limit: Input should be a valid integer") from None
    if not 1 <= size <= MAX_LIMIT:
        raise InvalidRequest(f"limit: Input should be between 1 and {MAX_LIMIT}")
    entries = [e for e in model_entries(snapshot) if client_key.may_use(e["id"])]
    ids = [e["id"] for e in entries]
    if after_id:
        if after_id not in ids:
            raise InvalidRequest(f"after_id: unknown model id {after_id!r}")
        start = ids.index(after_id) + 1
        chosen = entries[start : start + size]
        has_more = start + size < len(entries)
    elif before_id:
        if before_id not in ids:
            raise InvalidRequest(f"before_id: unknown model id {before_id!r}")
        end = ids.index(before_id)
        chosen = entries[max(0, end - size) : end]
        has_more = end - size > 0
    else:
        chosen = entries[:size]
        has_more = size < len(entries)
    return {
        "data": chosen,
        "has_more": has_more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }


def one(snapshot: Snapshot, client_key: ClientKeyView, model_id: str) -> dict[str, Any]:
    if client_key.may_use(model_id):
        for entry in model_entries(snapshot):
            if entry["id"] == model_id:
                return entry
        routes = snapshot.routes_for(model_id)
        if routes:
            # Served through a family pattern (a model newer than the built-in catalogue).
            return _entry(model_id, ModelRoute(routes[0].upstream_model, model_id))
    raise NotFound(f"model: {model_id}")
