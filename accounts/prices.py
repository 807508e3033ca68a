"""Prices per model and the cost of one request (pure; the table itself is ``ModelPrice``).

Prices are US dollars per million tokens, as the providers publish them, for four kinds of
token: input, output, cache read, cache write (Anthropic's 5-minute write; Gemini bills cache
storage by the hour, not per token, so its cache-write price is left unknown). A request's cost
is unknown (None), never zero, when its model has no price or one of the token kinds it used has
none: a zero would read as "free" in every report and budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def billed(self) -> int:
        """Input + output: what token limits and budgets count (cache reads are not new work)."""
        return self.input + self.output


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _p(input: str, output: str, cache_read: str | None, cache_write: str | None) -> Price:
    return Price(_d(input), _d(output), _d(cache_read), _d(cache_write))


# Published list prices of the catalogue's models (accounts.catalog), seeded into the admin's
# price table by migration 0004; the admin's table is what counts from then on.
# Anthropic: platform.claude.com/docs "Models & pricing" (5-minute cache write = 1.25 x input,
# cache read = 0.1 x input). Gemini: ai.google.dev/pricing, the prompt <= 200k tier.
PUBLISHED: dict[str, Price] = {
    "claude-opus-4-8": _p("5", "25", "0.50", "6.25"),
    "claude-sonnet-5": _p("2", "10", "0.20", "2.50"),
    "claude-opus-4-6": _p("5", "25", "0.50", "6.25"),
    "claude-sonnet-4-6": _p("3", "15", "0.30", "3.75"),
    "claude-opus-4-5-20251101": _p("5", "25", "0.50", "6.25"),
    "claude-haiku-4-5-20251001": _p("1", "5", "0.10", "1.25"),
    "claude-sonnet-4-5-20250929": _p("3", "15", "0.30", "3.75"),
    "claude-opus-4-1-20250805": _p("15", "75", "1.50", "18.75"),
    "gemini-3-pro-preview": _p("2", "12", "0.20", None),
    "gemini-3-flash-preview": _p("0.50", "3", "0.05", None),
    "gemini-2.5-pro": _p("1.25", "10", "0.125", None),
    "gemini-2.5-flash": _p("0.30", "2.50", "0.03", None),
    "gemini-2.5-flash-lite": _p("0.10", "0.40", "0.01", None),
    # OpenAI's API prices for the Codex catalogue (no charge for writing its prompt cache, so
    # none is given). Through a ChatGPT subscription these read as what the tokens would cost.
    "gpt-5": _p("1.25", "10", "0.125", None),
    "gpt-5-codex": _p("1.25", "10", "0.125", None),
    "gpt-5.1": _p("1.25", "10", "0.125", None),
    "gpt-5.1-codex": _p("1.25", "10", "0.125", None),
    "gpt-5.1-codex-max": _p("1.25", "10", "0.125", None),
    "gpt-5.1-codex-mini": _p("0.25", "2", "0.025", None),
    "gpt-5.2": _p("1.75", "14", "0.175", None),
    "gpt-5.2-codex": _p("1.75", "14", "0.175", None),
}


def price_for(prices: Mapping[str, Price], *models: str) -> Price | None:
    """The price of the first of ``models`` (upstream name first, then the client's name) the
    table knows; a table entry ending in ``*`` prices every model name it starts."""
    for model in models:
        if not model:
            continue
        found = prices.get(model)
        if found is not None:
            return found
    best: tuple[int, Price] | None = None
    for model in models:
        for name, price in prices.items():
            if name.endswith("*") and model.startswith(name[:-1]):
                if best is None or len(name) > best[0]:
                    best = (len(name), price)
    return best[1] if best else None


def cost(tokens: Tokens, price: Price | None) -> Decimal | None:
    """Dollars for ``tokens`` at ``price``, or None when any used kind has no price."""
    if price is None:
        return None
    total = Decimal(0)
    for count, per_million in (
        (tokens.input, price.input),
        (tokens.output, price.output),
        (tokens.cache_read, price.cache_read),
        (tokens.cache_write, price.cache_write),
    ):
        if count == 0:
            continue
        if per_million is None:
            return None
        total += count * per_million
    return total / MILLION
