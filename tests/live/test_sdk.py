"""The official anthropic SDK as the client, daphne as the server, the fake as the upstream."""

from __future__ import annotations

import anthropic
import pytest

from tests.conftest import make_client_key, make_credential, set_proxy_settings
from tests.fakes.upstream import Respond

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sdk(daphne, upstream, sdk_client):
    make_credential(
        base_url=upstream.url,
        models=[("claude-opus-4-8", "claude-opus-4-8"), ("claude-sonnet-4-6", "sonnet")],
    )
    set_proxy_settings(request_retry=0)
    return sdk_client(daphne.url, make_client_key())


def test_it_serves_messages_create(sdk, upstream):
    message = sdk.messages.create(
        model="sonnet", max_tokens=32, messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.content[0].text == "Hello from the fake upstream"
    assert message.model == "sonnet"
    sent = upstream.requests[-1]
    assert sent.json()["model"] == "claude-sonnet-4-6"
    # SDK 2.x sends the key as a Bearer token and the 2026-10-21 version; both pass through.
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.headers["x-api-key"].startswith("sk-ant-api03-")


def test_it_serves_a_stream_to_get_final_message(sdk):
    with sdk.messages.stream(
        model="claude-opus-4-8", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == "Hello from the fake upstream"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 5


def test_it_counts_tokens(sdk, upstream):
    upstream.script("/v1/messages/count_tokens", Respond.json({"input_tokens": 77}))
    count = sdk.messages.count_tokens(
        model="sonnet", messages=[{"role": "user", "content": "Hello"}]
    )
    assert count.input_tokens == 77
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"


def test_it_lists_models(sdk):
    ids = [model.id for model in sdk.models.list()]
    assert ids == ["claude-opus-4-8", "sonnet"]
    assert sdk.models.retrieve("sonnet").display_name == "sonnet"


def test_it_raises_the_sdk_error_classes(sdk, daphne, upstream):
    with (
        anthropic.Anthropic(base_url=daphne.url, api_key="sk-px-wrong", max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError),
    ):
        stranger.messages.create(
            model="sonnet", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(
            model="nope-1", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    upstream.script(
        "/v1/messages", Respond.error(429, "rate_limit_error", "slow", headers={"retry-after": "7"})
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(
            model="sonnet", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["retry-after"] == "7"
    make_credential("second", base_url=upstream.url + "/b")  # a fresh credential for the next case
    upstream.script("/v1/messages", Respond.error(529, "overloaded_error", "Overloaded"))
    upstream.script("/b/v1/messages", Respond.error(529, "overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.OverloadedError):
        sdk.messages.create(
            model="claude-opus-4-8", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(
            model="sonnet", max_tokens=-1, messages=[{"role": "user", "content": "x"}]
        )
