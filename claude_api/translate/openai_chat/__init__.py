"""Anthropic Messages ⇄ OpenAI-compatible Chat Completions (OpenRouter, DeepSeek, vLLM, Ollama…).

Pure functions and one small state object; no I/O, no Django. One module per direction (names,
request, response, stream, errors); this package re-exports what the provider layer calls:

- ``tool_names(body)`` once per request, then ``build_request(...)`` for the upstream body;
- ``translate_response(...)`` for a non-streaming ``chat.completion``;
- ``StreamTranslator(...).feed(chunk)`` per parsed ``data:`` object, ``finish()`` at ``[DONE]``/EOF;
- ``parse_error(status, body)`` for any upstream error body;
- ``rejected_fields(body)`` and ``omission_for(...)`` when a 400 names a field the server refuses.

Returned dicts may share nested objects (tool schemas, tool inputs) with the input body: treat
both as read-only. The count_tokens estimate over the request as it would be sent is
``claude_api.translate.tokens.estimate_input_tokens``.
"""

from __future__ import annotations

from claude_api.translate.openai_chat.errors import (
    OMITTABLE,
    RejectedField,
    omission_for,
    parse_error,
    rejected_fields,
)
from claude_api.translate.openai_chat.names import ToolNames, tool_names
from claude_api.translate.openai_chat.request import (
    OpenAIOptions,
    build_request,
    sends_usage_option,
)
from claude_api.translate.openai_chat.response import translate_response
from claude_api.translate.openai_chat.stream import StreamTranslator

__all__ = [
    "OMITTABLE",
    "OpenAIOptions",
    "RejectedField",
    "StreamTranslator",
    "ToolNames",
    "build_request",
    "omission_for",
    "parse_error",
    "rejected_fields",
    "sends_usage_option",
    "tool_names",
    "translate_response",
]
