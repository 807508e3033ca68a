"""A strict fake of the OpenAI Responses API, in two flavours: the ChatGPT Codex backend
(``/codex/responses``, OAuth tokens from tests.fakes.oauth, ``Chatgpt-Account-Id``) and the
OpenAI API (``/v1/responses``, an API key). It plugs into the scripted fake upstream
(tests.fakes.upstream) as its default handler; ``upstream.script(path, Respond…)`` still wins.

What it refuses, with the error shapes the real servers use:
- unknown fields at the top level and inside input items / content parts (OpenAI's
  ``{"error": {"message": "Unknown parameter: 'x'.", "type": "invalid_request_error",
  "param": "x", "code": "unknown_parameter"}}``);
- a ``function_call_output`` that answers no earlier ``function_call``, a ``function_call`` left
  unanswered, a ``call_id`` over 64 characters, a tool name outside ``^[a-zA-Z0-9_-]{1,64}$``;
- a ``function_call`` this server issued together with encrypted reasoning, sent back without
  that reasoning; encrypted reasoning it issued to another account ("could not be verified");
- Codex: ``store`` not false or ``stream`` not true, ``max_output_tokens`` / ``temperature`` /
  ``top_p`` (``{"detail": "Unsupported parameter: …"}``), no or a wrong ``Chatgpt-Account-Id``,
  a token that is not live (401).

Also refused: ``reasoning`` / ``include`` / ``tool_choice`` values the API does not know, and a
``tool_choice`` naming a function that is not among the tools. The reasoning rule is kept per
account: a backend only knows the calls it issued itself.

What it answers: ``turns`` (a queue of ``Turn``s; else ``default_turn``) as a Responses SSE
stream: reasoning with summary and encrypted content, text, function calls, usage, and how it
ends (completed, incomplete, failed).

The rules and the encoding are ``ResponsesRules``, which the brain-driven fake of the
compatibility matrix (tests.fakes.responses_brain) shares.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.oauth import FakeOAuth
from tests.fakes.upstream import FakeUpstream, Recorded, Respond

CODEX_PATH = "/codex/responses"
API_PATH = "/v1/responses"
COUNT_PATH = "/v1/responses/input_tokens"
COUNTED = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning"}
)
_serial = itertools.count(1)
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

TOP_LEVEL = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "include",
        "max_output_tokens",
        "temperature",
        "top_p",
        "store",
        "stream",
        "prompt_cache_key",
        "metadata",
        "text",
        "service_tier",
        "truncation",
        "safety_identifier",
    }
)
ITEM_FIELDS = {
    "message": frozenset({"type", "role", "content", "id", "status"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
    "reasoning": frozenset({"type", "summary", "encrypted_content", "id", "content"}),
}
PART_FIELDS = {
    "input_text": frozenset({"type", "text"}),
    "input_image": frozenset({"type", "image_url", "detail", "file_id"}),
    "input_file": frozenset({"type", "file_data", "filename", "file_url", "file_id"}),
    "output_text": frozenset({"type", "text", "annotations"}),
    "refusal": frozenset({"type", "refusal"}),
}
ROLE_PARTS = {
    "user": {"input_text", "input_image", "input_file"},
    "developer": {"input_text", "input_image", "input_file"},
    "system": {"input_text"},
    "assistant": {"output_text", "refusal"},
}
TOOL_FIELDS = frozenset({"type", "name", "description", "parameters", "strict"})
HOSTED_SEARCH_FIELDS = frozenset({"type", "filters", "user_location", "search_context_size"})
CODEX_REFUSED = ("max_output_tokens", "temperature", "top_p")
REASONING_FIELDS = frozenset({"effort", "summary", "generate_summary"})
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
SUMMARIES = frozenset({"auto", "concise", "detailed"})
INCLUDABLE = frozenset(
    {
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "web_search_call.action.sources",
        "web_search_call.results",
        "file_search_call.results",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
    }
)


class Refused(Exception):
    def __init__(self, response: Respond) -> None:
        self.response = response


def unknown_parameter(param: str) -> Refused:
    return Refused(
        Respond.json(
            {
                "error": {
                    "message": f"Unknown parameter: '{param}'.",
                    "type": "invalid_request_error",
                    "param": param,
                    "code": "unknown_parameter",
                }
            },
            400,
        )
    )


def invalid(message: str, param: str | None = None, code: str | None = None) -> Refused:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return Refused(Respond.json({"error": error}, 400))


@dataclass
class Turn:
    """One answer: output items in order, then how the response ends."""

    reasoning: str | None = "Thinking it over."
    text: str | None = "Hello from Responses."
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments)
    usage: dict[str, Any] | None = None
    status: str = "completed"  # completed | incomplete | failed
    incomplete_reason: str = "max_output_tokens"
    error: dict[str, Any] | None = None  # for failed: {"code", "message"}
    fail_before_output: bool = False  # response.failed right after response.created
    headers: dict[str, str] = field(default_factory=dict)
    search: str | None = None  # a hosted web search (its query) before the text


class ResponsesRules:
    """What the Responses API checks and how it answers, shared by the scripted fake below and
    the brain-driven one of the compatibility matrix (tests.fakes.responses_brain)."""

    def __init__(self) -> None:
        # Encrypted reasoning issued: content -> (account, call_ids issued with it).
        self.issued: dict[str, tuple[str, list[str]]] = {}

    def validate(self, body: Any, codex: bool, account: str) -> None:
        if not isinstance(body, dict):
            raise invalid("The body must be a JSON object.")
        for name in body:
            if name not in TOP_LEVEL:
                raise unknown_parameter(name)
        if codex:
            if body.get("store") is not False:
                raise Refused(Respond.json({"detail": "Store must be set to false"}, 400))
            if body.get("stream") is not True:
                raise Refused(Respond.json({"detail": "Stream must be set to true"}, 400))
            if not isinstance(body.get("instructions"), str):
                raise Refused(Respond.json({"detail": "Instructions are required"}, 400))
            for name in CODEX_REFUSED:
                if name in body:
                    raise Refused(Respond.json({"detail": f"Unsupported parameter: {name}"}, 400))
        for position, tool in enumerate(body.get("tools") or ()):
            if tool.get("type") == "web_search":
                for name in tool:
                    if name not in HOSTED_SEARCH_FIELDS:
                        raise unknown_parameter(f"tools[{position}].{name}")
                continue
            if tool.get("type") != "function":
                raise invalid(f"Invalid value: '{tool.get('type')}'.", f"tools[{position}].type")
            for name in tool:
                if name not in TOOL_FIELDS:
                    raise unknown_parameter(f"tools[{position}].{name}")
            if not _TOOL_NAME.fullmatch(str(tool.get("name"))):
                raise invalid(
                    f"Invalid 'tools[{position}].name': string does not match pattern.",
                    f"tools[{position}].name",
                    "invalid_value",
                )
        self._validate_options(body)
        self.validate_input(body.get("input"), account)

    @staticmethod
    def _validate_options(body: dict[str, Any]) -> None:
        reasoning = body.get("reasoning")
        if reasoning is not None:
            if not isinstance(reasoning, dict):
                raise invalid("Invalid type for 'reasoning': expected an object.", "reasoning")
            for name in reasoning:
                if name not in REASONING_FIELDS:
                    raise unknown_parameter(f"reasoning.{name}")
            effort = reasoning.get("effort")
            if effort is not None and effort not in EFFORTS:
                raise invalid(
                    f"Invalid value: '{effort}'. Supported values are: 'minimal', 'low', "
                    "'medium', and 'high'.",
                    "reasoning.effort",
                    "invalid_value",
                )
            summary = reasoning.get("summary")
            if summary is not None and summary not in SUMMARIES:
                raise invalid(
                    f"Invalid value: '{summary}'. Supported values are: 'auto', 'concise', "
                    "and 'detailed'.",
                    "reasoning.summary",
                    "invalid_value",
                )
        for position, value in enumerate(body.get("include") or ()):
            if value not in INCLUDABLE:
                raise invalid(f"Invalid value: '{value}'.", f"include[{position}]", "invalid_value")
        choice = body.get("tool_choice")
        names = {t.get("name") for t in body.get("tools") or () if t.get("type") == "function"}
        if isinstance(choice, dict) and choice.get("type") == "function":
            if choice.get("name") not in names:
                raise invalid(
                    f"Tool choice '{choice.get('name')}' not found in 'tools' parameter.",
                    "tool_choice",
                )
        elif isinstance(choice, str) and choice not in ("auto", "none", "required"):
            raise invalid(f"Invalid value: '{choice}'.", "tool_choice", "invalid_value")

    def validate_input(self, items: Any, account: str) -> None:
        if not isinstance(items, list) or not items:
            raise invalid(
                "Missing required parameter: 'input'.", "input", "missing_required_parameter"
            )
        calls: set[str] = set()
        answered: set[str] = set()
        reasoning_seen: set[str] = set()
        for position, item in enumerate(items):
            kind = item.get("type")
            if kind not in ITEM_FIELDS:
                raise invalid(
                    f"Invalid value: '{kind}'.", f"input[{position}].type", "invalid_value"
                )
            for name in item:
                if name not in ITEM_FIELDS[kind]:
                    raise unknown_parameter(f"input[{position}].{name}")
            if kind == "message":
                role = item.get("role")
                allowed = ROLE_PARTS.get(role)
                if allowed is None:
                    raise invalid(f"Invalid value: '{role}'.", f"input[{position}].role")
                for number, part in enumerate(item.get("content") or ()):
                    part_kind = part.get("type")
                    if part_kind not in allowed:
                        raise invalid(
                            f"Invalid value: '{part_kind}'.",
                            f"input[{position}].content[{number}].type",
                        )
                    for name in part:
                        if name not in PART_FIELDS[part_kind]:
                            raise unknown_parameter(f"input[{position}].content[{number}].{name}")
            elif kind == "reasoning":
                if "summary" not in item:
                    raise invalid(
                        "Missing required parameter: 'summary'.", f"input[{position}].summary"
                    )
                encrypted = item.get("encrypted_content")
                issued = self.issued.get(encrypted)
                if issued is None or issued[0] != account:
                    raise invalid(
                        f"The encrypted content for item input[{position}] could not be verified.",
                        code="invalid_encrypted_content",
                    )
                reasoning_seen.add(encrypted)
            elif kind == "function_call":
                call_id = str(item.get("call_id") or "")
                if len(call_id) > 64:
                    raise invalid(
                        f"Invalid 'input[{position}].call_id': string too long. Expected a "
                        f"string with maximum length 64, but got a string with length "
                        f"{len(call_id)} instead.",
                        f"input[{position}].call_id",
                        "string_above_max_length",
                    )
                # Only this account's own calls: another account's backend never saw them.
                for encrypted, (owner, issued_calls) in self.issued.items():
                    if (
                        owner == account
                        and call_id in issued_calls
                        and encrypted not in reasoning_seen
                    ):
                        raise invalid(
                            f"Item '{call_id}' of type 'function_call' was provided without its "
                            "required 'reasoning' item."
                        )
                calls.add(call_id)
            elif kind == "function_call_output":
                call_id = str(item.get("call_id") or "")
                if call_id not in calls:
                    raise invalid(
                        f"No tool call found for function call output with call_id {call_id}.",
                        "input",
                    )
                answered.add(call_id)
        missing = calls - answered
        if missing:
            raise invalid(f"No tool output found for function call {sorted(missing)[0]}.", "input")

    # -----------------------------------------------------------------------------------------

    def answer(self, body: dict[str, Any], turn: Turn, account: str) -> Respond:
        """The turn as a Responses SSE stream."""
        return Respond.sse(self.events(body, turn, account), headers=turn.headers)

    def events(
        self, body: dict[str, Any], turn: Turn, account: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """The turn as the stream's events, in order; the last one ends the response."""
        response_id = f"resp_{next(_serial):06d}"
        model = body.get("model")
        base = {"id": response_id, "object": "response", "model": model, "output": []}
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "response.created",
                {"type": "response.created", "response": {**base, "status": "in_progress"}},
            ),
            (
                "response.in_progress",
                {"type": "response.in_progress", "response": {**base, "status": "in_progress"}},
            ),
        ]
        if turn.fail_before_output:
            events.append(_failed(base, turn.error))
            return events
        output: list[dict[str, Any]] = []
        call_ids = [f"call_{next(_serial):06d}" for _ in turn.calls]
        wants_reasoning = "reasoning.encrypted_content" in (body.get("include") or ())
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        # Summaries only when asked for; the encrypted reasoning only when included.
        summary = turn.reasoning if reasoning.get("summary") else None
        if turn.reasoning is not None and (summary or wants_reasoning):
            item_id = f"rs_{next(_serial):06d}"
            encrypted = f"enc-{account}-{next(_serial):06d}" if wants_reasoning else None
            if encrypted:
                self.issued[encrypted] = (account, call_ids)
            index = len(output)
            events.append(
                _event(
                    "response.output_item.added",
                    output_index=index,
                    item={"id": item_id, "type": "reasoning", "summary": []},
                )
            )
            if summary:
                where = {"item_id": item_id, "output_index": index, "summary_index": 0}
                part = {"type": "summary_text", "text": ""}
                events.append(_event("response.reasoning_summary_part.added", **where, part=part))
                for piece in _pieces(summary):
                    events.append(
                        _event("response.reasoning_summary_text.delta", **where, delta=piece)
                    )
                events.append(_event("response.reasoning_summary_text.done", **where, text=summary))
                part = {"type": "summary_text", "text": summary}
                events.append(_event("response.reasoning_summary_part.done", **where, part=part))
            item = {
                "id": item_id,
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": summary}] if summary else [],
            }
            if encrypted:
                item["encrypted_content"] = encrypted
            events.append(_event("response.output_item.done", output_index=index, item=item))
            output.append(item)
        if turn.search is not None:
            if not any(t.get("type") == "web_search" for t in body.get("tools") or ()):
                raise AssertionError("the script searches but the request offered no web_search")
            item_id = f"ws_{next(_serial):06d}"
            index = len(output)
            item = {"id": item_id, "type": "web_search_call", "status": "in_progress"}
            events.append(_event("response.output_item.added", output_index=index, item=item))
            for phase in ("in_progress", "searching", "completed"):
                kind = f"response.web_search_call.{phase}"
                events.append(_event(kind, output_index=index, item_id=item_id))
            action = {
                "type": "search",
                "query": turn.search,
                "sources": [{"type": "url", "url": "https://example.com/result"}],
            }
            item = {**item, "status": "completed", "action": action}
            events.append(_event("response.output_item.done", output_index=index, item=item))
            output.append(item)
        if turn.text is not None:
            item_id = f"msg_{next(_serial):06d}"
            index = len(output)
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            events.append(
                _event(
                    "response.output_item.added",
                    output_index=index,
                    item={
                        "id": item_id,
                        "type": "message",
                        "role": "assistant",
                        "status": "in_progress",
                        "content": [],
                    },
                )
            )
            events.append(
                _event(
                    "response.content_part.added",
                    **where,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            )
            for piece in _pieces(turn.text):
                events.append(_event("response.output_text.delta", **where, delta=piece))
            events.append(_event("response.output_text.done", **where, text=turn.text))
            part = {"type": "output_text", "text": turn.text, "annotations": []}
            events.append(_event("response.content_part.done", **where, part=part))
            item = {
                "id": item_id,
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
            events.append(_event("response.output_item.done", output_index=index, item=item))
            output.append(item)
        for (name, arguments), call_id in zip(turn.calls, call_ids, strict=True):
            item_id = f"fc_{next(_serial):06d}"
            index = len(output)
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "call_id": call_id,
                "name": name,
                "arguments": "",
            }
            events.append(_event("response.output_item.added", output_index=index, item=item))
            text = json.dumps(arguments)
            for piece in _pieces(text, 7):
                events.append(
                    _event(
                        "response.function_call_arguments.delta",
                        item_id=item_id,
                        output_index=index,
                        delta=piece,
                    )
                )
            events.append(
                _event(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=index,
                    arguments=text,
                )
            )
            item = {**item, "status": "completed", "arguments": text}
            events.append(_event("response.output_item.done", output_index=index, item=item))
            output.append(item)
        usage = turn.usage or {
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 10},
            "total_tokens": 150,
        }
        if turn.status == "failed":
            events.append(_failed(base, turn.error))
        elif turn.status == "incomplete":
            final = {
                **base,
                "status": "incomplete",
                "output": output,
                "usage": usage,
                "incomplete_details": {"reason": turn.incomplete_reason},
            }
            events.append(
                ("response.incomplete", {"type": "response.incomplete", "response": final})
            )
        else:
            final = {**base, "status": "completed", "output": output, "usage": usage}
            events.append(("response.completed", {"type": "response.completed", "response": final}))
        return events


class FakeResponses(ResponsesRules):
    def __init__(
        self,
        server: FakeUpstream,
        *,
        oauth: FakeOAuth | None = None,
        api_key: str = "",
    ) -> None:
        super().__init__()
        self.server = server
        self.oauth = oauth
        self.api_key = api_key
        self.turns: deque[Turn] = deque()
        self.default_turn = Turn()
        self.refusals: list[dict[str, Any]] = []
        self._fallback = server.default
        server.default = self.handle

    @property
    def codex_base(self) -> str:
        return self.server.url + "/codex"

    @property
    def api_base(self) -> str:
        return self.server.url + "/v1"

    def calls(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.path in (CODEX_PATH, API_PATH)]

    # -----------------------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Respond:
        if request.path == COUNT_PATH:
            return self._count(request)
        if request.path not in (CODEX_PATH, API_PATH):
            return self._fallback(request)
        codex = request.path == CODEX_PATH
        try:
            account = self._authenticate(request, codex)
            body = request.json()
            self.validate(body, codex, account)
        except Refused as refused:
            try:
                self.refusals.append(json.loads(refused.response.body))
            except ValueError:
                self.refusals.append({})
            return refused.response
        turn = self.turns.popleft() if self.turns else self.default_turn
        return self.answer(body, turn, account)

    def _count(self, request: Recorded) -> Respond:
        """OpenAI's input token counter: the request's input fields only, a rough count."""
        try:
            self._authenticate(request, codex=False)
            body = request.json()
            for name in body:
                if name not in COUNTED:
                    raise unknown_parameter(name)
            self.validate_input(body.get("input"), "api")
        except Refused as refused:
            return refused.response
        words = len(json.dumps([body.get("instructions"), body.get("input")]).split())
        return Respond.json({"object": "response.input_tokens", "input_tokens": words})

    def _authenticate(self, request: Recorded, codex: bool) -> str:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not codex:
            if not self.api_key or token != self.api_key:
                raise Refused(
                    Respond.json(
                        {
                            "error": {
                                "message": "Incorrect API key provided.",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": "invalid_api_key",
                            }
                        },
                        401,
                    )
                )
            return "api"
        assert self.oauth is not None
        holder = next((a for a in self.oauth.accounts if token in a.access), None)
        if holder is None or not self.oauth.is_live(token):
            raise Refused(
                Respond.json(
                    {
                        "error": {
                            "message": "Provided authentication token is expired.",
                            "type": "invalid_request_error",
                            "code": "token_expired",
                        }
                    },
                    401,
                )
            )
        if request.headers.get("chatgpt-account-id") != holder.uuid:
            raise Refused(Respond.json({"detail": "Missing or wrong ChatGPT-Account-Id"}, 403))
        if request.headers.get("accept") != "text/event-stream":
            raise Refused(Respond.json({"detail": "Accept must be text/event-stream"}, 400))
        return holder.uuid


def _event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def _failed(base: dict[str, Any], error: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    error = error or {"code": "server_error", "message": "The server had an error."}
    response = {**base, "status": "failed", "error": error}
    return "response.failed", {"type": "response.failed", "response": response}


def _pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
