"""Replay every captured Claude Code request through the proxy (tests/fixtures/claude-code/)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import claude_code_fixtures, load_fixture, make_credential, read_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_pool")]

# Hop-by-hop and auth headers are the proxy's own business; everything else is the client's.
NOT_REPLAYED = {
    "x-api-key",
    "authorization",
    "connection",
    "content-length",
    "accept-encoding",
    "host",
}


def replay_headers(fixture: dict, key: str) -> dict[str, str]:
    headers = {k: v for k, v in fixture["headers"].items() if k.lower() not in NOT_REPLAYED}
    headers["x-api-key"] = key
    return headers


async def send(api, fixture: dict, body: dict):
    raw = json.dumps(body).encode()
    response = await api.client.post(
        f"{fixture['path']}?{fixture['query']}",
        raw,
        content_type="application/json",
        headers=replay_headers(fixture, api.key),
    )
    if response.streaming:
        await read_stream(response)
    return raw, response


@pytest.mark.parametrize("name", claude_code_fixtures())
async def test_it_forwards_each_claude_code_request_unchanged(api, upstream, name):
    fixture = load_fixture(name)
    make_credential(base_url=upstream.url)
    raw, response = await send(api, fixture, fixture["body"])
    assert response.status_code == 200
    sent = upstream.requests[-1]
    assert sent.path == fixture["path"]
    assert sent.query == {"beta": ["true"]}
    assert sent.body == raw  # byte for byte
    assert sent.headers["anthropic-version"] == fixture["headers"]["anthropic-version"]
    assert sent.headers["anthropic-beta"] == fixture["headers"]["anthropic-beta"]
    assert sent.headers["user-agent"] == fixture["headers"]["user-agent"]


@pytest.mark.parametrize("name", claude_code_fixtures())
async def test_it_changes_only_the_model_when_it_is_an_alias(api, upstream, name):
    fixture = load_fixture(name)
    make_credential(base_url=upstream.url, models=[("claude-upstream-x", fixture["body"]["model"])])
    await send(api, fixture, fixture["body"])
    sent = upstream.requests[-1].json()
    assert sent.pop("model") == "claude-upstream-x"
    expected = dict(fixture["body"])
    expected.pop("model")
    assert sent == expected


@pytest.mark.parametrize("name", claude_code_fixtures())
async def test_it_forwards_each_claude_code_request_unchanged_through_a_claude_account(
    api, oauth, name
):
    from tests.oauth_helpers import make_account, token_row

    fixture = load_fixture(name)
    credential = make_account(oauth)
    raw, response = await send(api, fixture, fixture["body"])
    assert response.status_code == 200  # the fake only answers Bearer + the OAuth beta
    sent = oauth.server.requests[-1]
    assert sent.body == raw  # Claude Code's own system prompt and metadata, byte for byte
    assert sent.headers["authorization"] == f"Bearer {token_row(credential).get_access_token()}"
    assert "x-api-key" not in sent.headers
    # Claude Code's betas as it sent them (none of the captures was an OAuth login), plus ours.
    assert sent.headers["anthropic-beta"] == fixture["headers"]["anthropic-beta"] + (
        ",oauth-2025-04-20"
    )
    assert sent.headers["user-agent"] == fixture["headers"]["user-agent"]
