"""Gemini upstream (Generative Language API v1beta, API keys).

The request is translated by ``claude_api.translate.gemini``; responses and stream chunks are
translated back into Anthropic messages and events as they arrive. Tool schemas go as real JSON
Schema (``parametersJsonSchema``); an endpoint that rejects that gets the sanitised OpenAPI
subset (``parameters``) instead, retried once and remembered for that credential.
"""

from __future__ import annotations

import httpx

from claude_api.providers.base import (
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
from claude_api.translate import gemini
from claude_api.translate.common import TranslatedStreamError

JSON_SCHEMA = "json_schema"
PARAMETERS = "parameters"
# Credentials whose endpoint refused parametersJsonSchema; per process, relearned after restart.
_parameters_only: set[int] = set()


class GeminiProvider(Provider):
    name = "gemini"

    async def send(self, call: UpstreamCall) -> Reply:
        response = await self._post(call, ":generateContent", streaming=False)
        body = await read_all(response, call.credential.label)
        data = json_object(body, call.credential.label)
        try:
            message = gemini.translate_response(
                data,
                model=call.request.model,
                tool_names=gemini.tool_name_map(call.request.body),
                stop_sequences=call.request.body.get("stop_sequences"),
            )
        except TranslatedStreamError as exc:
            raise error_from_info(exc.info) from None
        return Reply(200, dumps(message), lower_headers(response))

    async def stream(self, call: UpstreamCall) -> EventStream:
        response = await self._post(call, ":streamGenerateContent?alt=sse", streaming=True)
        translator = gemini.StreamTranslator(
            model=call.request.model,
            stop_sequences=call.request.body.get("stop_sequences"),
            tool_names=gemini.tool_name_map(call.request.body),
        )
        return EventStream(translated_events(response, translator, call.credential.label), response)

    async def count_tokens(self, call: UpstreamCall) -> Reply:
        payload = gemini.build_count_tokens_request(
            call.request.body,
            upstream_model=call.upstream_model,
            schema_mode=_schema_mode(call),
        )
        response = await post(
            call,
            self._url(call, ":countTokens"),
            headers=self._headers(call, streaming=False),
            content=dumps(payload),
        )
        body = await read_all(response, call.credential.label)
        if response.status_code >= 400:
            raise error_from_info(
                gemini.parse_error(response.status_code, body), lower_headers(response)
            )
        data = json_object(body, call.credential.label)
        return Reply(200, dumps(gemini.parse_count_tokens_response(data)), lower_headers(response))

    async def _post(self, call: UpstreamCall, action: str, *, streaming: bool) -> httpx.Response:
        """POST the translated request; on a schema rejection retry once with the sanitised
        schema. Returns a 2xx response (unread); raises UpstreamError otherwise."""
        mode = _schema_mode(call)
        while True:
            payload = gemini.build_request(
                call.request.body, schema_mode=mode, model=call.upstream_model
            )
            response = await post(
                call,
                self._url(call, action),
                headers=self._headers(call, streaming=streaming),
                content=dumps(payload),
            )
            if response.status_code < 400:
                return response
            body = await read_all(response, call.credential.label)
            info = gemini.parse_error(response.status_code, body)
            if (
                mode == JSON_SCHEMA
                and call.request.body.get("tools")
                and gemini.is_schema_rejection(info)
            ):
                _parameters_only.add(call.route.credential_id)
                mode = PARAMETERS
                continue
            raise error_from_info(info, lower_headers(response))

    @staticmethod
    def _url(call: UpstreamCall, action: str) -> str:
        base = call.credential.base_url
        if not base.endswith(("/v1beta", "/v1")):
            base += "/v1beta"
        return f"{base}/models/{call.upstream_model}{action}"

    @staticmethod
    def _headers(call: UpstreamCall, *, streaming: bool) -> dict[str, str]:
        headers = {name.lower(): value for name, value in call.credential.headers.items()}
        headers["x-goog-api-key"] = call.credential.secret.reveal()
        headers["content-type"] = "application/json"
        headers["accept-encoding"] = "identity" if streaming else "gzip, deflate"
        return headers


def _schema_mode(call: UpstreamCall) -> str:
    return PARAMETERS if call.route.credential_id in _parameters_only else JSON_SCHEMA
