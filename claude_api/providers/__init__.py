"""Upstream providers by name (``Credential.provider``)."""

from __future__ import annotations

from functools import cache

from claude_api.providers.base import Provider


@cache
def provider_for(name: str) -> Provider:
    if name == "anthropic":
        from claude_api.providers.anthropic import AnthropicProvider

        return AnthropicProvider()
    if name == "gemini":
        from claude_api.providers.gemini import GeminiProvider

        return GeminiProvider()
    if name == "openai":
        from claude_api.providers.openai import OpenAIProvider

        return OpenAIProvider()
    if name in ("openai-responses", "codex"):
        from claude_api.providers.responses import ResponsesProvider

        return ResponsesProvider(codex=name == "codex")
    raise LookupError(f"unknown provider {name!r}")
