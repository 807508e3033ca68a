"""The matrix's columns: one upstream family each, played by a strict fake in ``tests/fakes``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic_api import AnthropicFake, ClaudeAccountFake
from tests.fakes.gemini_api import GeminiFake
from tests.fakes.openai_api import OpenAIFake
from tests.fakes.responses_brain import ResponsesFake, codex_access_token
from tests.fakes.strict import Faults, StrictFake


@dataclass(frozen=True)
class Column:
    id: str
    title: str
    provider: str
    secrets: tuple[str, str]  # two credentials; most rows use only the first
    make_fake: Callable[[list[str], Faults], StrictFake]
    model: str | None  # what Claude Code is told to use (--model); None: its default
    base_path: str = ""  # appended to the fake's URL for the credential's base URL
    models: tuple[str, ...] = ()  # the credential's model list (OpenAI-compatible must list)
    fields: dict[str, Any] = field(default_factory=dict)  # per-credential settings
    shows_thinking: bool = True  # the service returns its reasoning text
    # Credentials are logged-in accounts (accounts.oauth) whose access tokens have expired: the
    # proxy must refresh them against the fake's token endpoint before the first call. The fake
    # says how (``account_seed(n)``, ``token_env``, ``token_path``) and counts ``refreshes``.
    account: bool = False


COLUMNS: tuple[Column, ...] = (
    Column(
        "anthropic-key",
        "Anthropic API key",
        "anthropic",
        ("sk-ant-api03-compat-first", "sk-ant-api03-compat-second"),
        lambda secrets, faults: AnthropicFake(secrets, faults),
        None,
    ),
    Column(
        "anthropic-oauth",
        "Anthropic OAuth",
        "anthropic",
        ("sk-ant-oat01-compat-first", "sk-ant-oat01-compat-second"),
        lambda secrets, faults: AnthropicFake(secrets, faults, oauth=True),
        None,
    ),
    Column(
        "claude-account",
        "Claude account (OAuth, refreshed)",
        "anthropic",
        ("sk-ant-oat01-compat-account-first", "sk-ant-oat01-compat-account-second"),
        lambda secrets, faults: ClaudeAccountFake(secrets, faults),
        None,
        account=True,
    ),
    Column(
        "gemini-2.5",
        "Gemini 2.5 Pro",
        "gemini",
        ("AIzaCompatFirst", "AIzaCompatSecond"),
        lambda secrets, faults: GeminiFake(secrets, faults, model="gemini-2.5-pro"),
        "gemini-2.5-pro",
    ),
    Column(
        "gemini-3",
        "Gemini 3 Pro",
        "gemini",
        ("AIzaCompatFirst3", "AIzaCompatSecond3"),
        lambda secrets, faults: GeminiFake(secrets, faults, model="gemini-3-pro-preview"),
        "gemini-3-pro-preview",
    ),
    Column(
        "openai-strict",
        "OpenAI strict (gpt-5)",
        "openai",
        ("sk-proj-compat-first", "sk-proj-compat-second"),
        lambda secrets, faults: OpenAIFake(secrets, faults, model="gpt-5"),
        "gpt-5",
        base_path="/v1",
        models=("gpt-5",),
        # What an operator sets for OpenAI's reasoning models, which refuse max_tokens.
        fields={"openai_max_tokens_field": "max_completion_tokens"},
        shows_thinking=False,  # OpenAI keeps its reasoning to itself
    ),
    Column(
        "openai-reasoning",
        "OpenAI-compatible reasoner",
        "openai",
        ("sk-compat-reasoner-first", "sk-compat-reasoner-second"),
        lambda secrets, faults: OpenAIFake(
            secrets, faults, model="deepseek-reasoner", reasoning=True
        ),
        "deepseek-reasoner",
        base_path="/v1",
        models=("deepseek-reasoner",),
    ),
    Column(
        "codex-account",
        "Codex account (ChatGPT, refreshed)",
        "codex",
        # The access tokens the fake's token endpoint hands out on refresh.
        (codex_access_token(0, "first"), codex_access_token(1, "second")),
        lambda secrets, faults: ResponsesFake(secrets, faults, model="gpt-5-codex", codex=True),
        "gpt-5-codex",
        base_path="/backend-api/codex",
        account=True,
    ),
    Column(
        "openai-responses",
        "OpenAI Responses key (gpt-5)",
        "openai-responses",
        ("sk-proj-compat-responses-first", "sk-proj-compat-responses-second"),
        lambda secrets, faults: ResponsesFake(secrets, faults, model="gpt-5"),
        "gpt-5",
        base_path="/v1",
        models=("gpt-5",),
    ),
)
