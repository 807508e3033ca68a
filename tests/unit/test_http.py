from __future__ import annotations

from claude_api import http


def test_it_takes_the_proxy_from_the_environment_unless_no_proxy_covers_the_host(monkeypatch):
    http.environment_proxy.cache_clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.corp.example")
    try:
        assert http.environment_proxy("https", "api.anthropic.com") == "http://proxy.internal:3128"
        assert http.environment_proxy("https", "llm.corp.example") == ""
        assert http.environment_proxy("http", "api.anthropic.com") == ""
    finally:
        http.environment_proxy.cache_clear()


def test_it_builds_explicit_timeouts_for_every_phase():
    timeout = http.timeout_for(5, 600)
    assert timeout.as_dict() == {"connect": 5, "read": 600, "write": 60.0, "pool": 5}
