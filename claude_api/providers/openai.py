"""OpenAI-compatible upstreams (``POST {base}/chat/completions``): OpenRouter, DeepSeek, vLLM,
Ollama, LM Studio, OpenAI itself.

Translation lives in ``claude_api.translate.openai``; tool arguments are relayed as
``input_json_delta`` events as they arrive. These servers have no token-count endpoint, so
count_tokens answers with a local estimate and says so in ``x-proxy-token-count: estimate``.
"""

from __future__ import annotations

import httpx

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
from claude_api.translate import openai
from claude_api.translate.common import TranslatedStreamError


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
        options = _options(call)
        response = await self._post(call, names, streaming=True)
        translator = openai.StreamTranslator(
            model=call.request.model,
            names=names,
            # Without include_usage the server reports no usage at all: estimate the prompt.
            input_tokens_estimate=0
            if options.include_usage
            else openai.estimate_input_tokens(call.request.body),
        )
        return EventStream(translated_events(response, translator, call.credential.label), response)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        tokens = openai.estimate_input_tokens(call.request.body)
        return Reply(200, dumps({"input_tokens": tokens}), {}, {ESTIMATE_HEADER: "estimate"})

    async def _post(
        self, call: UpstreamCall, names: openai.ToolNames, *, streaming: bool
    ) -> httpx.Response:
        payload = openai.build_request(
            call.request.body,
            upstream_model=call.upstream_model,
            stream=streaming,
            options=_options(call),
            names=names,
        )
        response = await post(
            call,
            call.credential.base_url + "/chat/completions",
            headers=_headers(call, streaming=streaming),
            content=dumps(payload),
        )
        if response.status_code >= 400:
            body = await read_all(response, call.credential.label)
            raise error_from_info(
                openai.parse_error(response.status_code, body), lower_headers(response)
            )
        return response


def _options(call: UpstreamCall) -> openai.OpenAIOptions:
    options = call.credential.options
    return openai.OpenAIOptions(
        max_tokens_field=options.get("max_tokens_field") or "max_tokens",
        include_usage=bool(options.get("include_usage", True)),
        reasoning_field=options.get("reasoning_field", "reasoning_content") or "",
        send_reasoning_effort=bool(options.get("send_reasoning_effort", True)),
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
