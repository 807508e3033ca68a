"""Anthropic upstream: the identity translation.

The body goes out as received, byte for byte, unless the model name must change (alias →
upstream name) or the history carries thinking blocks another family signed (Anthropic rejects
those with 400 "Invalid signature"). Responses come back untouched except for the model name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from claude_api.errors import UpstreamError, envelope_from_upstream
from claude_api.providers.accounts import account_token, note_windows, uses_account
from claude_api.providers.base import (
    ERROR_TYPE_STATUSES,
    ESTIMATE_HEADER,
    EventStream,
    Provider,
    Reply,
    UpstreamCall,
    dumps,
    lower_headers,
    post,
    read_all,
    sse_events,
)
from claude_api.sse import SSEEvent
from claude_api.translate.common import SIGNATURE_TAGS, content_blocks, thinking_signature_family
from claude_api.translate.tokens import estimate_input_tokens

DEFAULT_VERSION = "2023-06-01"
OAUTH_BETA = "oauth-2025-04-20"
# Client headers worth forwarding: they select API behaviour or identify the client, and
# subscription (OAuth) accounts expect to see Claude Code's own.
FORWARDED_HEADERS = ("user-agent", "x-app", "x-client-request-id", "anthropic-workspace-id")
FORWARDED_PREFIXES = ("anthropic-", "x-stainless-", "x-claude-code-")
NOT_FORWARDED = frozenset({"anthropic-version", "anthropic-beta"})
_TAG_BYTES = tuple(tag.encode() for tag in SIGNATURE_TAGS)


class AnthropicProvider(Provider):
    name = "anthropic"

    async def send(self, call: UpstreamCall) -> Reply:
        response = await post(
            call,
            self._url(call, "/v1/messages"),
            headers=await self._headers(call, streaming=False),
            content=upstream_body(call),
        )
        body = await read_all(response, call.credential.label)
        headers = lower_headers(response)
        note_windows(call, headers)
        if response.status_code >= 400:
            raise upstream_error(response.status_code, body, headers)
        if call.request.model != call.upstream_model:
            body = rename_model(body, call.request.model)
        return Reply(response.status_code, body, headers)

    async def stream(self, call: UpstreamCall) -> EventStream:
        response = await post(
            call,
            self._url(call, "/v1/messages"),
            headers=await self._headers(call, streaming=True),
            content=upstream_body(call),
        )
        if uses_account(call):
            note_windows(call, lower_headers(response))
        if response.status_code >= 400:
            body = await read_all(response, call.credential.label)
            raise upstream_error(response.status_code, body, lower_headers(response))
        rename_to = call.request.model if call.request.model != call.upstream_model else None
        return EventStream(relay_events(response, call.credential.label, rename_to), response)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        response = await post(
            call,
            self._url(call, "/v1/messages/count_tokens"),
            headers=await self._headers(call, streaming=False),
            content=upstream_body(call),
        )
        body = await read_all(response, call.credential.label)
        headers = lower_headers(response)
        if response.status_code == 404:
            # An Anthropic-compatible server without the endpoint: an estimate serves the client
            # better than a 404 (on which Claude Code falls back to paid max_tokens=1 calls).
            tokens = estimate_input_tokens(call.request.body)
            return Reply(200, dumps({"input_tokens": tokens}), {}, {ESTIMATE_HEADER: "estimate"})
        if response.status_code >= 400:
            raise upstream_error(response.status_code, body, headers)
        return Reply(response.status_code, body, headers)

    @staticmethod
    def _url(call: UpstreamCall, path: str) -> str:
        base = call.credential.base_url
        if base.endswith("/v1"):
            base = base[:-3]
        return base + path + ("?beta=true" if call.request.beta_query else "")

    @staticmethod
    async def _headers(call: UpstreamCall, *, streaming: bool) -> dict[str, str]:
        if uses_account(call):
            # A subscription account: its current OAuth token as Bearer, with the OAuth beta.
            token = await account_token(call)
            secret, oauth = token.access.reveal(), True
        else:
            secret = call.credential.secret.reveal()
            oauth = call.credential.secret.is_oauth_token
        return upstream_headers(
            call.request.headers,
            credential_headers=call.credential.headers,
            secret=secret,
            oauth=oauth,
            streaming=streaming,
        )


def upstream_headers(
    client_headers: Any,
    *,
    credential_headers: dict[str, str],
    secret: str,
    oauth: bool,
    streaming: bool,
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in client_headers.items():
        lowered = name.lower()
        if lowered in NOT_FORWARDED:
            continue
        if lowered in FORWARDED_HEADERS or lowered.startswith(FORWARDED_PREFIXES):
            headers[lowered] = value
    headers["anthropic-version"] = client_headers.get("anthropic-version") or DEFAULT_VERSION
    betas = split_betas(client_headers.get("anthropic-beta", ""))
    for name, value in credential_headers.items():
        if name.lower() == "anthropic-beta":
            betas += split_betas(value)
        else:
            headers[name.lower()] = value
    if oauth:
        betas.append(OAUTH_BETA)
        headers["authorization"] = f"Bearer {secret}"
    else:
        headers["x-api-key"] = secret
    if betas:
        headers["anthropic-beta"] = ",".join(dict.fromkeys(betas))
    headers["content-type"] = "application/json"
    headers["accept"] = "text/event-stream" if streaming else "application/json"
    # Compressed streams get buffered by the compressor; plain bytes flow event by event.
    headers["accept-encoding"] = "identity" if streaming else "gzip, deflate"
    return headers


def split_betas(value: str) -> list[str]:
    return [beta.strip() for beta in value.split(",") if beta.strip()]


def upstream_body(call: UpstreamCall) -> bytes:
    request = call.request
    rename = request.model != call.upstream_model
    foreign = any(tag in request.raw for tag in _TAG_BYTES) and has_foreign_thinking(request.body)
    if not rename and not foreign:
        return request.raw
    body = dict(request.body)
    body["model"] = call.upstream_model
    if foreign:
        body["messages"] = strip_foreign_thinking(body.get("messages") or [])
    return dumps(body)


def is_foreign_thinking(block: Any) -> bool:
    """A thinking block Gemini/OpenAI produced (our tagged signatures): Anthropic rejects it."""
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and thinking_signature_family(block.get("signature")) not in (None, "anthropic")
    )


def has_foreign_thinking(body: dict[str, Any]) -> bool:
    return any(
        is_foreign_thinking(block)
        for message in body.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "assistant"
        for block in content_blocks(message.get("content"))
    )


def strip_foreign_thinking(messages: list[Any]) -> list[Any]:
    cleaned = []
    for message in messages:
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and isinstance(message.get("content"), list)
        ):
            blocks = [block for block in message["content"] if not is_foreign_thinking(block)]
            message = {**message, "content": blocks or [{"type": "text", "text": "(no content)"}]}
        cleaned.append(message)
    return cleaned


def rename_model(body: bytes, model: str) -> bytes:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(data, dict) and "model" in data:
        data["model"] = model
        return dumps(data)
    return body


def upstream_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    error_type, message, code = envelope_from_upstream(status, body)
    return UpstreamError(
        message,
        status=status,
        error_type=error_type,
        upstream_headers=headers,
        code=code,
        raw_body=body[:4096],
    )


def stream_error(data: bytes) -> UpstreamError:
    """An ``event: error`` inside an upstream stream."""
    error_type, message, code = envelope_from_upstream(500, data)
    status = ERROR_TYPE_STATUSES.get(error_type, 500)
    return UpstreamError(message, status=status, error_type=error_type, code=code)


async def relay_events(response: Any, label: str, rename_to: str | None) -> AsyncIterator[SSEEvent]:
    finished = False
    async for event in sse_events(response, label):
        name = event.name
        if not name:
            # A data-only event: name it after its type so clients (which need event: lines) see it.
            try:
                name = str(orjson.loads(event.data).get("type", ""))
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if not name:
                continue
            event = SSEEvent(name, event.data)
        if name == "error":
            raise stream_error(event.data)
        if name == "message_start" and rename_to:
            data = orjson.loads(event.data)
            if isinstance(data.get("message"), dict):
                data["message"]["model"] = rename_to
                event = SSEEvent(name, dumps(data))
        elif name == "message_stop":
            finished = True
        yield event
    if not finished:
        raise UpstreamError(
            f"The upstream stream ({label}) ended before message_stop.",
            status=0,
            error_type="api_error",
        )
