"""Anthropic Messages ⇄ Google Gemini ``generateContent`` (Generative Language API v1beta).

Pure translation: dicts in, dicts out, no I/O. The provider layer calls, per request::

    names = tool_name_map(body)                      # sanitised Gemini name -> client name
    payload = build_request(body)                    # POST …/models/<m>:generateContent
    # on a 400 where is_schema_rejection(parse_error(...)): retry once with
    payload = build_request(body, schema_mode="parameters")
    message = translate_response(data, model=body["model"], tool_names=names,
                                 stop_sequences=body.get("stop_sequences"))
    # or, for :streamGenerateContent?alt=sse
    stream = StreamTranslator(model=…, tool_names=names, stop_sequences=…, input_tokens_estimate=…)
    for chunk in sse_json_objects: yield from stream.feed(chunk)
    yield from stream.finish()

Thought signatures travel statelessly through the client: a Gemini ``thoughtSignature`` comes
back to the client as a thinking block whose ``signature`` is ``"gemini." + <signature>``, and
``build_request`` puts it back on the Gemini part it belongs to. See ``request._ModelTurn``,
``response.translate_response`` and ``stream.StreamTranslator`` for where each signature lands.

Laid out by direction: ``names`` (tool names both ways), ``request`` (Anthropic -> Gemini),
``response`` and ``stream`` (Gemini -> Anthropic), ``errors``, ``schema`` (tool input schemas).
"""

from __future__ import annotations

from claude_api.translate.gemini.errors import is_schema_rejection, parse_error
from claude_api.translate.gemini.names import gemini_tool_name, tool_name_map
from claude_api.translate.gemini.request import (
    MAX_STOP_SEQUENCES,
    SKIP_SIGNATURE,
    build_count_tokens_request,
    build_request,
    uses_thinking_levels,
)
from claude_api.translate.gemini.response import parse_count_tokens_response, translate_response
from claude_api.translate.gemini.stream import StreamTranslator

__all__ = [
    "MAX_STOP_SEQUENCES",
    "SKIP_SIGNATURE",
    "StreamTranslator",
    "build_count_tokens_request",
    "build_request",
    "gemini_tool_name",
    "is_schema_rejection",
    "parse_count_tokens_response",
    "parse_error",
    "tool_name_map",
    "translate_response",
    "uses_thinking_levels",
]
