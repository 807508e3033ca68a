"""Anthropic Messages ⇄ the OpenAI Responses API (ChatGPT Codex accounts, OpenAI API keys).

Pure functions and one small state object; no I/O, no Django. One module per direction (names,
request, response, stream, errors); this package re-exports what the provider layer calls:

- ``tool_names(body)`` and ``call_ids(body)`` once per request, then ``build_request(...)``;
- ``StreamTranslator(...).feed(event)`` per parsed ``data:`` object; ``finish()`` at EOF;
- ``assemble(events)`` for a non-streaming client, ``translate_response(...)`` for a whole
  Responses object;
- ``parse_error(status, body, now=...)`` for any upstream error body or in-stream error.

The encrypted reasoning the backend returns (``include: ["reasoning.encrypted_content"]``)
travels in the thinking block's signature after ``RESPONSES_SIGNATURE_TAG`` and the origin of
the credential that issued it (names.reasoning_signature); the client sends it back with the
history and ``build_request`` turns it into a ``reasoning`` item again, for that credential only.
"""

from __future__ import annotations

from claude_api.translate.openai_responses.errors import parse_error, usage_limit_delay
from claude_api.translate.openai_responses.names import CallIds, ToolNames, call_ids, tool_names
from claude_api.translate.openai_responses.request import (
    ResponsesOptions,
    build_request,
    encrypted_reasoning,
    stop_sequences,
)
from claude_api.translate.openai_responses.response import assemble, translate_response
from claude_api.translate.openai_responses.stream import StreamTranslator

__all__ = [
    "CallIds",
    "ResponsesOptions",
    "StreamTranslator",
    "ToolNames",
    "assemble",
    "build_request",
    "call_ids",
    "encrypted_reasoning",
    "parse_error",
    "stop_sequences",
    "tool_names",
    "translate_response",
    "usage_limit_delay",
]
