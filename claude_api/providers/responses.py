"""The OpenAI Responses API (``POST {base}/responses``) as an upstream, for two credential kinds:

- ``openai-responses``: API keys (OpenAI, or any server that speaks Responses), Bearer key;
- ``codex``: ChatGPT subscription accounts at the Codex backend
  (``https://chatgpt.com/backend-api/codex``), the account's OAuth token as Bearer and the
  account's workspace as ``Chatgpt-Account-Id``.

Translation lives in ``claude_api.translate.openai_responses``. The upstream call always streams
(the Codex backend accepts nothing else) with ``store: false``; a non-streaming client gets the
message assembled from the translated events. No state stays upstream: the encrypted reasoning
comes back inside the thinking blocks' signatures, so any worker can serve the next turn.

Headers: only what the backend needs (the token, the account id) and what the client itself sent
(its ``User-Agent``). No invented client identity: no Codex ``Originator``, no Codex user agent.
An operator who needs another header sets it on the credential (extra headers).

count_tokens asks OpenAI's ``/responses/input_tokens`` for API keys and falls back to the local
estimate (marked as such) where there is no counter, as on the Codex backend.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from claude_api.errors import UpstreamError
from claude_api.providers.accounts import account_token, note_windows, uses_account
from claude_api.providers.base import (
    ESTIMATE_HEADER,
    EventStream,
    Provider,
    Reply,
    UpstreamCall,
    dumps,
    error_from_info,
    lower_headers,
    post,
    read_all,
    sse_events,
)
from claude_api.request import session_id
from claude_api.sse import SSEEvent
from claude_api.translate import openai_responses as responses
from claude_api.translate.common import Event, TranslatedStreamError
from claude_api.translate.tokens import estimate_input_tokens

# Client headers forwarded as they are: they describe the real client, truthfully.
FORWARDED_HEADERS = ("user-agent",)
# What /responses/input_tokens takes of a request (no stream, store, include or output limits).
COUNTED_FIELDS = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning"}
)
# A 400 naming the encrypted reasoning: it was issued to another account or backend and its
# signature does not say so (issued before signatures named their credential). The turn is
# retried once without earlier reasoning.
_ENCRYPTED_REFUSALS = ("encrypted content", "encrypted_content")


class ResponsesProvider(Provider):
    def __init__(self, *, codex: bool) -> None:
        self.codex = codex
        self.name = "codex" if codex else "openai-responses"

    async def send(self, call: UpstreamCall) -> Reply:
        response, translator = await self._open(call)
        opened = [response]
        events: list[Event] = []
        try:
            async for event in self._answer(call, response, translator, opened):
                events.append(event)
        finally:
            await opened[-1].aclose()
        return Reply(200, dumps(responses.assemble(events)), lower_headers(opened[-1]))

    async def stream(self, call: UpstreamCall) -> EventStream:
        response, translator = await self._open(call)

        async def encoded() -> AsyncIterator[SSEEvent]:
            opened = [response]
            try:
                async for name, payload in self._answer(call, response, translator, opened):
                    yield SSEEvent(name, dumps(payload))
            finally:
                if opened[-1] is not response:  # EventStream.aclose closes the first one
                    await opened[-1].aclose()

        return EventStream(encoded(), response)

    async def _answer(
        self,
        call: UpstreamCall,
        response: httpx.Response,
        translator: responses.StreamTranslator,
        opened: list[httpx.Response],
    ) -> AsyncIterator[Event]:
        """The translated events of ``response``. GPT models reason before their first output,
        often for many seconds and invisibly: a stream cut in that window (dropped, or closed
        before ``response.completed``) has given the client nothing, so it is opened again once
        on the same credential. A failure the backend reported (``response.failed``), a
        timeout, or a cut after the first output is raised as it is."""
        label = call.credential.label
        produced = False
        try:
            async for event in _translated(response, translator, label):
                produced = True
                yield event
            return
        except _StreamCut as cut:
            if produced:
                raise
            reason = cut.message
        await response.aclose()
        call.notes.append(
            {
                "outcome": "opened again",
                "status": 0,
                "reason": f"the stream was cut before its first output ({reason})",
            }
        )
        response, translator = await self._open(call)
        opened.append(response)
        async for event in _translated(response, translator, label):
            yield event

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        """OpenAI counts a Responses request at ``{base}/responses/input_tokens``; the Codex
        backend has no counter. Where there is none (404, or a server that refuses the call),
        the local estimate answers, marked as such: a failed count must not fail the client,
        which falls back to paid max_tokens=1 calls."""
        if not self.codex:
            counted = await self._count_upstream(call)
            if counted is not None:
                return counted
        tokens = estimate_input_tokens(call.request.body)
        return Reply(200, dumps({"input_tokens": tokens}), {}, {ESTIMATE_HEADER: "estimate"})

    async def _count_upstream(self, call: UpstreamCall) -> Reply | None:
        body = call.request.body
        payload = responses.build_request(
            body,
            upstream_model=call.upstream_model,
            options=responses.ResponsesOptions(codex=False, origin=_origin(call)),
            names=responses.tool_names(body),
            ids=responses.call_ids(body),
        )
        payload = {k: v for k, v in payload.items() if k in COUNTED_FIELDS}
        headers = await self._headers(call)
        headers["accept"] = "application/json"
        url = call.credential.base_url + "/responses/input_tokens"
        try:
            response = await post(call, url, headers=headers, content=dumps(payload))
        except UpstreamError:
            return None
        raw = await read_all(response, call.credential.label)
        if response.status_code in (401, 403):
            # A bad key is a bad key whatever the endpoint: let the pool know.
            info = responses.parse_error(response.status_code, raw, now=time.time())
            raise error_from_info(info, lower_headers(response))
        if response.status_code >= 400:
            return None
        try:
            tokens = orjson.loads(raw).get("input_tokens")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            return None
        return Reply(200, dumps({"input_tokens": tokens}), lower_headers(response))

    # -----------------------------------------------------------------------------------------

    async def _open(self, call: UpstreamCall) -> tuple[httpx.Response, responses.StreamTranslator]:
        """POST the translated request; return the 200 response (unread) and its translator."""
        body = call.request.body
        names = responses.tool_names(body)
        ids = responses.call_ids(body)
        payload = responses.build_request(
            body,
            upstream_model=call.upstream_model,
            options=responses.ResponsesOptions(
                codex=self.codex,
                stream=True,
                prompt_cache_key=_cache_key(call),
                origin=_origin(call),
            ),
            names=names,
            ids=ids,
        )
        headers = await self._headers(call)
        url = call.credential.base_url + "/responses"
        response = await post(call, url, headers=headers, content=dumps(payload))
        upstream_headers = lower_headers(response)
        note_windows(call, upstream_headers)
        if response.status_code >= 400:
            error = await _error(call, response)
            if _refuses_reasoning(error, payload):
                call.notes.append(
                    {
                        "outcome": "retried without earlier reasoning",
                        "status": error.upstream_status,
                        "reason": "the backend could not read reasoning issued elsewhere",
                    }
                )
                payload["input"] = [i for i in payload["input"] if i.get("type") != "reasoning"]
                response = await post(call, url, headers=headers, content=dumps(payload))
                note_windows(call, lower_headers(response))
                if response.status_code >= 400:
                    raise await _error(call, response)
            else:
                raise error
        translator = responses.StreamTranslator(
            model=call.request.model,
            names=names,
            ids=ids,
            now=time.time(),
            stop_sequences=responses.stop_sequences(body),
            origin=_origin(call),
        )
        return response, translator

    async def _headers(self, call: UpstreamCall) -> dict[str, str]:
        headers = {name.lower(): value for name, value in call.credential.headers.items()}
        for name in FORWARDED_HEADERS:
            value = call.request.headers.get(name)
            if value and name not in headers:
                headers[name] = value
        if uses_account(call):
            token = await account_token(call)
            headers["authorization"] = f"Bearer {token.access.reveal()}"
            if self.codex and token.account_id:
                # Required by the Codex backend: which ChatGPT workspace the token acts for.
                headers["chatgpt-account-id"] = token.account_id
        else:
            secret = call.credential.secret.reveal()
            if secret:
                headers["authorization"] = f"Bearer {secret}"
        if self.codex:
            cache_key = _cache_key(call)
            if cache_key:
                # The Codex backend keys its prompt cache by the conversation's session.
                headers["session_id"] = cache_key
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream"
        # Compressed streams get buffered by the compressor; plain bytes flow event by event.
        headers["accept-encoding"] = "identity"
        return headers


def _origin(call: UpstreamCall) -> str:
    """Which credential issued a piece of encrypted reasoning (16 hex digits in the thinking
    block's signature): only that credential's backend can verify it. Derived from the
    credential's id, so every worker agrees and nothing about the credential shows."""
    digest = hashlib.sha256(f"responses-reasoning:{call.credential.credential_id}".encode())
    return digest.hexdigest()[:16]


def _cache_key(call: UpstreamCall) -> str:
    """A stable, opaque key per conversation and model (a hash: the session id stays here)."""
    session = session_id(call.request.headers, call.request.body)
    if not session:
        return ""
    digest = hashlib.sha256(f"{call.upstream_model}\0{session}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


async def _error(call: UpstreamCall, response: httpx.Response) -> UpstreamError:
    body = await read_all(response, call.credential.label)
    info = responses.parse_error(response.status_code, body, now=time.time())
    return error_from_info(info, lower_headers(response))


def _refuses_reasoning(error: UpstreamError, payload: dict[str, Any]) -> bool:
    if error.upstream_status != 400:
        return False
    message = error.message.lower()
    return any(phrase in message for phrase in _ENCRYPTED_REFUSALS) and any(
        item.get("type") == "reasoning" for item in payload.get("input") or ()
    )


class _StreamCut(UpstreamError):
    """The upstream body broke off or ended before ``response.completed``."""


async def _body_events(response: httpx.Response, label: str) -> AsyncIterator[SSEEvent]:
    try:
        async for event in sse_events(response, label):
            yield event
    except UpstreamError as exc:
        if exc.upstream_status != 0 or exc.error_type == "timeout_error":
            raise
        raise _StreamCut(exc.message, status=0, error_type=exc.error_type) from None


async def _translated(
    response: httpx.Response, translator: responses.StreamTranslator, label: str
) -> AsyncIterator[Event]:
    """Anthropic events from the Responses SSE body, translated as each event arrives. Reading
    stops once the message is complete (a stop sequence may end it before the upstream does).
    A body that breaks off or ends early raises ``_StreamCut``."""
    try:
        async for event in _body_events(response, label):
            data = event.data.strip()
            if not data or data == b"[DONE]":
                continue
            try:
                chunk: Any = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    f"The upstream ({label}) sent a stream event that is not JSON.",
                    status=502,
                    error_type="api_error",
                ) from None
            if not isinstance(chunk, dict):
                continue
            if "type" not in chunk and event.name:
                chunk["type"] = event.name
            for item in translator.feed(chunk):
                yield item
            if translator.stopped:
                for item in translator.end_at_stop_sequence():
                    yield item
            if translator.done:
                return
    except TranslatedStreamError as exc:
        raise error_from_info(exc.info) from None
    try:
        for item in translator.finish():
            yield item
    except TranslatedStreamError as exc:
        info = exc.info
        raise _StreamCut(info.message, status=info.status, error_type=info.error_type) from None
