"""Stream: ``:streamGenerateContent?alt=sse`` chunks as Anthropic SSE events."""

from __future__ import annotations

from typing import Any

from claude_api.translate.common import GEMINI_SIGNATURE_TAG, Event, new_message_id
from claude_api.translate.gemini.request import _compact_json
from claude_api.translate.gemini.response import (
    _block_reason,
    _candidate_parts,
    _empty_response_error,
    _error_from_body,
    _first_candidate,
    _stop,
    _stop_list,
    _tool_use_block,
    _usage,
)


class StreamTranslator:
    """``:streamGenerateContent?alt=sse`` chunks -> Anthropic SSE events.

    One block is open at a time; indexes run 0, 1, 2…. ``message_delta`` and ``message_stop``
    come from ``finish()`` (called at upstream EOF), so the last usageMetadata is always seen.

    Signatures, where the stream cannot look back: a signature on a thought part is sent as the
    open thinking block's signature_delta just before its stop (a thinking block without one
    closes with the bare ``"gemini."`` tag, like the non-streaming side); a functionCall's signature
    becomes an empty thinking block right before the tool_use; a signature on a text part (or a
    signature-only part) signs the thinking block still open, else is emitted as an empty
    thinking block before the next thought or call, or, when nothing is open, is kept for the
    next thinking block. ``build_request`` puts each back on the Gemini part it came from.

    The answer comes last. Gemini 3 sends its final signature on an empty text part *after* the
    answer (same chunk or a later one, with or without finishReason), and Claude Code takes the
    last block as the answer, so nothing may follow the final text or tool_use block:

    - A text signature still waiting at the end is dropped. The text has been streamed by then
      and a sent block cannot be changed; buffering the whole answer until the end to put a
      signature in front of it would delay every answer. Google documents text signatures as
      optional (only functionCall parts are validated), and a text part that ends a run of
      thoughts still signs its thinking block, as the non-streaming side does.
    - Signatures that Gemini does require must not be lost that way: when the response's first
      functionCall arrives unsigned, its tool_use block (and later calls) is held until the next
      part. A signature-only part then goes in front of the calls (onto the still-open unsigned
      thinking block, or an empty one), so ``build_request`` puts it back on the first call;
      anything else, or the end of the stream, releases the calls as they are. Gemini sends
      calls whole, at the end of a step, so the hold ends with the same or the next chunk; a
      signed call, or any call after one, is never held.
    """

    __slots__ = (
        "_model",
        "_stop_sequences",
        "_estimate",
        "_tool_names",
        "_id",
        "_started",
        "_done",
        "_index",
        "_open",
        "_open_signature",
        "_loose",
        "_held",
        "_saw_tool_use",
        "_saw_content",
        "_usage",
        "_finish_reason",
        "_block_reason",
    )

    def __init__(
        self,
        *,
        model: str,
        stop_sequences: list[str] | None = None,
        input_tokens_estimate: int = 0,
        tool_names: dict[str, str] | None = None,
    ) -> None:
        self._model = model
        self._stop_sequences = _stop_list(stop_sequences)
        self._estimate = input_tokens_estimate
        self._tool_names = tool_names or {}
        self._id = new_message_id()
        self._started = False
        self._done = False
        self._index = -1  # index of the most recently started block
        self._open: str | None = None  # "thinking" | "text"
        self._open_signature: str | None = None
        self._loose: list[str] = []  # signatures waiting for a home
        self._held: list[dict[str, Any]] = []  # unsigned tool_use blocks not yet sent
        self._saw_tool_use = False
        self._saw_content = False
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self._block_reason: str | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._done or not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            raise _error_from_body(chunk)
        events: list[Event] = []
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage = usage
        if not self._started:
            self._started = True
            events.append(self._message_start())
        candidate = _first_candidate(chunk)
        if candidate is None:
            reason = _block_reason(chunk)
            if reason:
                self._block_reason = reason
            return events
        for part in _candidate_parts(candidate):
            if isinstance(part, dict):
                self._part(part, events)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
        return events

    def finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        events: list[Event] = []
        self._release(events)
        if not self._saw_content and self._finish_reason is None and self._block_reason is None:
            raise _empty_response_error()
        if not self._started:
            self._started = True
            events.append(self._message_start())
        self._close(events, flush=False)
        # Whatever is still loose would trail the answer; see the class docstring for why it is
        # dropped rather than sent.
        self._loose.clear()
        stop_reason, stop_sequence, note = _stop(
            self._finish_reason,
            self._block_reason,
            self._saw_tool_use,
            self._saw_content,
            self._stop_sequences,
        )
        if note:
            self._start(events, {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": note}))
            events.append(
                ("content_block_stop", {"type": "content_block_stop", "index": self._index})
            )
        input_tokens, cache_read, output_tokens = _usage(self._usage, self._estimate)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {
                        "input_tokens": input_tokens,
                        "output_tokens": output_tokens,
                        "cache_read_input_tokens": cache_read,
                        "cache_creation_input_tokens": 0,
                    },
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # --- internals ---

    def _message_start(self) -> Event:
        input_tokens = _usage(self._usage, self._estimate)[0] if self._usage else self._estimate
        return (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self._model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": input_tokens,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 0,
                            "ephemeral_1h_input_tokens": 0,
                        },
                    },
                },
            },
        )

    def _start(self, events: list[Event], block: dict[str, Any]) -> None:
        self._index += 1
        self._saw_content = True
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _delta(self, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _close(self, events: list[Event], *, flush: bool = True) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            # Unsigned blocks still get the bare tag: a thinking block with an empty signature
            # would look Anthropic-made if the history were ever sent to Anthropic.
            signature = GEMINI_SIGNATURE_TAG + (self._open_signature or "")
            events.append(self._delta({"type": "signature_delta", "signature": signature}))
            self._open_signature = None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None
        if flush and self._loose:
            self._flush_loose(events)

    def _flush_loose(self, events: list[Event]) -> None:
        loose, self._loose = self._loose, []
        for signature in loose:
            self._signature_block(events, signature)

    def _signature_block(self, events: list[Event], signature: str) -> None:
        self._start(events, {"type": "thinking", "thinking": "", "signature": ""})
        events.append(
            self._delta({"type": "signature_delta", "signature": GEMINI_SIGNATURE_TAG + signature})
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def _part(self, part: dict[str, Any], events: list[Event]) -> None:
        signature = part.get("thoughtSignature")
        if not isinstance(signature, str) or not signature:
            signature = None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._call(call, signature, events)
            return
        text = part.get("text")
        if not isinstance(text, str) or not text:
            # A signature-only part, an empty thought, inlineData, executableCode…
            if signature is not None:
                self._bare_signature(signature, events)
            return
        self._release(events)
        if part.get("thought") is True:
            if self._open != "thinking" or (
                signature is not None and self._open_signature is not None
            ):
                self._close(events)
                self._start(events, {"type": "thinking", "thinking": "", "signature": ""})
                self._open = "thinking"
                if self._loose and signature is None:
                    self._open_signature = self._loose.pop(0)
            events.append(self._delta({"type": "thinking_delta", "thinking": text}))
            if signature is not None:
                self._open_signature = signature
            return
        if self._open != "text":
            if signature is not None and self._open == "thinking" and self._open_signature is None:
                # The text that ends a run of thoughts carries the step's signature: it signs
                # the thinking block before that closes, as on the non-streaming side, instead
                # of waiting behind the text for a block that may never come.
                self._open_signature, signature = signature, None
            self._close(events)
            self._start(events, {"type": "text", "text": ""})
            self._open = "text"
        events.append(self._delta({"type": "text_delta", "text": text}))
        if signature is not None:
            self._attach(signature)

    def _call(self, call: dict[str, Any], signature: str | None, events: list[Event]) -> None:
        block = _tool_use_block(call, self._tool_names)
        first = not self._saw_tool_use
        self._saw_tool_use = True
        if signature is None and (self._held or (first and not self._loose)):
            # Its signature may still come on a signature-only part (class docstring).
            self._held.append(block)
            return
        self._release(events)
        self._close(events)
        self._flush_loose(events)  # build_request puts these on this call
        if signature is not None:
            self._signature_block(events, signature)
        self._tool_use(events, block)

    def _tool_use(self, events: list[Event], block: dict[str, Any]) -> None:
        partial = _compact_json(block["input"])
        self._start(events, {**block, "input": {}})
        events.append(self._delta({"type": "input_json_delta", "partial_json": partial}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def _release(self, events: list[Event]) -> None:
        """Send the held tool_use blocks: nothing came to sign them."""
        if not self._held:
            return
        held, self._held = self._held, []
        self._close(events)
        for block in held:
            self._tool_use(events, block)

    def _bare_signature(self, signature: str, events: list[Event]) -> None:
        if self._held:
            # The calls' signature: it goes in front of them, so it travels back on the first.
            if self._open == "thinking" and self._open_signature is None:
                self._open_signature = signature
            else:
                self._close(events)
                self._signature_block(events, signature)
            self._release(events)
            return
        self._attach(signature)

    def _attach(self, signature: str) -> None:
        """A signature from a non-thought part: the open thinking block, else wait."""
        if self._open == "thinking" and self._open_signature is None:
            self._open_signature = signature
        else:
            self._loose.append(signature)
