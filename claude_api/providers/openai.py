"""OpenAI-compatible upstreams (``POST {base}/chat/completions``): OpenRouter, DeepSeek, vLLM,
Ollama, LM Studio, OpenAI itself.

Translation lives in ``claude_api.translate.openai_chat``; tool arguments are relayed as
``input_json_delta`` events as they arrive. These servers have no token-count endpoint, so
count_tokens answers with a local estimate and says so in ``x-proxy-token-count: estimate``.

A 400/422 that refuses a field the proxy added on its own (echoed reasoning, ``reasoning_effort``,
``stream_options``, the max-tokens spelling, …) is retried on the same credential without it, and
the pool remembers the omission for that credential (in the database, so every worker and every
restart goes without it; see ``accounts.omissions``). The retry is not a failure of the credential.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx

from accounts.pool import pool
from accounts.secrets import redact
from claude_api.providers.base import (
    ESTIMATE_HEADER,
    EventStream,
    Provider,
    Reply,
    UpstreamCall,
    dumps,
    error_from_info,
    json_object,
    lower_headers,
    post,
    read_all,
    translated_events,
)
from claude_api.translate import openai_chat as openai
from claude_api.translate.common import TranslatedStreamError
from claude_api.translate.tokens import estimate_input_tokens

logger = logging.getLogger(__name__)

# Statuses with which servers refuse a request's shape (422: FastAPI/pydantic servers).
REJECTION_STATUSES = frozenset({400, 422})
# Each retry drops one more field; a server that keeps refusing new ones gets its error back.
MAX_OMISSION_RETRIES = 3
ERROR_EXCERPT_CHARS = 300


class OpenAIProvider(Provider):
    name = "openai"

    async def send(self, call: UpstreamCall) -> Reply:
        names = openai.tool_names(call.request.body)
        response = await self._post(call, names, streaming=False)
        body = await read_all(response, call.credential.label)
        data = json_object(body, call.credential.label)
        try:
            message = openai.translate_response(data, model=call.request.model, names=names)
        except TranslatedStreamError as exc:
            raise error_from_info(exc.info) from None
        return Reply(200, dumps(message), lower_headers(response))

    async def stream(self, call: UpstreamCall) -> EventStream:
        names = openai.tool_names(call.request.body)
        response = await self._post(call, names, streaming=True)
        options = _options(call)  # after the POST: it may have learned to omit stream_options
        translator = openai.StreamTranslator(
            model=call.request.model,
            names=names,
            # Without include_usage the server reports no usage at all: estimate the prompt.
            input_tokens_estimate=0
            if openai.sends_usage_option(options)
            else estimate_input_tokens(call.request.body),
        )
        return EventStream(translated_events(response, translator, call.credential.label), response)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        tokens = estimate_input_tokens(call.request.body)
        return Reply(200, dumps({"input_tokens": tokens}), {}, {ESTIMATE_HEADER: "estimate"})

    async def _post(
        self, call: UpstreamCall, names: openai.ToolNames, *, streaming: bool
    ) -> httpx.Response:
        """POST the translated request; when the server refuses a field the proxy added, learn
        that and retry without it. Returns a 2xx response (unread); raises UpstreamError."""
        options = _options(call)
        for retry in range(MAX_OMISSION_RETRIES + 1):
            payload = openai.build_request(
                call.request.body,
                upstream_model=call.upstream_model,
                stream=streaming,
                options=options,
                names=names,
            )
            response = await post(
                call,
                call.credential.base_url + "/chat/completions",
                headers=_headers(call, streaming=streaming),
                content=dumps(payload),
            )
            if response.status_code < 400:
                return response
            body = await read_all(response, call.credential.label)
            info = openai.parse_error(response.status_code, body)
            if response.status_code in REJECTION_STATUSES and retry < MAX_OMISSION_RETRIES:
                field = openai.omission_for(openai.rejected_fields(body), payload, options)
                if field is not None:
                    excerpt = redact(info.message, call.credential.secret.reveal())
                    excerpt = excerpt[:ERROR_EXCERPT_CHARS]
                    await pool.learn_omission(call.route, field, excerpt)
                    call.notes.append(
                        {
                            "outcome": "retried without field",
                            "status": response.status_code,
                            "reason": f"upstream refused {field}; learned: {excerpt}",
                        }
                    )
                    logger.info(
                        "upstream %s refused %s: retrying without it, and from now on",
                        call.credential.label,
                        field,
                    )
                    options = replace(options, omit=options.omit | {field})
                    continue
            raise error_from_info(info, lower_headers(response))
        raise AssertionError("unreachable")


def _options(call: UpstreamCall) -> openai.OpenAIOptions:
    options = call.credential.options
    return openai.OpenAIOptions(
        max_tokens_field=options.get("max_tokens_field") or "max_tokens",
        include_usage=bool(options.get("include_usage", True)),
        reasoning_field=options.get("reasoning_field") or "",
        send_reasoning_effort=bool(options.get("send_reasoning_effort", True)),
        omit=frozenset(call.credential.omitted),
    )


def _headers(call: UpstreamCall, *, streaming: bool) -> dict[str, str]:
    headers = {name.lower(): value for name, value in call.credential.headers.items()}
    secret = call.credential.secret.reveal()
    if secret:
        headers["authorization"] = f"Bearer {secret}"
    headers["content-type"] = "application/json"
    headers["accept"] = "text/event-stream" if streaming else "application/json"
    headers["accept-encoding"] = "identity" if streaming else "gzip, deflate"
    return headers
