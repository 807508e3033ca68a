"""Response: a Gemini ``GenerateContentResponse`` as a complete Anthropic message."""

from __future__ import annotations

from typing import Any

from claude_api.translate.common import (
    GEMINI_SIGNATURE_TAG,
    ErrorInfo,
    TranslatedStreamError,
    new_message_id,
    sanitize_tool_use_id,
)
from claude_api.translate.gemini.errors import parse_error
from claude_api.translate.gemini.request import MAX_STOP_SEQUENCES

_REFUSAL_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE"}
)


def _usage(metadata: Any, fallback_input: int = 0) -> tuple[int, int, int]:
    """(input_tokens, cache_read_input_tokens, output_tokens) from ``usageMetadata``.

    Gemini's promptTokenCount includes cached tokens, Anthropic's input_tokens excludes them;
    candidatesTokenCount excludes thoughts, Anthropic's output_tokens includes them.
    """
    if not isinstance(metadata, dict):
        return fallback_input, 0, 0
    prompt = metadata.get("promptTokenCount") or 0
    cached = metadata.get("cachedContentTokenCount") or 0
    tool_prompt = metadata.get("toolUsePromptTokenCount") or 0
    output = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    return max(prompt - cached, 0) + tool_prompt, cached, output


def _stop(
    finish_reason: str | None,
    block_reason: str | None,
    saw_tool_use: bool,
    saw_content: bool,
    stop_sequences: list[str],
) -> tuple[str, str | None, str | None]:
    """(stop_reason, stop_sequence, note) where note is text to append as a final text block.

    Gemini reports STOP for a natural end *and* for a matched stop sequence, and never says
    which sequence matched. Rule: with exactly one configured stop sequence, a plain STOP is
    reported as that stop_sequence (callers that set a single delimiter almost always expect to
    hit it); with none or several, it is end_turn (we could not name the match).
    """
    if block_reason:
        return (
            "refusal",
            None,
            f"The prompt was blocked by Gemini's safety filters (reason: {block_reason}).",
        )
    if saw_tool_use:
        return "tool_use", None, None
    if finish_reason == "MAX_TOKENS":
        return "max_tokens", None, None
    if finish_reason and (finish_reason in _REFUSAL_REASONS or finish_reason.startswith("IMAGE_")):
        return (
            "refusal",
            None,
            f"The response was blocked by Gemini's safety filters (reason: {finish_reason}).",
        )
    if finish_reason == "STOP":
        if len(stop_sequences) == 1:
            return "stop_sequence", stop_sequences[0], None
        return "end_turn", None, None
    if finish_reason and finish_reason != "FINISH_REASON_UNSPECIFIED" and not saw_content:
        # MALFORMED_FUNCTION_CALL, OTHER, …: never hand the client a silent empty message.
        return (
            "end_turn",
            None,
            f"Gemini ended the response without output (finishReason: {finish_reason}).",
        )
    return "end_turn", None, None


def _stop_list(stop_sequences: Any) -> list[str]:
    if not isinstance(stop_sequences, list):
        return []
    return [s for s in stop_sequences if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]


def _first_candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def _candidate_parts(candidate: dict[str, Any] | None) -> list[Any]:
    if candidate is None:
        return []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _block_reason(data: dict[str, Any]) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return reason if isinstance(reason, str) and reason else None


def _signature_block(signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": "", "signature": GEMINI_SIGNATURE_TAG + signature}


def _tool_use_block(call: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = str(call.get("name") or "")
    call_id = call.get("id")
    args = call.get("args")
    return {
        "type": "tool_use",
        "id": sanitize_tool_use_id(call_id if isinstance(call_id, str) else None),
        "name": names.get(name, name),
        "input": args if isinstance(args, dict) else {},
    }


def _empty_response_error() -> TranslatedStreamError:
    return TranslatedStreamError(ErrorInfo(502, "api_error", "Gemini returned an empty response"))


def _error_from_body(data: dict[str, Any]) -> TranslatedStreamError:
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and code >= 400 else 500
    return TranslatedStreamError(parse_error(status, data))


def translate_response(
    data: dict[str, Any],
    *,
    model: str,
    tool_names: dict[str, str] | None = None,
    stop_sequences: list[str] | None = None,
) -> dict[str, Any]:
    """A non-streaming ``GenerateContentResponse`` as a complete Anthropic message.

    Raises ``TranslatedStreamError`` when the body is a Google error object, or when it holds
    nothing at all (no candidate, no prompt feedback) so the caller can fail over.

    Signatures: thought parts become one thinking block signed ``"gemini." + sig`` (or just
    ``"gemini."`` so the block is recognisably ours and is dropped on the way back). A
    functionCall's signature becomes an empty thinking block right before its tool_use. A text
    part's signature (or a signature-only part's) goes on the step's thinking block still
    unsigned; else, when the response's first call had none, right before that call; else on an
    empty thinking block right after that run of text when a thought or call follows it. One
    that would trail the answer is dropped, so the content always ends with the answer.
    """
    if not isinstance(data, dict):
        raise _empty_response_error()
    if "error" in data:
        raise _error_from_body(data)
    names = tool_names or {}
    candidate = _first_candidate(data)
    block_reason = _block_reason(data) if candidate is None else None
    finish_reason = candidate.get("finishReason") if candidate else None
    parts = _candidate_parts(candidate)
    if not parts and not finish_reason and not block_reason:
        raise _empty_response_error()

    content: list[dict[str, Any]] = []
    thought: dict[str, Any] | None = None  # the thinking block adjacent thought parts extend
    unsigned: dict[str, Any] | None = None  # this step's thinking block still without a signature
    text_signatures: list[str] = []  # wait for the current run of text to end
    # Set while the response's calls so far came without a signature: where one arriving later
    # on a signature-only part goes (right before the first call, or onto the unsigned thinking
    # block just before it), so it travels back on that call. Mirrors the stream's held calls.
    held_at: int | None = None
    held_thought: dict[str, Any] | None = None
    saw_tool_use = False

    def flush_text_signatures() -> bool:
        nonlocal thought
        if not text_signatures:
            return False
        content.extend(_signature_block(signature) for signature in text_signatures)
        text_signatures.clear()
        thought = None
        return True

    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        if not isinstance(signature, str) or not signature:
            signature = None
        call = part.get("functionCall")
        if isinstance(call, dict):
            carried = flush_text_signatures()  # build_request puts these on this call
            if signature is not None:
                content.append(_signature_block(signature))
                held_at = held_thought = None
            elif not saw_tool_use and not carried:
                held_at = len(content)
                if thought is not None and thought["signature"] == GEMINI_SIGNATURE_TAG:
                    held_thought = thought
            content.append(_tool_use_block(call, names))
            saw_tool_use = True
            # A tool call ends the step: a later text signature must not travel back in time.
            thought = unsigned = None
            continue
        text = part.get("text")
        if not isinstance(text, str) or not text:
            if signature is None:
                continue  # an empty thought, inlineData, executableCode…: nothing to show
            # A signature-only part (Gemini 3 ends answers with one). It must not become a
            # block after the answer: clients take the last block as the answer.
            if held_at is not None:
                if held_thought is not None:
                    held_thought["signature"] = GEMINI_SIGNATURE_TAG + signature
                else:
                    content.insert(held_at, _signature_block(signature))
                held_at = held_thought = None
            elif unsigned is not None:
                unsigned["signature"] = GEMINI_SIGNATURE_TAG + signature
                unsigned = None
            else:
                text_signatures.append(signature)
            continue
        held_at = held_thought = None  # content after the calls: a later signature is not theirs
        if part.get("thought") is True:
            flush_text_signatures()
            if thought is None or (
                signature is not None and thought["signature"] != GEMINI_SIGNATURE_TAG
            ):
                thought = {"type": "thinking", "thinking": "", "signature": GEMINI_SIGNATURE_TAG}
                content.append(thought)
            thought["thinking"] += text
            if signature is not None:
                thought["signature"] = GEMINI_SIGNATURE_TAG + signature
            unsigned = (
                thought
                if signature is None and thought["signature"] == GEMINI_SIGNATURE_TAG
                else None
            )
            continue
        thought = None
        previous = content[-1] if content else None
        if previous is not None and previous["type"] == "text":
            previous["text"] += text
        else:
            content.append({"type": "text", "text": text})
        if signature is not None:
            if unsigned is not None:
                unsigned["signature"] = GEMINI_SIGNATURE_TAG + signature
                unsigned = None
            else:
                text_signatures.append(signature)
    # Text signatures still waiting here trail the answer. There is no carrier before the
    # answer left to put them on, and a thinking block after it would become "the answer" for
    # clients that read the last block (Claude Code). Google documents text-part signatures
    # as optional (only functionCall parts are validated), so they are dropped.

    stop_reason, stop_sequence, note = _stop(
        finish_reason, block_reason, saw_tool_use, bool(content), _stop_list(stop_sequences)
    )
    if note:
        content.append({"type": "text", "text": note})
    input_tokens, cache_read, output_tokens = _usage(data.get("usageMetadata"))
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
        },
    }


def parse_count_tokens_response(data: dict[str, Any]) -> dict[str, Any]:
    total = data.get("totalTokens") if isinstance(data, dict) else None
    return {"input_tokens": total if isinstance(total, int) else 0}
