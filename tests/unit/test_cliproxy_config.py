from __future__ import annotations

from pathlib import Path

import pytest

from accounts.cliproxy_config import ConfigError, ModelSpec, parse, parse_duration

SAMPLE = Path(__file__).parent.parent / "fixtures" / "cliproxyapi" / "config.yaml"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def test_it_reads_the_sample_config():
    plan = parse(SAMPLE.read_text())

    assert [key.name for key in plan.client_keys] == ["imported-1", "imported-2", "imported-3"]
    assert [spec.label for spec in plan.credentials] == [
        "claude #1",
        "claude #2",
        "gemini #1",
        "openrouter #1",
        "openrouter #2",
    ]
    assert [spec.provider for spec in plan.credentials] == [
        "anthropic",
        "anthropic",
        "gemini",
        "openai",
        "openai",
    ]
    assert plan.sections == [
        "api-keys",
        "claude-api-key",
        "gemini-api-key",
        "openai-compatibility",
    ]


def test_it_maps_a_claude_entry():
    first = parse(SAMPLE.read_text()).credentials[0]

    assert first.fields == {
        "priority": 10,
        "prefix": "team",
        "extra_headers": {"X-Team": "platform"},
        "disable_cooling": True,
        "request_retry": 1,
        "base_url": "",
        "proxy_url": "",
        "weight": 3,
        "excluded_models": "claude-3-*\n*haiku*",
    }
    assert first.models == [
        ModelSpec("claude-sonnet-4-6", "sonnet", "Claude Sonnet", 200000),
        ModelSpec("claude-opus-4-6", "opus"),
    ]
    assert first.identity == "claude-api-key||sk-ant-api03-first-key-0000000001"


def test_it_keeps_secrets_out_of_reprs():
    plan = parse(SAMPLE.read_text())

    assert "sk-ant-api03" not in repr(plan)
    assert "cpa-client-key" not in repr(plan)


def test_it_treats_a_negative_request_retry_as_inherit():
    second = parse(SAMPLE.read_text()).credentials[1]

    assert second.fields["request_retry"] is None
    assert second.fields["disable_cooling"] is None
    assert second.fields["base_url"] == "https://gateway.example.com"
    assert second.fields["proxy_url"] == "direct"


def test_it_makes_one_credential_per_openai_key_entry():
    plan = parse(SAMPLE.read_text())
    first, second = plan.credentials[3:]

    assert first.kind == "openai-compatibility:openrouter"
    assert first.fields["base_url"] == second.fields["base_url"] == "https://openrouter.ai/api/v1"
    assert (first.fields["weight"], second.fields["weight"]) == (5, 1)
    assert (first.fields["proxy_url"], second.fields["proxy_url"]) == ("http://10.0.0.1:3128", "")
    assert first.fields["enabled"] is True
    assert first.fields["extra_headers"] == {"HTTP-Referer": "https://proxy.example.com"}
    assert (
        [m.alias for m in first.models]
        == [m.alias for m in second.models]
        == [
            "kimi-k2",
            "deepseek",
        ]
    )


def test_it_makes_a_keyless_credential_for_an_openai_provider_without_keys():
    plan = parse(
        "openai-compatibility:\n"
        "  - name: local\n"
        "    base-url: http://127.0.0.1:8000/v1\n"
        "    disabled: true\n"
    )

    (spec,) = plan.credentials
    assert (spec.label, spec.api_key, spec.fields["enabled"]) == ("local", "", False)


def test_it_accepts_the_older_api_keys_list_of_an_openai_provider():
    plan = parse(
        "openai-compatibility:\n"
        "  - name: router\n"
        "    base-url: https://r.example/v1\n"
        "    api-keys: [k1, k2]\n"
    )

    assert [(spec.label, spec.path) for spec in plan.credentials] == [
        ("router #1", "openai-compatibility[0].api-keys[0]"),
        ("router #2", "openai-compatibility[0].api-keys[1]"),
    ]


def test_it_maps_the_global_settings():
    plan = parse(SAMPLE.read_text())

    assert plan.settings == {
        "request_retry": 2,
        "max_retry_credentials": 3,
        "max_retry_interval": 20,
        "disable_cooling": False,
        "transient_error_cooldown_seconds": 60,
        "nonstream_keepalive_interval": 10,
        "passthrough_headers": True,
        "proxy_url": "socks5://127.0.0.1:1080",
        "force_model_prefix": True,
        "stream_keepalive_seconds": 15,
        "bootstrap_retries": 1,
        "routing_strategy": "weighted-round-robin",
        "session_affinity": True,
        "session_affinity_ttl": 1800,
    }
    assert plan.settings_paths["stream_keepalive_seconds"] == "streaming.keepalive-seconds"


@pytest.mark.parametrize(("value", "stored"), [(0, 60), (-1, -1), (-30, -1), (15, 15)])
def test_it_maps_transient_cooldown_like_cliproxyapi(value, stored):
    plan = parse(f"transient-error-cooldown-seconds: {value}\n")

    assert plan.settings == {"transient_error_cooldown_seconds": stored}


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("round-robin", "round-robin"),
        ("RoundRobin", "round-robin"),
        ("rr", "round-robin"),
        ("fill-first", "fill-first"),
        ("fillfirst", "fill-first"),
        ("ff", "fill-first"),
        ("weighted-round-robin", "weighted-round-robin"),
        ("weightedroundrobin", "weighted-round-robin"),
        ("wrr", "weighted-round-robin"),
    ],
)
def test_it_accepts_every_strategy_spelling(name, stored):
    assert parse(f"routing:\n  strategy: {name}\n").settings == {"routing_strategy": stored}


def test_it_rejects_an_unknown_strategy():
    assert "routing.strategy: unknown strategy 'random'" in error_of(
        "routing:\n  strategy: random\n"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1h", 3600), ("30m", 1800), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400), (600, 600)],
)
def test_it_parses_go_durations(value, seconds):
    assert parse_duration(value, "ttl") == seconds


@pytest.mark.parametrize("value", ["soon", "1d", "", True, 1.5])
def test_it_rejects_bad_durations(value):
    with pytest.raises(ConfigError, match="ttl: expected a duration"):
        parse_duration(value, "ttl")


def test_it_falls_back_to_an_hour_for_a_zero_affinity_ttl():
    assert parse("routing:\n  session-affinity-ttl: 0\n").settings == {"session_affinity_ttl": 3600}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "claude-api-key:\n  - api-key: a\n  - api-key: b\n    priority: high\n",
            "claude-api-key[1].priority: expected an integer, got 'high'",
        ),
        ("request-retry: true\n", "request-retry: expected an integer, got true"),
        ("request-retry: '3'\n", "request-retry: expected an integer, got '3'"),
        ("disable-cooling: 'yes'\n", "disable-cooling: expected true or false, got 'yes'"),
        ("proxy-url: 8080\n", "proxy-url: expected a string, got 8080"),
        ("api-keys: abc\n", "api-keys: expected a list, got 'abc'"),
        ("api-keys: [abc, 3]\n", "api-keys[1]: expected a string, got 3"),
        ("streaming: 5\n", "streaming: expected a mapping, got 5"),
        (
            "gemini-api-key:\n  - api-key: k\n    headers: [a]\n",
            "gemini-api-key[0].headers: expected a mapping, got a list",
        ),
        (
            "gemini-api-key:\n  - api-key: k\n    headers:\n      X-N: 5\n",
            "gemini-api-key[0].headers.X-N: expected a string, got 5",
        ),
        (
            "claude-api-key:\n  - api-key: k\n    models:\n      - name: m\n"
            "        max-context-length: big\n",
            "claude-api-key[0].models[0].max-context-length: expected an integer, got 'big'",
        ),
        (
            "claude-api-key:\n  - api-key: k\n    excluded-models: claude-*\n",
            "claude-api-key[0].excluded-models: expected a list, got 'claude-*'",
        ),
        (
            "openai-compatibility:\n  - name: x\n    base-url: http://h/v1\n"
            "    api-key-entries:\n      - api-key: k\n        weight: heavy\n",
            "openai-compatibility[0].api-key-entries[0].weight: expected an integer, got 'heavy'",
        ),
        (
            "claude-api-key:\n  - api-key: k\n    prefix: a/b\n",
            "claude-api-key[0].prefix: a prefix cannot contain '/'",
        ),
        ("- just\n- a list\n", "expected a mapping of settings at the top level, got a list"),
    ],
)
def test_it_names_the_key_path_of_a_wrong_type(text, message):
    assert message in error_of(text)


def test_it_reports_the_line_of_bad_yaml():
    message = error_of("request-retry: 3\nrouting:\n  strategy: [round-robin\n")

    assert message.startswith("invalid YAML at line")
    assert "line 4" in message or "line 3" in message


def test_it_shows_the_offending_yaml_line():
    message = error_of("request-retry: 3\nport: 8317\n  bad: indent\n")

    assert "line 3" in message
    assert "'bad: indent'" in message


def test_it_rejects_a_key_given_twice():
    message = error_of("request-retry: 3\nrequest-retry: 4\n")

    assert "line 2" in message
    assert "'request-retry' appears twice" in message


def test_it_warns_about_unknown_and_ignored_keys():
    plan = parse(SAMPLE.read_text())

    assert "request-retries: unknown key, ignored" in plan.warnings
    assert "port: ignored: not applicable to this proxy" in plan.warnings
    assert "remote-management: ignored: not applicable to this proxy" in plan.warnings
    assert "claude-api-key[0].cloak: ignored: this proxy never cloaks requests" in plan.warnings
    assert (
        "claude-api-key[0].models[1].force-mapping: ignored: not applicable to this proxy"
        in plan.warnings
    )


def test_it_warns_about_unknown_keys_inside_entries_and_sections():
    plan = parse(
        "routing:\n  stratgy: ff\n"
        "claude-api-key:\n  - api-key: k\n    priorty: 3\n"
        "    models:\n      - name: m\n        alais: x\n"
    )

    assert plan.warnings == [
        "routing.stratgy: unknown key, ignored",
        "claude-api-key[0].priorty: unknown key, ignored",
        "claude-api-key[0].models[0].alais: unknown key, ignored",
    ]


def test_it_skips_entries_that_cannot_work():
    plan = parse(
        "api-keys: ['', same, same]\n"
        "claude-api-key:\n  - priority: 1\n  - api-key: k\n  - api-key: k\n"
        "openai-compatibility:\n  - name: nourl\n  - base-url: http://h/v1\n"
    )

    assert [key.path for key in plan.client_keys] == ["api-keys[1]"]
    assert [spec.path for spec in plan.credentials] == ["claude-api-key[1]"]
    assert plan.warnings == [
        "api-keys[0]: empty key, skipped",
        "api-keys[2]: the same key appears earlier, skipped",
        "claude-api-key[0]: neither api-key nor base-url, skipped",
        "claude-api-key[2]: the same key and base-url as claude-api-key[1], skipped",
        "openai-compatibility[0]: no base-url, skipped",
        "openai-compatibility[1]: no name, skipped",
    ]


def test_it_skips_headers_copied_from_the_client():
    plan = parse(
        "claude-api-key:\n  - api-key: k\n    headers:\n"
        "      X-Session: $X-Claude-Code-Session-Id\n      X-Team: a\n"
    )

    assert plan.credentials[0].fields["extra_headers"] == {"X-Team": "a"}
    assert "not supported" in plan.warnings[0]


def test_it_clamps_negative_counts_to_zero():
    plan = parse(
        "max-retry-credentials: -1\nmax-retry-interval: -5\n"
        "streaming:\n  keepalive-seconds: -1\n  bootstrap-retries: -2\n"
    )

    assert plan.settings == {
        "max_retry_credentials": 0,
        "max_retry_interval": 0,
        "stream_keepalive_seconds": 0,
        "bootstrap_retries": 0,
    }


def test_it_treats_null_values_as_absent():
    plan = parse("request-retry:\napi-keys:\nrouting:\n  strategy:\n")

    assert plan.settings == {}
    assert plan.client_keys == []


def test_it_reads_an_empty_strategy_as_the_default():
    assert parse("routing:\n  strategy: ''\n").settings == {"routing_strategy": "round-robin"}


def test_it_accepts_an_empty_file():
    plan = parse("# nothing yet\n")

    assert (plan.settings, plan.credentials, plan.warnings) == ({}, [], [])


def test_it_follows_yaml_anchors_and_merge_keys():
    plan = parse(
        "x-defaults: &defaults\n  priority: 3\n  prefix: team\n"
        "claude-api-key:\n"
        "  - <<: *defaults\n    api-key: k1\n"
        "  - <<: *defaults\n    api-key: k2\n    priority: 4\n"
    )

    assert [spec.fields["priority"] for spec in plan.credentials] == [3, 4]
    assert [spec.fields["prefix"] for spec in plan.credentials] == ["team", "team"]
    assert plan.warnings == ["x-defaults: unknown key, ignored"]


def test_it_imports_codex_api_keys_as_responses_credentials():
    plan = parse(
        """
codex-api-key:
  - api-key: sk-proj-abc
    base-url: https://api.openai.com/v1
    prefix: oa
    models:
      - name: gpt-5.2
        alias: claude-opus-4-8
    websockets: true
"""
    )
    (spec,) = plan.credentials
    assert (spec.provider, spec.label, spec.api_key) == (
        "openai-responses",
        "responses #1",
        "sk-proj-abc",
    )
    assert spec.fields["base_url"] == "https://api.openai.com/v1" and spec.fields["prefix"] == "oa"
    assert spec.models == [ModelSpec("gpt-5.2", "claude-opus-4-8")]
    assert any("websockets" in warning for warning in plan.warnings)
