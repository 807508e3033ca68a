"""Number formats for the overview's tables and cards."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def num(value) -> str:
    """1234567 → 1,234,567; None → —."""
    if value is None or value == "":
        return "—"
    return f"{int(value):,}"


@register.filter
def usd(value) -> str:
    """A cost string from the ledger → $0.000315, $12.3456, $1,234.57; None → unknown."""
    if value is None:
        return "unknown"
    amount = Decimal(value)
    places = 6 if abs(amount) < Decimal("0.01") else 4 if abs(amount) < 100 else 2
    return f"${amount:,.{places}f}"


@register.filter
def ms(value) -> str:
    if value is None:
        return "—"
    return f"{int(value):,} ms"


@register.filter
def share(part, whole) -> str:
    """Part of a whole, as a percentage with one decimal."""
    if not whole:
        return "0 %"
    return f"{100 * part / whole:.1f} %"
