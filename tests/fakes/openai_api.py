"""A fake OpenAI-compatible Chat Completions server, validating requests as OpenAI does.

Two flavours, both strict about unknown fields (OpenAI's validation; DeepSeek's reasoner also
refuses ``reasoning_content`` sent back in messages):
- ``reasoning=False`` plays an OpenAI reasoning model (``gpt-5``): it takes ``reasoning_effort``
  and ``max_completion_tokens`` (``max_tokens`` is refused for it, as OpenAI does) and never
  shows its reasoning;
- ``reasoning=True`` plays a DeepSeek-style reasoner: it streams ``reasoning_content`` deltas.

Unknown top-level fields give ``Unrecognized request argument supplied: X``; unknown fields in
a message give ``Additional properties are not allowed (['X'] were unexpected) - 'messages[2]'``;
an assistant message with tool_calls must be followed by a tool message for each id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from tests.fakes import brain
from tests.fakes.strict import Generation, Rejected, StrictFake
from tests.fakes.upstream import Recorded, Respond

TOP_LEVEL = frozenset(
    "model messages tools tool_choice parallel_tool_calls max_tokens max_completion_tokens stop "
    "temperature top_p stream stream_options reasoning_effort user safety_identifier "
    "response_format seed n service_tier frequency_penalty presence_penalty logprobs "
    "top_logprobs logit_bias metadata store modalities audio prediction web_search_options "
    "verbosity prompt_cache_key".split()
)
MESSAGE_FIELDS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
PART_FIELDS = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
_DATA_URL = re.compile(r"^data:([a-z]+/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def openai_error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: Any = None,
    code: Any = None,
):
    return Respond.json(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status
    )


def invalid(message: str, param: Any = None) -> Rejected:
    return Rejected(openai_error(400, message, param=param), message)


class OpenAIFake(StrictFake):
    family = "openai"

    def __init__(
        self, secrets: list[str], faults=None, *, model: str = "gpt-5", reasoning: bool = False
    ) -> None:
        super().__init__(secrets, faults)
        self.model = model
        self.reasoning = reasoning

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        if request.method == "HEAD" or request.path == "/":
            return Respond(404, {"content-type": "application/json"}, b"{}")
        bearer = request.headers.get("authorization", "")
        key = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        if key not in self.secrets:
            raise Rejected(
                openai_error(401, "Incorrect API key provided.", code="invalid_api_key"), "bad key"
            )
        if request.path != "/v1/chat/completions":
            return openai_error(
                404, f"Unknown request URL: POST {request.path}.", code="unknown_url"
            )
        if not isinstance(body, dict):
            raise invalid("We could not parse the JSON body of your request.")
        for name in body:
            if name not in TOP_LEVEL:
                raise invalid(f"Unrecognized request argument supplied: {name}")
        if body.get("model") != self.model:
            return openai_error(
                404,
                f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if not self.reasoning and "max_tokens" in body:
            raise invalid(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                "max_tokens",
            )
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in EFFORTS:
            raise invalid(
                f"Invalid value: '{effort}'. Supported values are: 'low', 'medium', and 'high'.",
                "reasoning_effort",
            )
        if "stream_options" in body and not body.get("stream"):
            raise invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        tools = self._check_tools(body.get("tools"))
        if "tool_choice" in body and not tools:
            raise invalid(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
            )
        turns = self._check_messages(body.get("messages"))
        thinking = effort not in (None, "none", "minimal")
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return self.generate(
            Generation(
                key, bool(body.get("stream")), self.model, turns, tools, thinking, {"usage": usage}
            )
        )

    @staticmethod
    def _check_tools(tools: Any) -> list[brain.Tool]:
        out = []
        for i, tool in enumerate(tools or []):
            if set(tool) - {"type", "function"} or tool.get("type") != "function":
                raise invalid(f"Additional properties are not allowed - 'tools[{i}]'")
            function = tool.get("function") or {}
            extra = sorted(set(function) - {"name", "description", "parameters", "strict"})
            if extra:
                raise invalid(
                    f"Additional properties are not allowed ({extra} were unexpected) - 'tools[{i}].function'"
                )
            if not TOOL_NAME.match(str(function.get("name", ""))):
                raise invalid(
                    f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
                )
            out.append(brain.Tool(function["name"], function.get("parameters") or {}))
        return out

    def _check_messages(self, messages: Any) -> list[brain.Turn]:
        if not isinstance(messages, list) or not messages:
            raise invalid("[] is too short - 'messages'")
        turns: list[brain.Turn] = []
        open_calls: list[str] = []
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in MESSAGE_FIELDS:
                raise invalid(
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.",
                    f"messages[{i}].role",
                )
            extra = sorted(set(message) - MESSAGE_FIELDS[role])
            if extra:
                raise invalid(
                    f"Additional properties are not allowed ({extra} were unexpected) - 'messages[{i}]'"
                )
            if role == "tool":
                if message.get("tool_call_id") not in open_calls:
                    raise invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"messages.[{i}].role",
                    )
                open_calls.remove(message["tool_call_id"])
                text = message.get("content")
                if isinstance(text, list):
                    text = "".join(p.get("text", "") for p in text)
                part = brain.Part(
                    "tool_result", call_id=message["tool_call_id"], text=str(text or "")
                )
                if turns and turns[-1].role == "user":
                    turns[-1].parts.append(part)
                else:
                    turns.append(brain.Turn("user", [part]))
                continue
            if open_calls:
                raise invalid(
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                    f"response messages: {', '.join(open_calls)}",
                    "messages",
                )
            if role in ("system", "developer"):
                continue
            parts = self._content_parts(message.get("content"), i, role)
            if role == "assistant":
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    try:
                        arguments = json.loads(function.get("arguments") or "{}")
                    except ValueError:
                        raise invalid(
                            f"Invalid 'messages[{i}].tool_calls': arguments are not JSON"
                        ) from None
                    open_calls.append(call.get("id"))
                    parts.append(
                        brain.Part(
                            "tool_call",
                            call_id=call.get("id"),
                            name=function.get("name", ""),
                            input=arguments,
                        )
                    )
                if not parts:
                    raise invalid(
                        f"Invalid value for 'content': expected a string, got null. - 'messages[{i}]'"
                    )
            if turns and turns[-1].role == ("user" if role == "user" else "assistant"):
                turns[-1].parts.extend(parts)
            else:
                turns.append(brain.Turn("user" if role == "user" else "assistant", parts))
        if open_calls:
            raise invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_calls)}",
                "messages",
            )
        return turns

    @staticmethod
    def _content_parts(content: Any, i: int, role: str) -> list[brain.Part]:
        if content is None:
            return []
        if isinstance(content, str):
            return [brain.Part("text", text=content)] if content else []
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type")
            if kind not in PART_FIELDS or (kind == "image_url" and role != "user"):
                raise invalid(
                    f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.",
                    f"messages[{i}].content[{j}].type",
                )
            extra = sorted(set(part) - PART_FIELDS[kind])
            if extra:
                raise invalid(
                    f"Additional properties are not allowed ({extra} were unexpected) - 'messages[{i}].content[{j}]'"
                )
            if kind == "text":
                parts.append(brain.Part("text", text=part.get("text", "")))
            else:
                match = _DATA_URL.match(str((part.get("image_url") or {}).get("url", "")))
                if not match:
                    raise invalid("Invalid image URL: expected a data: URL in this fake.")
                try:
                    data = base64.b64decode(match.group(2), validate=True)
                except (binascii.Error, ValueError):
                    raise invalid(
                        "You uploaded an unsupported image. Please make sure your image is valid."
                    ) from None
                parts.append(brain.Part("image", mime=match.group(1), data=data))
        return parts

    # Response side ------------------------------------------------------------------------

    def _call(self, plan: brain.Plan) -> dict[str, Any]:
        return {
            # Unique per call, as OpenAI's are (a repeated id confuses clients' tool bookkeeping).
            "id": "call_" + hashlib.sha256(json.dumps(plan.tool_input).encode()).hexdigest()[:24],
            "type": "function",
            "function": {"name": plan.tool_name, "arguments": json.dumps(plan.tool_input)},
        }

    def _usage(self, plan: brain.Plan) -> dict[str, Any]:
        reasoning = 30 if plan.thinking else 0
        return {
            "prompt_tokens": 100,
            "completion_tokens": 20 + reasoning,
            "total_tokens": 120 + reasoning,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    def encode_message(self, plan: brain.Plan, generation: Generation) -> Respond:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text or None,
            "refusal": None,
        }
        if self.reasoning and plan.thinking:
            message["reasoning_content"] = plan.thinking
        if plan.calls_tool:
            message["tool_calls"] = [self._call(plan)]
        return Respond.json(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if plan.calls_tool else "stop",
                    }
                ],
                "usage": self._usage(plan),
            }
        )

    def encode_stream(self, plan: brain.Plan, generation: Generation) -> Respond:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        chunks = [chunk({"role": "assistant", "content": ""})]
        if self.reasoning and plan.thinking:
            half = len(plan.thinking) // 2
            chunks += [
                chunk({"reasoning_content": plan.thinking[:half]}),
                chunk({"reasoning_content": plan.thinking[half:]}),
            ]
        if plan.text:
            half = len(plan.text) // 2
            chunks += [chunk({"content": plan.text[:half]}), chunk({"content": plan.text[half:]})]
        if plan.calls_tool:
            call = self._call(plan)
            arguments = call["function"]["arguments"]
            first = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": plan.tool_name, "arguments": ""},
            }
            chunks += [
                chunk({"tool_calls": [first]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:6]}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[6:]}}]}),
            ]
        chunks.append(chunk({}, "tool_calls" if plan.calls_tool else "stop"))
        events: list[tuple[str | None, Any]] = [(None, c) for c in chunks]
        if generation.options.get("usage"):  # only when stream_options.include_usage asks
            events.append(
                (
                    None,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1700000000,
                        "model": self.model,
                        "choices": [],
                        "usage": self._usage(plan),
                    },
                )
            )
        events.append((None, b"[DONE]"))
        return Respond.sse(events)

    def rate_limit_response(self) -> Respond:
        response = openai_error(
            429,
            "Rate limit reached for requests. Please try again in 30s.",
            kind="requests",
            code="rate_limit_exceeded",
        )
        response.headers.update({"retry-after": "30", "x-ratelimit-reset-requests": "30s"})
        return response
