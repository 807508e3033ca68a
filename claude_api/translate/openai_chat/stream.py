"""Streaming: ``chat.completion.chunk`` objects -> Anthropic SSE events (``StreamTranslator``)."""

from __future__ import annotations

import json
from typing import Any

from claude_api.translate.common import (
    OPENAI_SIGNATURE_TAG,
    ErrorInfo,
    Event,
    TranslatedStreamError,
    new_message_id,
)
from claude_api.translate.openai_chat.errors import parse_error
from claude_api.translate.openai_chat.names import ToolNames
from claude_api.translate.openai_chat.response import (
    _FILTERED_TEXT,
    _arguments_text,
    _message_usage,
    _output_estimate,
    _stop_reason,
    _text_value,
    _unique_id,
    _usage,
)

_NONE, _THINKING, _TEXT, _TOOL = 0, 1, 2, 3


class _Call:
    """One upstream tool call, keyed by its tool_calls ``index`` (or id)."""

    __slots__ = ("closed", "id", "name", "parts", "started", "waiting")

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name: str | None = None
        self.parts: list[str] = []  # argument fragments (buffered before start, emitted after)
        self.started = False
        self.waiting = False
        self.closed = False


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# Fillers tried, in order, to finish a truncated JSON text (see _json_completion).
_STRING_ENDS = ('"', '\\"', '0"', '00"', '000"', '0000"')
_VALUE_ENDS = (
    "",
    "null",
    ":null",
    '"":null',
    "0",
    "ue",
    "rue",
    "e",
    "alse",
    "lse",
    "se",
    "ull",
    "ll",
    "l",
)


def _json_completion(text: str) -> str:
    """A suffix that turns a truncated JSON text into valid JSON ("" if none is found).

    Needed when a tool block must close before its arguments are complete (max_tokens, or
    the stream ending early): the fragments already went out and cannot be taken back, and
    the client parses their concatenation. Rare, so it may be slow.
    """
    stack: list[str] = []
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    closers = "".join(reversed(stack))
    # e.g. {"a":"x → "}   {"a → ":null}   {"a":1, → "":null}   {"a":tr → ue}   [1, → null]
    for string_end in _STRING_ENDS if in_string else ("",):
        for value_end in _VALUE_ENDS:
            suffix = string_end + value_end + closers
            if _is_json(text + suffix):
                return suffix
    return ""


class StreamTranslator:
    """Translate one Chat Completions stream into Anthropic SSE events, incrementally.

    Blocks open one at a time (indexes 0, 1, 2…). Tool-call arguments are forwarded as
    ``input_json_delta`` the moment they arrive. Robustness rules, in the order they matter:

    - A call opens its block once its name is known; fragments before that (id only, or
      arguments first) are buffered and flushed when the block starts.
    - A call whose ``index`` is missing is matched by id, else taken as the latest call; a
      repeated ``index`` with a different id is a new call (some servers send index 0 for all).
    - If another call starts while the open call's arguments are not yet complete JSON
      (interleaved fragments), the new call is buffered and started once the open one parses,
      or at the finish. So every block's arguments stay contiguous and parse as JSON.
    - Text or reasoning arriving while a call is open closes it. Fragments for a call whose
      block already closed are dropped: the block cannot reopen, and a second block with the
      same id would break the client's history.
    - A block closing with no arguments gets ``{}``; one closing on truncated JSON (max_tokens,
      early end) gets the shortest suffix that makes it parse.
    - Whitespace-only text is held until real text follows (never an empty/blank text block).
    """

    def __init__(self, *, model: str, names: ToolNames, input_tokens_estimate: int = 0) -> None:
        self._model = model
        self._names = names
        self._estimate = input_tokens_estimate
        self._started = False
        self._done = False
        self._open = _NONE
        self._index = -1  # index of the open block
        self._blocks = 0  # blocks emitted so far (= next index)
        self._call: _Call | None = None  # the open tool call
        self._calls: dict[Any, _Call] = {}
        self._order: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._last: _Call | None = None
        self._ids: set[str] = set()  # tool_use ids emitted
        self._waiting = False
        self._space = ""
        self._tools = False
        self._chars = 0
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    # -- public ---------------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._done or not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise TranslatedStreamError(parse_error(200, chunk))
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(self._message_start())
        choices = chunk.get("choices")
        if choices and isinstance(choices, list):
            choice = choices[0]
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict) and delta:
                    self._delta(delta, events)
                finish = choice.get("finish_reason")
                if finish:
                    if finish == "error":
                        raise TranslatedStreamError(
                            ErrorInfo(502, "api_error", "upstream reported an error mid-stream")
                        )
                    self._finish = str(finish)
                    self._close_all(events)
        usage = chunk.get("usage")
        if usage and isinstance(usage, dict):
            self._usage = usage
            if self._finish is not None and not choices:
                # The include_usage chunk (choices: []) after the finish: nothing else follows.
                self._end(events)
        return events

    def finish(self) -> list[Event]:
        if self._done:
            return []
        if not self._started:
            raise TranslatedStreamError(
                ErrorInfo(502, "api_error", "upstream returned an empty stream")
            )
        # A clean end without finish_reason is treated as complete: a dropped connection
        # surfaces as a transport error in the caller, not as a clean EOF.
        events: list[Event] = []
        self._close_all(events)
        self._end(events)
        return events

    # -- deltas ---------------------------------------------------------------------------

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        # Servers name the reasoning field differently; some send both with the same text.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self._thinking(
                reasoning if isinstance(reasoning, str) else _text_value(reasoning), events
            )
        content = delta.get("content")
        if content:
            self._text(content if isinstance(content, str) else _text_value(content), events)
        calls = delta.get("tool_calls")
        if calls and isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_fragment(call, events)
        elif isinstance(delta.get("function_call"), dict):  # legacy single function call
            self._tool_fragment(
                {"index": "function_call", "function": delta["function_call"]}, events
            )

    def _thinking(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open != _THINKING:
            self._close(events)
            self._start({"type": "thinking", "thinking": "", "signature": ""}, _THINKING, events)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "thinking_delta", "thinking": text}))

    def _text(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open != _TEXT:
            if text.isspace():
                # Anthropic rejects blank text blocks when the history is replayed; hold it.
                self._space += text
                return
            self._close(events)
            self._start({"type": "text", "text": ""}, _TEXT, events)
            if self._space:
                text = self._space + text
                self._space = ""
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "text_delta", "text": text}))

    def _find_call(self, key: Any, call_id: str | None) -> _Call:
        if not isinstance(key, int | str):
            key = None
        call = None
        if key is not None:
            call = self._calls.get(key)
            if call is not None and call_id and call.id and call_id != call.id:
                # Same index, different id: some servers send index 0 for every call.
                call = self._by_id.get(call_id)
                if call is not None:
                    self._calls[key] = call
        elif call_id:
            call = self._by_id.get(call_id)
            key = ("id", call_id)
        else:
            call = self._last  # an index-less continuation fragment
            key = ("seq", len(self._order))
        if call is None:
            call = _Call(call_id)
            self._calls[key] = call
            self._order.append(call)
        if call_id:
            if call.id is None and not call.started:
                call.id = call_id
            self._by_id.setdefault(call_id, call)
        self._last = call
        return call

    def _tool_fragment(self, fragment: dict[str, Any], events: list[Event]) -> None:
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = fragment.get("id")
        call = self._find_call(
            fragment.get("index"), call_id if isinstance(call_id, str) and call_id else None
        )
        if call.closed:
            return
        name = function.get("name")
        if name and isinstance(name, str) and call.name is None:
            call.name = name
        arguments = _arguments_text(function.get("arguments"))
        if call is self._call:
            if arguments:
                self._emit_arguments(arguments, events)
                if self._waiting:
                    self._advance(events)
            return
        if arguments:
            call.parts.append(arguments)
        if call.started or call.waiting or call.name is None:
            return
        if self._open == _TOOL and not self._call_complete():
            # Interleaved calls: keep this one until the open call's JSON is complete.
            call.waiting = True
            self._waiting = True
            return
        self._close(events)
        self._start_call(call, events)

    def _emit_arguments(self, text: str, events: list[Event]) -> None:
        assert self._call is not None
        self._call.parts.append(text)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "input_json_delta", "partial_json": text}))

    def _call_complete(self) -> bool:
        assert self._call is not None
        parts = self._call.parts
        return bool(parts) and _is_json("".join(parts))

    def _advance(self, events: list[Event]) -> None:
        # Start waiting calls (in arrival order) as soon as the open one's JSON is complete.
        while self._open == _TOOL and self._call_complete():
            nxt = next((c for c in self._order if c.waiting), None)
            if nxt is None:
                self._waiting = False
                return
            self._close(events)
            self._start_call(nxt, events)

    # -- blocks ---------------------------------------------------------------------------

    def _start(self, block: dict[str, Any], kind: int, events: list[Event]) -> None:
        self._index = self._blocks
        self._blocks += 1
        self._open = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _start_call(self, call: _Call, events: list[Event]) -> None:
        call.started = True
        call.waiting = False
        self._tools = True
        name = call.name or f"tool_{self._order.index(call)}"
        block = {
            "type": "tool_use",
            "id": _unique_id(call.id, self._ids),
            "name": self._names.to_client(name),
            "input": {},
        }
        self._start(block, _TOOL, events)
        self._call = call
        buffered = "".join(call.parts)
        call.parts = []
        if buffered:
            self._emit_arguments(buffered, events)

    def _close(self, events: list[Event]) -> None:
        kind = self._open
        if kind == _NONE:
            return
        index = self._index
        if kind == _THINKING:
            events.append(
                _block_delta(index, {"type": "signature_delta", "signature": OPENAI_SIGNATURE_TAG})
            )
        elif kind == _TOOL:
            call = self._call
            assert call is not None
            text = "".join(call.parts)
            if not text.strip():
                self._emit_arguments("{}", events)
            elif not _is_json(text):
                suffix = _json_completion(text)
                if suffix:
                    self._emit_arguments(suffix, events)
            call.closed = True
            call.parts = []
            self._call = None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        self._open = _NONE

    def _close_all(self, events: list[Event]) -> None:
        self._close(events)
        # Calls still buffered (interleaved, or never named) go out whole, in arrival order.
        for call in self._order:
            if not call.started:
                self._start_call(call, events)
                self._close(events)
        self._waiting = False

    # -- message --------------------------------------------------------------------------

    def _message_start(self) -> Event:
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": new_message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _message_usage(
                        {
                            "input_tokens": self._estimate,
                            "output_tokens": 0,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        }
                    ),
                },
            },
        )

    def _end(self, events: list[Event]) -> None:
        stop_reason = _stop_reason(self._finish, self._tools)
        if stop_reason == "refusal" and self._blocks == 0:
            self._start({"type": "text", "text": ""}, _TEXT, events)
            self._text(_FILTERED_TEXT, events)
            self._close(events)
        usage = _usage(self._usage, self._estimate, _output_estimate(self._chars))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._done = True
