"""A client key's limits and budgets at the door: admit the request or answer 429 before
anything is sent upstream (policy: accounts.limits; counting: accounts.limiter).

Keys without limits cost nothing here: no estimate, no round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from accounts import limiter, limits, prices
from accounts.pool import ClientKeyView, pool
from accounts.usage import RequestOutcome
from claude_api.errors import LimitExceeded, PermissionDenied
from claude_api.request import MESSAGES

if TYPE_CHECKING:
    from claude_api.dispatch import Dispatch

logger = logging.getLogger(__name__)

# Rejections per key and limit, for the metrics (claude_api.metrics reads it).
rejections: dict[tuple[str, str], int] = {}
# Requests per key admitted unchecked because the counters could not be reached (metrics).
unchecked: dict[str, int] = {}
UNREACHABLE_WARNING_SECONDS = 60.0
_warned_at = 0.0


def _warn_unreachable(exc: Exception) -> None:
    global _warned_at
    if time.monotonic() - _warned_at >= UNREACHABLE_WARNING_SECONDS:
        _warned_at = time.monotonic()
        logger.warning("limits not checked: their counters are unreachable (%s)", exc)


def estimate_tokens(dispatch: Dispatch) -> int:
    """The request's input tokens, estimated locally (what admission reserves)."""
    from claude_api.translate.tokens import estimate_input_tokens

    try:
        return estimate_input_tokens(dispatch.request.body)
    except Exception:  # noqa: BLE001 - an odd body must not fail admission; bound it by size
        return len(dispatch.request.raw) // 4


async def admit(dispatch: Dispatch, client_key: ClientKeyView) -> None:
    """Take the request's place within the key's limits (``dispatch.admission``) or raise."""
    key_limits = client_key.limits
    if not key_limits.any or dispatch.request.endpoint != MESSAGES:
        return
    tokens = cost = 0
    if key_limits.counts_tokens or key_limits.counts_cost:
        tokens = estimate_tokens(dispatch)
    if key_limits.counts_cost:
        price = _price(dispatch)
        if price is None or price.input is None:
            raise PermissionDenied(
                f"Model {dispatch.request.model} has no price in the proxy's price table, and "
                "this API key has a budget in money: ask the operator to price the model."
            )
        cost = limits.micro_usd(prices.cost(prices.Tokens(input=tokens), price)) or 0
    now = time.time()
    # Requests that ended since the last round trip are released in this one, before the
    # check: their slots are free for it, and a worker under steady load makes one round trip
    # a request instead of two.
    releasing = _ended[:]
    _ended.clear()
    try:
        result = await limiter.admit(
            client_key.key_id,
            dispatch.request.request_id,
            key_limits,
            tokens=tokens,
            cost=cost,
            now=now,
            releasing=releasing,
        )
    except limiter.StoreUnreachable as exc:
        # Serve rather than fail every limited key while Redis is away (the readiness check
        # and the admin say it is); the request is not counted.
        unchecked[client_key.name] = unchecked.get(client_key.name, 0) + 1
        _warn_unreachable(exc)
        return
    if isinstance(result, str):
        refusal = limits.rejection(
            result, key_limits, limits.windows(now, key_limits.budget_period), now
        )
        counted = (client_key.name, refusal.limit)
        rejections[counted] = rejections.get(counted, 0) + 1
        raise LimitExceeded(refusal.message, refusal.limit, refusal.retry_after)
    dispatch.admission = result


def _price(dispatch: Dispatch) -> prices.Price | None:
    models = [route.upstream_model for route in dispatch.routes[:1]]
    return prices.price_for(dispatch.snapshot.prices, *models, dispatch.request.model)


# Requests ended and not yet released: the requests that end within one RELEASE_DELAY share
# one round trip (under load, many; or the next admission's), which holds a concurrency slot
# that much longer.
RELEASE_DELAY = 0.005
_ended: list[limiter.Ended] = []


def release(admission: limiter.Admission, outcome: RequestOutcome) -> None:
    """Give back the slot and settle the reservation, off the request path."""
    if not _ended:
        pool.spawn(_release_soon())
    _ended.append((admission, outcome.tokens.billed, limits.micro_usd(outcome.cost)))


async def _release_soon() -> None:
    await asyncio.sleep(RELEASE_DELAY)
    batch = _ended[:]  # empty when an admission took them along meanwhile
    _ended.clear()
    if not batch:
        return
    try:
        await limiter.release(batch)
    except limiter.StoreUnreachable as exc:
        _warn_unreachable(exc)
    except Exception:
        logger.exception("could not release %d requests' limit counters", len(batch))
