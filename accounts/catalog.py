"""Built-in model catalogues, used for credentials that list no models of their own.

A credential without explicit models serves its provider's catalogue plus any model name in its
family (``claude-*`` for Anthropic, ``gemini-*`` for Gemini, ``gpt-*`` for Codex accounts), so a
model released tomorrow works before this list learns about it. OpenAI-compatible credentials
(Chat Completions or Responses API keys) must list their models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CatalogModel:
    id: str
    display_name: str
    created_at: str  # RFC 3339
    max_input_tokens: int | None = None
    max_tokens: int | None = None


ANTHROPIC_MODELS = (
    CatalogModel("claude-opus-4-8", "Claude Opus 4.8", "2026-09-30T00:00:00Z", 1_000_000, 128_000),
    CatalogModel("claude-sonnet-5", "Claude Sonnet 5", "2026-08-19T00:00:00Z", 1_000_000, 64_000),
    CatalogModel("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 1_000_000, 128_000),
    CatalogModel("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 200_000, 64_000),
    CatalogModel(
        "claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", 200_000, 64_000
    ),
    CatalogModel(
        "claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", 200_000, 64_000
    ),
    CatalogModel(
        "claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200_000, 64_000
    ),
    CatalogModel(
        "claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z", 200_000, 32_000
    ),
)

GEMINI_MODELS = (
    CatalogModel(
        "gemini-3-pro-preview", "Gemini 3 Pro Preview", "2025-11-18T00:00:00Z", 1_048_576, 65_536
    ),
    CatalogModel(
        "gemini-3-flash-preview",
        "Gemini 3 Flash Preview",
        "2025-12-17T00:00:00Z",
        1_048_576,
        65_536,
    ),
    CatalogModel("gemini-2.5-pro", "Gemini 2.5 Pro", "2025-06-17T00:00:00Z", 1_048_576, 65_536),
    CatalogModel("gemini-2.5-flash", "Gemini 2.5 Flash", "2025-06-17T00:00:00Z", 1_048_576, 65_536),
    CatalogModel(
        "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", "2025-07-22T00:00:00Z", 1_048_576, 65_536
    ),
)

# What a ChatGPT subscription serves through the Codex backend: 272k tokens of input (the Codex
# CLI's context window for these models), 128k of output.
CODEX_MODELS = (
    CatalogModel("gpt-5.2-codex", "GPT-5.2 Codex", "2025-12-18T00:00:00Z", 272_000, 128_000),
    CatalogModel("gpt-5.2", "GPT-5.2", "2025-12-11T00:00:00Z", 272_000, 128_000),
    CatalogModel(
        "gpt-5.1-codex-max", "GPT-5.1 Codex Max", "2025-11-19T00:00:00Z", 272_000, 128_000
    ),
    CatalogModel("gpt-5.1-codex", "GPT-5.1 Codex", "2025-11-13T00:00:00Z", 272_000, 128_000),
    CatalogModel(
        "gpt-5.1-codex-mini", "GPT-5.1 Codex Mini", "2025-11-13T00:00:00Z", 272_000, 128_000
    ),
    CatalogModel("gpt-5.1", "GPT-5.1", "2025-11-13T00:00:00Z", 272_000, 128_000),
    CatalogModel("gpt-5-codex", "GPT-5 Codex", "2025-09-15T00:00:00Z", 272_000, 128_000),
    CatalogModel("gpt-5", "GPT-5", "2025-08-07T00:00:00Z", 272_000, 128_000),
)

CATALOGS: dict[str, tuple[CatalogModel, ...]] = {
    "anthropic": ANTHROPIC_MODELS,
    "gemini": GEMINI_MODELS,
    "openai": (),
    # API keys reach every OpenAI model: list the ones a credential should serve.
    "openai-responses": (),
    "codex": CODEX_MODELS,
}
FAMILY_PREFIXES: dict[str, str] = {"anthropic": "claude-", "gemini": "gemini-", "codex": "gpt-"}
BY_ID: dict[str, CatalogModel] = {m.id: m for models in CATALOGS.values() for m in models}

EPOCH = "1970-01-01T00:00:00Z"
