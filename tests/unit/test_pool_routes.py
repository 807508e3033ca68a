from __future__ import annotations

from typing import Any

import pytest

from accounts import catalog
from accounts.cooldown import QuotaRecord
from accounts.pool import (
    MAX_CACHED_ROUTES,
    ClientKeyView,
    CredentialView,
    ModelRoute,
    ProxyConfig,
    QuotaBoard,
    Route,
    Secret,
    Snapshot,
)

NOW = 1_700_000_000.0


def credential(
    credential_id: int = 1,
    *,
    provider: str = "anthropic",
    models: list[str | tuple[str, str]] | None = None,
    prefix: str = "",
    excluded: tuple[str, ...] = (),
    priority: int = 0,
    weight: int = 1,
    **fields: Any,
) -> CredentialView:
    routes = tuple(
        ModelRoute(upstream=m, alias=m) if isinstance(m, str) else ModelRoute(*m)
        for m in models or []
    )
    values: dict[str, Any] = {
        "credential_id": credential_id,
        "provider": provider,
        "label": f"cred-{credential_id}",
        "secret": Secret("sk-ant-api03-secret"),
        "base_url": "https://api.anthropic.com",
        "headers": {},
        "proxy_url": "",
        "priority": priority,
        "weight": weight,
        "prefix": prefix,
        "routes": routes,
        "excluded": excluded,
        "disable_cooling": None,
        "request_retry": None,
    }
    values.update(fields)
    return CredentialView(**values)


def snapshot(*credentials: CredentialView, **config: Any) -> Snapshot:
    return Snapshot(1, ProxyConfig(**config), credentials, {})


# resolve: aliases --------------------------------------------------------------------------


def test_it_maps_an_alias_to_its_upstream_name() -> None:
    view = credential(models=[("claude-opus-4-6", "opus")])
    assert view.resolve("opus", False) == "claude-opus-4-6"
    assert view.resolve("OPUS", False) == "claude-opus-4-6"


def test_it_serves_the_upstream_name_of_an_aliased_model_too() -> None:
    view = credential(models=[("claude-opus-4-6", "opus")])
    assert view.resolve("claude-opus-4-6", False) == "claude-opus-4-6"
    assert view.resolve("Claude-Opus-4-6", False) == "claude-opus-4-6"


def test_it_prefers_an_alias_over_another_route_s_upstream_name() -> None:
    # "fast" is the alias of one route and the upstream name of another.
    view = credential(models=[("claude-haiku-4-5", "fast"), ("fast", "other")])
    assert view.resolve("fast", False) == "claude-haiku-4-5"


def test_it_serves_only_listed_models_when_models_are_listed() -> None:
    view = credential(models=["claude-sonnet-4-6"])
    assert view.resolve("claude-sonnet-4-6", False) == "claude-sonnet-4-6"
    assert view.resolve("claude-opus-4-6", False) is None


# resolve: prefixes -------------------------------------------------------------------------


def test_it_serves_prefixed_names_on_the_credential_with_that_prefix() -> None:
    team = credential(1, prefix="team")
    other = credential(2, prefix="other")
    plain = credential(3)
    assert team.resolve("team/claude-x", False) == "claude-x"
    assert other.resolve("team/claude-x", False) is None
    assert plain.resolve("team/claude-x", False) is None


def test_it_serves_bare_names_on_a_prefixed_credential_unless_forced() -> None:
    team = credential(prefix="team")
    assert team.resolve("claude-x", False) == "claude-x"
    assert team.resolve("claude-x", True) is None
    assert team.resolve("team/claude-x", True) == "claude-x"


def test_it_ignores_force_on_a_credential_without_prefix() -> None:
    assert credential().resolve("claude-x", True) == "claude-x"


def test_it_combines_prefix_and_alias() -> None:
    team = credential(prefix="team", models=[("claude-opus-4-6", "opus")])
    assert team.resolve("team/opus", False) == "claude-opus-4-6"
    assert team.resolve("team/claude-opus-4-6", False) == "claude-opus-4-6"
    assert team.resolve("opus", False) == "claude-opus-4-6"
    assert team.resolve("opus", True) is None


def test_it_needs_the_whole_prefix() -> None:
    team = credential(prefix="team")
    assert team.resolve("teamclaude-x", False) is None
    assert team.resolve("tea/claude-x", False) is None


# resolve: exclusions -----------------------------------------------------------------------


def test_it_excludes_by_wildcard_on_the_upstream_name() -> None:
    view = credential(excluded=("claude-opus-*",))
    assert view.resolve("claude-opus-4-6", False) is None
    assert view.resolve("claude-sonnet-4-6", False) == "claude-sonnet-4-6"


def test_it_excludes_an_alias_whose_upstream_is_excluded() -> None:
    view = credential(models=[("claude-opus-4-6", "opus")], excluded=("*-opus-*",))
    assert view.resolve("opus", False) is None
    assert view.resolve("claude-opus-4-6", False) is None


def test_it_excludes_a_route_by_its_alias_under_either_name() -> None:
    view = credential(
        models=[("claude-opus-4-6", "opus"), ("claude-sonnet-4-6", "sonnet")],
        excluded=("OPUS",),
    )
    assert view.resolve("opus", False) is None
    # Listed as not served, so not served under its upstream name either.
    assert view.resolve("claude-opus-4-6", False) is None
    assert view.resolve("sonnet", False) == "claude-sonnet-4-6"
    assert [name for name, _ in view.listed_models(False)] == ["sonnet"]


def test_it_applies_exclusions_after_stripping_the_prefix() -> None:
    view = credential(prefix="team", excluded=("claude-haiku-*",))
    assert view.resolve("team/claude-haiku-4-5", False) is None
    assert view.resolve("team/claude-sonnet-4-6", False) == "claude-sonnet-4-6"


# resolve: families and provider names --------------------------------------------------------


def test_it_serves_the_anthropic_family_when_no_models_are_listed() -> None:
    view = credential(provider="anthropic")
    assert view.resolve("claude-sonnet-4-6", False) == "claude-sonnet-4-6"
    assert view.resolve("claude-released-tomorrow", False) == "claude-released-tomorrow"
    assert view.resolve("gemini-2.5-pro", False) is None
    assert view.resolve("gpt-4o", False) is None
    assert view.resolve("claude-x/evil", False) is None


def test_it_serves_the_gemini_family_when_no_models_are_listed() -> None:
    view = credential(provider="gemini")
    assert view.resolve("gemini-2.5-pro", False) == "gemini-2.5-pro"
    assert view.resolve("claude-sonnet-4-6", False) is None


def test_it_serves_nothing_on_openai_unless_listed() -> None:
    assert credential(provider="openai").resolve("gpt-4o", False) is None
    assert credential(provider="openai").resolve("claude-sonnet-4-6", False) is None
    listed = credential(provider="openai", models=["gpt-4o"])
    assert listed.resolve("gpt-4o", False) == "gpt-4o"


def test_it_serves_openrouter_style_names_listed_explicitly() -> None:
    view = credential(provider="openai", models=["anthropic/claude-3.5", "openai/gpt-4o"])
    assert view.resolve("anthropic/claude-3.5", False) == "anthropic/claude-3.5"
    assert view.resolve("openai/gpt-4o", False) == "openai/gpt-4o"
    assert view.resolve("claude-3.5", False) is None
    aliased = credential(provider="openai", models=[("anthropic/claude-3.5", "claude-3.5")])
    assert aliased.resolve("claude-3.5", False) == "anthropic/claude-3.5"


def test_it_serves_openrouter_style_names_behind_a_prefix() -> None:
    view = credential(provider="openai", prefix="or", models=["anthropic/claude-3.5"])
    assert view.resolve("or/anthropic/claude-3.5", False) == "anthropic/claude-3.5"
    assert view.resolve("or/anthropic/claude-3.5", True) == "anthropic/claude-3.5"
    assert view.resolve("anthropic/claude-3.5", True) is None


# listed_models -----------------------------------------------------------------------------


def test_it_lists_aliases() -> None:
    view = credential(models=[("claude-opus-4-6", "opus"), "claude-sonnet-4-6"])
    listed = view.listed_models(False)
    assert [(name, route.upstream) for name, route in listed] == [
        ("opus", "claude-opus-4-6"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
    ]


def test_it_lists_the_catalogue_when_no_models_are_listed() -> None:
    names = [name for name, _ in credential(provider="anthropic").listed_models(False)]
    assert names == [m.id for m in catalog.ANTHROPIC_MODELS]
    entry = dict(credential(provider="gemini").listed_models(False))["gemini-2.5-pro"]
    assert entry.display_name == "Gemini 2.5 Pro"
    assert entry.max_input_tokens == 1_048_576
    assert credential(provider="openai").listed_models(False) == []


def test_it_lists_prefixed_and_bare_names() -> None:
    view = credential(prefix="team", models=[("claude-opus-4-6", "opus")])
    assert [name for name, _ in view.listed_models(False)] == ["team/opus", "opus"]
    assert [name for name, _ in view.listed_models(True)] == ["team/opus"]


def test_it_leaves_excluded_models_out_of_the_list() -> None:
    view = credential(excluded=("claude-opus-*", "*haiku*"))
    names = [name for name, _ in view.listed_models(False)]
    assert names
    assert not [n for n in names if "opus" in n or "haiku" in n]


def test_it_lists_only_names_it_resolves() -> None:
    views = [
        credential(prefix="team", models=[("claude-opus-4-6", "opus")], excluded=("x*",)),
        credential(provider="gemini", excluded=("*flash*",)),
        credential(provider="openai", models=["anthropic/claude-3.5"]),
    ]
    for view in views:
        for force in (False, True):
            for name, route in view.listed_models(force):
                assert view.resolve(name, force) == route.upstream


# Snapshot.routes_for -----------------------------------------------------------------------


def test_it_orders_routes_by_priority_then_id() -> None:
    snap = snapshot(
        credential(4, priority=0),
        credential(3, priority=5),
        credential(1, priority=0),
        credential(2, priority=5),
        credential(5, provider="gemini", priority=9),
    )
    routes = snap.routes_for("claude-sonnet-4-6")
    assert [r.credential_id for r in routes] == [2, 3, 1, 4]
    assert {r.upstream_model for r in routes} == {"claude-sonnet-4-6"}


def test_it_maps_each_route_to_its_upstream_name() -> None:
    snap = snapshot(
        credential(1, models=[("claude-opus-4-6", "opus")]),
        credential(2, models=[("claude-opus-4-5-20251101", "opus")]),
        credential(3, models=["claude-sonnet-4-6"]),
    )
    assert [(r.credential_id, r.upstream_model) for r in snap.routes_for("opus")] == [
        (1, "claude-opus-4-6"),
        (2, "claude-opus-4-5-20251101"),
    ]


def test_it_honours_force_model_prefix() -> None:
    creds = (credential(1, prefix="team"), credential(2))
    assert [r.credential_id for r in snapshot(*creds).routes_for("claude-x")] == [1, 2]
    forced = snapshot(*creds, force_model_prefix=True)
    assert [r.credential_id for r in forced.routes_for("claude-x")] == [2]
    assert [r.credential_id for r in forced.routes_for("team/claude-x")] == [1]


def test_it_caches_routes() -> None:
    snap = snapshot(credential(1))
    first = snap.routes_for("claude-x")
    assert snap.routes_for("claude-x") is first
    assert snap.routes_for("nope") == ()
    assert snap.routes_for("nope") is snap.routes_for("nope")


def test_it_bounds_the_route_cache() -> None:
    snap = snapshot(credential(1))
    for n in range(MAX_CACHED_ROUTES + 10):
        snap.routes_for(f"claude-{n}")
    assert len(snap._routes) <= MAX_CACHED_ROUTES


def test_it_exposes_the_credential_through_the_route() -> None:
    view = credential(7, priority=3, weight=4)
    route = Route(view, "claude-x")
    assert (route.credential_id, route.priority, route.weight) == (7, 3, 4)


def test_it_finds_a_credential_by_id() -> None:
    one, two = credential(1), credential(2)
    snap = snapshot(one, two)
    assert snap.credential(2) is two
    assert snap.credential(3) is None


# ProxyConfig, ClientKeyView, Secret -----------------------------------------------------------


def test_it_lets_the_credential_override_cooling_and_retries() -> None:
    config = ProxyConfig(disable_cooling=True, request_retry=3)
    assert config.cooling_disabled_for(credential())
    assert not config.cooling_disabled_for(credential(disable_cooling=False))
    assert ProxyConfig().cooling_disabled_for(credential(disable_cooling=True))
    assert config.retry_rounds_for(credential()) == 3
    assert config.retry_rounds_for(credential(request_retry=0)) == 0


def test_it_limits_client_keys_to_their_models() -> None:
    free = ClientKeyView(1, "alice", "sk-px-a", "d1", ())
    limited = ClientKeyView(2, "bob", "sk-px-b", "d2", ("claude-sonnet-*", "opus"))
    assert free.may_use("anything")
    assert limited.may_use("Claude-Sonnet-4-6")
    assert limited.may_use("opus")
    assert not limited.may_use("claude-opus-4-6")


def test_it_hides_secrets() -> None:
    secret = Secret("sk-ant-oat01-very-secret")
    assert "very-secret" not in repr(secret)
    assert "very-secret" not in str(secret)
    assert "very-secret" not in repr(credential(secret=secret))
    assert secret.reveal() == "sk-ant-oat01-very-secret"
    assert secret.is_oauth_token
    assert not Secret("sk-ant-api03-x").is_oauth_token


# QuotaBoard.blocking ------------------------------------------------------------------------


def cooling(until: float, reason: str = "rate_limited") -> QuotaRecord:
    return QuotaRecord(status="cooling", reason=reason, next_retry_at=until, last_error="e")


def test_it_blocks_a_model_until_its_deadline() -> None:
    board = QuotaBoard()
    board.put(1, "claude-x", cooling(NOW + 30))
    assert board.blocking(1, "claude-x", NOW) == cooling(NOW + 30)
    assert board.blocking(1, "claude-y", NOW) is None
    assert board.blocking(2, "claude-x", NOW) is None
    assert board.blocking(1, "claude-x", NOW + 30) is None


def test_it_blocks_every_model_of_a_credential_wide_record() -> None:
    board = QuotaBoard()
    board.put(1, "", cooling(NOW + 3600, "credential_quota"))
    board.put(1, "claude-x", cooling(NOW + 10))
    blocking = board.blocking(1, "claude-x", NOW)
    assert blocking is not None and blocking.reason == "credential_quota"
    assert board.blocking(1, "claude-anything", NOW) is not None
    assert board.blocking(2, "claude-x", NOW) is None


def test_it_falls_back_to_the_model_record_when_the_credential_record_expired() -> None:
    board = QuotaBoard()
    board.put(1, "", cooling(NOW - 1))
    board.put(1, "claude-x", cooling(NOW + 10))
    assert board.blocking(1, "claude-x", NOW) == cooling(NOW + 10)


def test_it_never_blocks_on_an_expired_or_unblocking_record() -> None:
    board = QuotaBoard()
    board.put(1, "claude-x", cooling(NOW - 1))
    board.put(1, "claude-y", QuotaRecord(status="ok", last_error="e", last_status=503))
    assert board.blocking(1, "claude-x", NOW) is None
    assert board.blocking(1, "claude-y", NOW) is None
    assert board.get(1, "claude-y") is not None


@pytest.mark.parametrize("record", [None, QuotaRecord()])
def test_it_drops_clean_records(record: QuotaRecord | None) -> None:
    board = QuotaBoard()
    board.put(1, "claude-x", cooling(NOW + 10))
    board.put(1, "claude-x", record)
    assert board.get(1, "claude-x") is None
    assert board.records == {}
