"""Streaming: Responses SSE events -> Anthropic SSE events (``StreamTranslator``).

Each upstream event is translated as it arrives:

| Responses event                                   | Anthropic events                                  |
|---------------------------------------------------|---------------------------------------------------|
| ``response.created`` / ``in_progress``            | nothing yet (see below)                           |
| ``response.reasoning_summary_text.delta``, ``response.reasoning_text.delta`` | a thinking block, ``thinking_delta`` (summary parts joined by a blank line) |
| ``response.output_item.done`` reasoning           | ``signature_delta`` with the tagged encrypted reasoning, block stop |
| ``response.output_text.delta`` / ``refusal.delta``| a text block, ``text_delta``                      |
| ``response.output_item.added`` function_call      | a tool_use block (name and id mapped back)        |
| ``response.function_call_arguments.delta``        | ``input_json_delta``                              |
| ``response.function_call_arguments.done``, item done | what was not streamed yet; ``{}`` or a JSON repair if needed; block stop |
| ``response.output_item.done`` web_search_call     | ``server_tool_use`` (the query) + ``web_search_tool_result`` (its sources) |
| ``response.completed`` / ``response.incomplete``  | calls only found in ``output``, ``message_delta`` (stop reason, usage), ``message_stop`` |
| ``response.failed``, ``error``                    | ``TranslatedStreamError`` (the provider's ``event: error``, or a failover) |

``message_start`` waits for the first content or the end of the response: a ``response.failed``
before any output (a rate limit, an overload) then raises before the client has seen anything,
so the request fails over to another credential with a real status.

Stop sequences, which the Responses API lacks, are applied here: text is held back by the length
of the longest sequence minus one, and the first match ends the message with
``stop_reason: "stop_sequence"`` (the provider stops reading the upstream).
"""

from __future__ import annotations

import json
from typing import Any

from claude_api.translate.common import (
    RESPONSES_SIGNATURE_TAG,
    ErrorInfo,
    Event,
    TranslatedStreamError,
    new_message_id,
    new_tool_use_id,
    sanitize_tool_use_id,
)
from claude_api.translate.openai_chat.stream import _is_json, _json_completion
from claude_api.translate.openai_responses.errors import parse_error
from claude_api.translate.openai_responses.names import CallIds, ToolNames, reasoning_signature
from claude_api.translate.openai_responses.response import (
    message_usage,
    output_estimate,
    stop_reason,
    usage,
)

_NONE, _THINKING, _TEXT, _TOOL, _SEARCH = 0, 1, 2, 3, 4
_IGNORED = frozenset(
    {
        "response.queued",
        "response.content_part.added",
        "response.output_text.annotation.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.done",
        "response.refusal.done",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    }
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


class _Item:
    """One output item (by ``item_id``): what has been streamed of it."""

    __slots__ = ("arguments", "call_id", "done", "index", "kind", "name", "parts", "streamed")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.index = -1  # the Anthropic block it opened (-1: none yet)
        self.streamed = False  # deltas seen
        self.parts = 0  # reasoning summary parts seen
        self.arguments = ""  # function_call arguments sent as input_json_delta
        self.call_id = ""
        self.name = ""
        self.done = False


class StreamTranslator:
    def __init__(
        self,
        *,
        model: str,
        names: ToolNames,
        ids: CallIds,
        now: float,
        input_tokens_estimate: int = 0,
        stop_sequences: tuple[str, ...] = (),
        origin: str = "",
    ) -> None:
        self._model = model
        self._origin = origin  # the credential answering, named in each reasoning signature
        self._names = names
        self._ids = ids
        self._now = now
        self._estimate = input_tokens_estimate
        self._stops = stop_sequences
        self._hold = max((len(s) for s in stop_sequences), default=1) - 1
        self.done = False
        self._started = False
        self._open = _NONE
        self._index = -1
        self._blocks = 0
        self._items: dict[str, _Item] = {}
        self._open_item: _Item | None = None
        self._tool_ids: set[str] = set()
        self._call_ids: set[str] = set()
        self._tools = False
        self._searches = 0
        self._refused = False
        self._chars = 0
        self._pending = ""  # text held back (stop sequences, leading whitespace)
        self._stopped: str | None = None  # the stop sequence that ended the message
        self._message_id = new_message_id()
        self._response_id = ""

    # -- public ---------------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> list[Event]:
        """One parsed ``data:`` object (its ``type`` names the event)."""
        if self.done or not isinstance(event, dict):
            return []
        kind = event.get("type")
        events: list[Event] = []
        if kind in ("response.created", "response.in_progress"):
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                self._response_id = response["id"]
        elif kind == "response.output_item.added":
            self._item_added(event, events)
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._thinking(event, str(event.get("delta") or ""), events)
        elif kind == "response.reasoning_summary_part.added":
            item = self._item(event, "reasoning")
            if item.parts and item.index >= 0 and self._open_item is item:
                events.append(
                    _block_delta(item.index, {"type": "thinking_delta", "thinking": "\n\n"})
                )
            item.parts += 1
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            if kind == "response.refusal.delta":
                self._refused = True
            item = self._item(event, "message")
            item.streamed = True
            self._text(str(event.get("delta") or ""), events)
        elif kind in ("response.output_text.done", "response.content_part.done"):
            self._part_done(event, events)
        elif kind == "response.function_call_arguments.delta":
            self._arguments(event, str(event.get("delta") or ""), events)
        elif kind == "response.function_call_arguments.done":
            self._arguments_done(event, event.get("arguments"), events)
        elif kind == "response.output_item.done":
            self._item_done(event, events)
        elif kind in ("response.completed", "response.incomplete"):
            self._completed(event.get("response"), events)
        elif kind == "response.failed":
            raise TranslatedStreamError(parse_error(200, event, now=self._now))
        elif kind == "error":
            raise TranslatedStreamError(parse_error(200, event, now=self._now))
        elif kind not in _IGNORED and isinstance(event.get("error"), dict):
            raise TranslatedStreamError(parse_error(200, event, now=self._now))
        return events

    def finish(self) -> list[Event]:
        """The upstream body ended. Without ``response.completed`` the answer is cut short: an
        error (a clean close must not pass for a complete answer)."""
        if self.done:
            return []
        raise TranslatedStreamError(
            ErrorInfo(502, "api_error", "the upstream stream ended before response.completed")
        )

    # -- items ----------------------------------------------------------------------------

    def _item(self, event: dict[str, Any], kind: str) -> _Item:
        key = event.get("item_id")
        if not isinstance(key, str):
            key = f"#{event.get('output_index')}"
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _Item(kind)
        return item

    def _item_key(self, item: dict[str, Any], event: dict[str, Any]) -> str:
        key = item.get("id")
        return key if isinstance(key, str) and key else f"#{event.get('output_index')}"

    def _item_added(self, event: dict[str, Any], events: list[Event]) -> None:
        raw = event.get("item")
        if not isinstance(raw, dict):
            return
        kind = str(raw.get("type") or "")
        item = self._items.setdefault(self._item_key(raw, event), _Item(kind))
        if kind == "function_call":
            item.call_id = str(raw.get("call_id") or "")
            item.name = str(raw.get("name") or "")
            self._start_call(item, events)
            arguments = raw.get("arguments")
            if isinstance(arguments, str) and arguments:
                self._emit_arguments(item, arguments, events)

    def _item_done(self, event: dict[str, Any], events: list[Event]) -> None:
        raw = event.get("item")
        if not isinstance(raw, dict):
            return
        kind = str(raw.get("type") or "")
        key = self._item_key(raw, event)
        item = self._items.setdefault(key, _Item(kind))
        if item.done:
            return
        if kind == "reasoning":
            self._reasoning_done(item, raw, events)
        elif kind == "message":
            if not item.streamed:
                # A server that sent the message whole, without deltas.
                for part in raw.get("content") or ():
                    if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):
                        if part.get("type") == "refusal":
                            self._refused = True
                        self._text(str(part.get("text") or part.get("refusal") or ""), events)
            self._flush_text(events)
            if self._open == _TEXT:
                self._close(events)
        elif kind == "web_search_call":
            self._web_search(raw, events)
        elif kind == "function_call":
            if item.index < 0:
                item.call_id = str(raw.get("call_id") or item.call_id)
                item.name = str(raw.get("name") or item.name)
                self._start_call(item, events)
            self._arguments_done({"item_id": key}, raw.get("arguments"), events)
        item.done = True

    def _reasoning_done(self, item: _Item, raw: dict[str, Any], events: list[Event]) -> None:
        if not item.streamed:
            texts = [
                str(part.get("text") or "")
                for part in raw.get("summary") or ()
                if isinstance(part, dict) and part.get("text")
            ]
            if texts:
                self._thinking_text(item, "\n\n".join(texts), events)
        encrypted = raw.get("encrypted_content")
        encrypted = encrypted if isinstance(encrypted, str) else ""
        if item.index < 0:
            if not encrypted:
                return  # nothing to show and nothing to carry
            self._open_thinking(item, events)
        # The encrypted reasoning rides in the signature, tagged as ours: sent back with the
        # history, it lets the next turn continue this reasoning on any worker.
        signature = reasoning_signature(encrypted, self._origin)
        events.append(_block_delta(item.index, {"type": "signature_delta", "signature": signature}))
        self._stop_block(events)

    # -- web search -----------------------------------------------------------------------

    def _web_search(self, raw: dict[str, Any], events: list[Event]) -> None:
        """A finished hosted search as Anthropic's pair: the server_tool_use (its query) and
        the web_search_tool_result (the sources, when the backend listed them)."""
        action = raw.get("action") if isinstance(raw.get("action"), dict) else {}
        query = action.get("query")
        if not isinstance(query, str):
            queries = action.get("queries")
            query = queries[0] if isinstance(queries, list) and queries else ""
        self._flush_text(events)
        self._close(events)
        tool_id = "srvtoolu_" + sanitize_tool_use_id(str(raw.get("id") or "") or None)
        if tool_id in self._tool_ids:
            tool_id = "srvtoolu_" + new_tool_use_id()
        self._tool_ids.add(tool_id)
        self._searches += 1
        block = {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {}}
        self._start(block, _SEARCH, events)
        arguments = _dumps({"query": str(query)})
        events.append(
            _block_delta(self._index, {"type": "input_json_delta", "partial_json": arguments})
        )
        self._stop_block(events)
        results = [
            {
                "type": "web_search_result",
                "url": source["url"],
                "title": str(source.get("title") or source["url"]),
                "encrypted_content": "",
                "page_age": None,
            }
            for source in action.get("sources") or ()
            if isinstance(source, dict) and isinstance(source.get("url"), str)
        ]
        result = {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": results}
        self._start(result, _SEARCH, events)
        self._stop_block(events)

    # -- thinking -------------------------------------------------------------------------

    def _open_thinking(self, item: _Item, events: list[Event]) -> None:
        self._close(events)
        self._start({"type": "thinking", "thinking": "", "signature": ""}, _THINKING, events)
        item.index = self._index
        self._open_item = item

    def _thinking(self, event: dict[str, Any], text: str, events: list[Event]) -> None:
        item = self._item(event, "reasoning")
        item.streamed = True
        self._thinking_text(item, text, events)

    def _thinking_text(self, item: _Item, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open_item is not item:
            if item.index >= 0:
                return  # its block already closed: Anthropic blocks cannot reopen
            self._open_thinking(item, events)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "thinking_delta", "thinking": text}))

    # -- text -----------------------------------------------------------------------------

    def _text(self, text: str, events: list[Event]) -> None:
        if not text or self._stopped is not None:
            return
        self._pending += text
        if self._stops:
            for stop in self._stops:
                at = self._pending.find(stop)
                if at >= 0:
                    self._pending = self._pending[:at]
                    self._stopped = stop
                    self._flush_text(events)
                    return
            keep = min(self._hold, len(self._pending))
            ready, self._pending = (
                self._pending[: len(self._pending) - keep],
                self._pending[len(self._pending) - keep :],
            )
        else:
            ready, self._pending = self._pending, ""
        self._emit_text(ready, events)

    def _emit_text(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._open != _TEXT:
            if text.isspace():
                # Anthropic rejects blank text blocks when the history is replayed; hold it.
                self._pending = text + self._pending
                return
            self._close(events)
            self._start({"type": "text", "text": ""}, _TEXT, events)
        self._chars += len(text)
        events.append(_block_delta(self._index, {"type": "text_delta", "text": text}))

    def _flush_text(self, events: list[Event]) -> None:
        pending, self._pending = self._pending, ""
        if pending and (self._open == _TEXT or not pending.isspace()):
            self._emit_text(pending, events)

    def _part_done(self, event: dict[str, Any], events: list[Event]) -> None:
        item = self._item(event, "message")
        text = event.get("text")
        if not item.streamed and isinstance(text, str) and text:
            item.streamed = True
            self._text(text, events)
        if event.get("type") == "response.content_part.done":
            self._flush_text(events)
            if self._open == _TEXT:
                self._close(events)

    # -- tool calls -----------------------------------------------------------------------

    def _start_call(self, item: _Item, events: list[Event]) -> None:
        self._flush_text(events)
        self._close(events)
        self._tools = True
        raw_id = self._ids.to_client(item.call_id) if item.call_id else ""
        tool_id = sanitize_tool_use_id(raw_id or None)
        if tool_id in self._tool_ids:
            tool_id = new_tool_use_id()  # Anthropic refuses a history with duplicate ids
        self._tool_ids.add(tool_id)
        if item.call_id:
            self._call_ids.add(item.call_id)
        block = {
            "type": "tool_use",
            "id": tool_id,
            "name": self._names.to_client(item.name),
            "input": {},
        }
        self._start(block, _TOOL, events)
        item.index = self._index
        self._open_item = item

    def _emit_arguments(self, item: _Item, text: str, events: list[Event]) -> None:
        if not text or self._open_item is not item:
            return
        item.arguments += text
        self._chars += len(text)
        events.append(_block_delta(item.index, {"type": "input_json_delta", "partial_json": text}))

    def _arguments(self, event: dict[str, Any], text: str, events: list[Event]) -> None:
        item = self._item(event, "function_call")
        if item.index < 0:
            self._start_call(item, events)
        self._emit_arguments(item, text, events)

    def _arguments_done(self, event: dict[str, Any], full: Any, events: list[Event]) -> None:
        item = self._item(event, "function_call")
        if self._open_item is not item:
            return
        if isinstance(full, str) and full.startswith(item.arguments):
            self._emit_arguments(item, full[len(item.arguments) :], events)
        self._close(events)

    # -- blocks ---------------------------------------------------------------------------

    def _ensure_started(self, events: list[Event]) -> None:
        if not self._started:
            self._started = True
            events.append(self._message_start())

    def _start(self, block: dict[str, Any], kind: int, events: list[Event]) -> None:
        self._ensure_started(events)
        self._index = self._blocks
        self._blocks += 1
        self._open = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _stop_block(self, events: list[Event]) -> None:
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = _NONE
        self._open_item = None

    def _close(self, events: list[Event]) -> None:
        if self._open == _NONE:
            return
        if self._open == _THINKING:
            # A reasoning item that never finished: nothing encrypted to carry, but the block
            # still needs its signature.
            events.append(
                _block_delta(
                    self._index, {"type": "signature_delta", "signature": RESPONSES_SIGNATURE_TAG}
                )
            )
        elif self._open == _TOOL:
            item = self._open_item
            assert item is not None
            if not item.arguments.strip():
                self._emit_arguments(item, "{}", events)
            elif not _is_json(item.arguments):
                self._emit_arguments(item, _json_completion(item.arguments), events)
        self._stop_block(events)

    # -- the end --------------------------------------------------------------------------

    def _completed(self, response: Any, events: list[Event]) -> None:
        response = response if isinstance(response, dict) else {}
        if self._stopped is None:
            self._flush_text(events)
        self._close(events)
        # Calls that only appear in the final output (a server that streamed none of them).
        for position, raw in enumerate(response.get("output") or ()):
            if (
                isinstance(raw, dict)
                and raw.get("type") == "function_call"
                and str(raw.get("call_id") or "") not in self._call_ids
                and self._stopped is None
            ):
                self._item_done({"item": raw, "output_index": f"final-{position}"}, events)
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        self._end(events, response.get("usage"), reason)

    def _end(self, events: list[Event], raw_usage: Any, incomplete: Any) -> None:
        self._ensure_started(events)
        if self._stopped is not None:
            reason = "stop_sequence"
        else:
            reason = stop_reason(incomplete, has_tools=self._tools, refused=self._refused)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": self._stopped},
                    "usage": self._usage(raw_usage),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self.done = True

    def _usage(self, raw_usage: Any) -> dict[str, Any]:
        counters: dict[str, Any] = usage(raw_usage, self._estimate, output_estimate(self._chars))
        if self._searches:
            counters["server_tool_use"] = {"web_search_requests": self._searches}
        return counters

    def end_at_stop_sequence(self) -> list[Event]:
        """After a stop sequence matched: end the message without waiting for the upstream."""
        if self.done or self._stopped is None:
            return []
        events: list[Event] = []
        self._close(events)
        self._end(events, None, None)
        return events

    @property
    def stopped(self) -> bool:
        return self._stopped is not None and not self.done

    def _message_start(self) -> Event:
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self._model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": message_usage(
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
