"""A fake Anthropic Messages API as strict as the real one, for API keys or OAuth tokens.

Strictness (each a rule the real API enforces and a proxy can break):
- auth: an API-key account takes only ``x-api-key``; an OAuth account takes only
  ``Authorization: Bearer`` together with ``anthropic-beta: oauth-2025-04-20`` (without it the
  real API gives the misleading "OAuth authentication is currently not supported");
- ``anthropic-version`` is required;
- unknown fields, at the top level, in tools and in content blocks: 400 "Extra inputs are not
  permitted"; ``role: "system"`` inside messages only with the mid-conversation-system beta;
- every ``tool_use`` is answered by a ``tool_result`` at the start of the next user turn, and no
  ``tool_result`` names an id the previous assistant turn did not use;
- thinking blocks sent back carry the signature this fake issued for exactly that text;
- text blocks are non-empty; images decode.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from typing import Any

from tests.fakes import brain
from tests.fakes.strict import Generation, Rejected, StrictFake, path_of
from tests.fakes.upstream import Recorded, Respond

MESSAGE_FIELDS = frozenset(
    "model messages max_tokens system metadata stop_sequences stream temperature top_p top_k "
    "tools tool_choice thinking service_tier container mcp_servers context_management "
    "output_config output_format cache_control inference_geo speed diagnostics".split()
)
COUNT_FIELDS = frozenset(
    "model messages system tools tool_choice thinking mcp_servers context_management "
    "output_config output_format cache_control".split()
)
TOOL_FIELDS = frozenset(
    "name description input_schema cache_control type strict defer_loading input_examples "
    "eager_input_streaming".split()
)
BLOCK_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
OAUTH_BETA = "oauth-2025-04-20"
BETA_FIELDS = {"context_management": "context-management-2025-06-27"}
SYSTEM_BETA = "mid-conversation-system-2026-04-07"


def error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    body["request_id"] = "req_fake" + hashlib.sha256(message.encode()).hexdigest()[:16]
    return Respond.json(body, status, headers)


def invalid(message: str) -> Rejected:
    return Rejected(error(400, "invalid_request_error", message), message)


class AnthropicFake(StrictFake):
    family = "anthropic"

    def __init__(self, secrets: list[str], faults=None, *, oauth: bool = False) -> None:
        super().__init__(secrets, faults)
        self.oauth = oauth

    # Request side -------------------------------------------------------------------------

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        if request.method == "HEAD" or request.path == "/":
            return Respond(404, {"content-type": "application/json"}, b"{}")
        secret = self._authenticate(request.headers)
        if not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")
        if request.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return error(404, "not_found_error", f"Not found: {request.path}")
        if not isinstance(body, dict):
            raise invalid("There was an error parsing the body of your request as JSON")
        counting = request.path.endswith("/count_tokens")
        allowed = COUNT_FIELDS if counting else MESSAGE_FIELDS
        for name in body:
            if name not in allowed:
                raise invalid(f"{name}: Extra inputs are not permitted")
        model = body.get("model")
        if not isinstance(model, str) or not model.startswith("claude-"):
            return error(404, "not_found_error", f"model: {model}")
        if not counting:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int) or max_tokens < 1:
                raise invalid("max_tokens: Field required")
            self._check_thinking(body.get("thinking"), max_tokens)
        betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
        for name, beta in BETA_FIELDS.items():
            # Beta fields exist only under their beta: a proxy that loses the client's
            # anthropic-beta header gets the API's unknown-field answer.
            if name in body and beta not in betas:
                raise invalid(f"{name}: Extra inputs are not permitted")
        tools = self._check_tools(body.get("tools"))
        self._check_system(body.get("system"))
        turns = self._check_messages(body.get("messages"), SYSTEM_BETA in betas)
        if counting:
            return Respond.json({"input_tokens": brain.estimate_tokens(request.body)})
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") in (
            "enabled",
            "adaptive",
        )
        return self.generate(
            Generation(secret, bool(body.get("stream")), model, turns, tools, thinking)
        )

    def _authenticate(self, headers: dict[str, str]) -> str:
        key = headers.get("x-api-key")
        bearer = headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        if not self.oauth:
            if not key:
                raise Rejected(
                    error(401, "authentication_error", "x-api-key header is required"),
                    "no x-api-key",
                )
            if key not in self.secrets:
                raise Rejected(error(401, "authentication_error", "invalid x-api-key"), "bad key")
            return key
        if key:
            # The API prefers x-api-key when present, and an OAuth token is not an API key.
            raise Rejected(
                error(401, "authentication_error", "invalid x-api-key"), "x-api-key on OAuth"
            )
        if not token:
            raise Rejected(
                error(401, "authentication_error", "x-api-key header is required"), "no token"
            )
        if token not in self.secrets:
            raise Rejected(
                error(401, "authentication_error", "Invalid bearer token"), "bad OAuth token"
            )
        if OAUTH_BETA not in headers.get("anthropic-beta", ""):
            raise Rejected(
                error(
                    401, "authentication_error", "OAuth authentication is currently not supported."
                ),
                "OAuth token without the oauth-2025-04-20 beta",
            )
        return token

    @staticmethod
    def _check_thinking(thinking: Any, max_tokens: int) -> None:
        if thinking is None:
            return
        if not isinstance(thinking, dict) or thinking.get("type") not in (
            "enabled",
            "disabled",
            "adaptive",
        ):
            raise invalid("thinking: Input tag does not match any of the expected tags")
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise invalid("thinking.enabled.budget_tokens: Input should be >= 1024")
            if budget >= max_tokens:
                raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")

    @staticmethod
    def _check_tools(tools: Any) -> list[brain.Tool]:
        out = []
        for i, tool in enumerate(tools or []):
            for name in tool:
                if name not in TOOL_FIELDS:
                    raise invalid(f"tools.{i}.custom.{name}: Extra inputs are not permitted")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
            out.append(brain.Tool(tool["name"], schema))
        return out

    @staticmethod
    def _check_system(system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        for i, block in enumerate(system):
            _check_block(block, ["system", i], frozenset({"text"}))

    def _check_messages(self, messages: Any, system_beta: bool) -> list[brain.Turn]:
        if not isinstance(messages, list) or not messages:
            raise invalid("messages: Field required")
        turns: list[brain.Turn] = []
        pending: tuple[int, set[str]] | None = None  # the last assistant turn's tool_use ids
        first = True
        for i, message in enumerate(messages):
            role = message.get("role")
            for name in message:
                if name not in ("role", "content"):
                    raise invalid(f"messages.{i}.{name}: Extra inputs are not permitted")
            if role == "system":
                if not system_beta:
                    raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
                continue
            if role not in ("user", "assistant"):
                raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if first and role != "user":
                raise invalid('messages: first message must use the "user" role')
            first = False
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                raise invalid(f"messages.{i}: all messages must have non-empty content")
            allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
            for j, block in enumerate(blocks):
                _check_block(block, ["messages", i, "content", j], allowed)
            answered = pending is not None
            if pending is not None:
                self._check_results(i, blocks, role, pending)
                pending = None
            if role == "assistant":
                for j, block in enumerate(blocks):
                    if block["type"] == "thinking" and not self.signature_ok(
                        block.get("signature"), block.get("thinking", "")
                    ):
                        raise invalid(
                            f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                        )
                ids = {b["id"] for b in blocks if b["type"] == "tool_use"}
                pending = (i, ids) if ids else None
            elif not answered and any(b["type"] == "tool_result" for b in blocks):
                stray = next(b for b in blocks if b["type"] == "tool_result")
                raise invalid(
                    f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {stray.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
            turns.append(brain.Turn(role, [p for b in blocks for p in _parts(b)]))
        if pending is not None:
            raise invalid(
                f"messages.{pending[0]}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(pending[1]))}"
            )
        return turns

    @staticmethod
    def _check_results(
        i: int, blocks: list[dict[str, Any]], role: str, pending: tuple[int, set[str]]
    ) -> None:
        _, ids = pending
        results = []
        for block in blocks:
            if block["type"] != "tool_result":
                break  # tool_result blocks must come first in the turn
            results.append(block["tool_use_id"])
        missing = ids - set(results)
        if role != "user" or missing:
            raise invalid(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(missing or ids))}. Each `tool_use` block "
                "must have a corresponding `tool_result` block in the next message."
            )
        extra = [r for r in results if r not in ids]
        if extra:
            raise invalid(
                f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {extra[0]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )

    # Response side ------------------------------------------------------------------------

    def _blocks(self, plan: brain.Plan) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if plan.thinking:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": plan.thinking,
                    "signature": self.sign(plan.thinking),
                }
            )
        if plan.text:
            blocks.append({"type": "text", "text": plan.text})
        if plan.calls_tool:
            call_id = (
                "toolu_" + hashlib.sha256(json.dumps(plan.tool_input).encode()).hexdigest()[:20]
            )
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": plan.tool_name,
                    "input": plan.tool_input,
                }
            )
        return blocks

    def encode_message(self, plan: brain.Plan, generation: Generation) -> Respond:
        return Respond.json(
            {
                "id": "msg_fake" + hashlib.sha256(plan.text.encode()).hexdigest()[:16],
                "type": "message",
                "role": "assistant",
                "model": generation.model,
                "content": self._blocks(plan),
                "stop_reason": "tool_use" if plan.calls_tool else "end_turn",
                "stop_sequence": None,
                "usage": _usage(20),
            }
        )

    def encode_stream(self, plan: brain.Plan, generation: Generation) -> Respond:
        start = {
            "id": "msg_fake" + hashlib.sha256(plan.text.encode()).hexdigest()[:16],
            "type": "message",
            "role": "assistant",
            "model": generation.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(1),
        }
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": start})
        ]
        for index, block in enumerate(self._blocks(plan)):
            events += _block_events(index, block)
            if index == 0:
                events.append(("ping", {"type": "ping"}))
        stop = "tool_use" if plan.calls_tool else "end_turn"
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 20},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return Respond.sse(events, headers={"content-type": "text/event-stream; charset=utf-8"})

    def rate_limit_response(self) -> Respond:
        reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return error(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
            {"retry-after": "30", "anthropic-ratelimit-requests-reset": reset},
        )


def _usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, Any]]:
    def delta(payload: dict[str, Any]) -> tuple[str, Any]:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": payload},
        )

    kind = block["type"]
    if kind == "thinking":
        opened = {"type": "thinking", "thinking": "", "signature": ""}
        half = len(block["thinking"]) // 2
        deltas = [
            delta({"type": "thinking_delta", "thinking": block["thinking"][:half]}),
            delta({"type": "thinking_delta", "thinking": block["thinking"][half:]}),
            delta({"type": "signature_delta", "signature": block["signature"]}),
        ]
    elif kind == "text":
        opened = {"type": "text", "text": ""}
        half = len(block["text"]) // 2
        deltas = [
            delta({"type": "text_delta", "text": block["text"][:half]}),
            delta({"type": "text_delta", "text": block["text"][half:]}),
        ]
    else:
        opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = json.dumps(block["input"])
        deltas = [
            delta({"type": "input_json_delta", "partial_json": ""}),
            delta({"type": "input_json_delta", "partial_json": raw[:5]}),
            delta({"type": "input_json_delta", "partial_json": raw[5:]}),
        ]
    return [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opened},
        ),
        *deltas,
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def _check_block(block: Any, location: list[Any], allowed: frozenset[str]) -> None:
    where = path_of(location)
    if not isinstance(block, dict) or block.get("type") not in allowed:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        raise invalid(
            f"{where}: Input tag '{kind}' found using 'type' does not match the expected tags"
        )
    kind = block["type"]
    for name in block:
        if name not in BLOCK_FIELDS[kind]:
            raise invalid(f"{where}.{kind}.{name}: Extra inputs are not permitted")
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
        raise invalid("messages: text content blocks must be non-empty")
    if kind == "tool_use" and not TOOL_ID.match(str(block.get("id", ""))):
        raise invalid(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
    if kind == "image":
        _decode_image(block.get("source"), where)
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            _check_block(inner, [*location, "content", k], frozenset({"text", "image", "document"}))


def _decode_image(source: Any, where: str) -> tuple[str, bytes]:
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise invalid(f"{where}.image.source: Input tag does not match the expected tags")
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        raise invalid(
            f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
        )
    try:
        return media_type, base64.b64decode(source.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}.image.source.base64.data: Invalid base64 data") from None


def _parts(block: dict[str, Any]) -> list[brain.Part]:
    kind = block["type"]
    if kind == "text":
        return [brain.Part("text", text=block["text"])]
    if kind == "image":
        mime, data = _decode_image(block["source"], "")
        return [brain.Part("image", mime=mime, data=data)]
    if kind == "tool_use":
        return [
            brain.Part("tool_call", call_id=block["id"], name=block["name"], input=block["input"])
        ]
    if kind == "tool_result":
        content = block.get("content")
        inner = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        texts = [b["text"] for b in inner if b.get("type") == "text"]
        images = [p for b in inner if b.get("type") == "image" for p in _parts(b)]
        return [
            brain.Part(
                "tool_result", call_id=block["tool_use_id"], text="\n".join(texts), images=images
            )
        ]
    return []


ACCOUNT_TOKEN_PATH = "/v1/oauth/token"


class ClaudeAccountFake(AnthropicFake):
    """Anthropic for a logged-in Claude account: the OAuth upstream above plus the token
    endpoint the account layer refreshes against (CLAUDE_OAUTH_TOKEN_URL). Refresh tokens rotate
    and are single use, as the real endpoint's are; each refresh hands out the next of the
    access tokens this fake accepts, so only a refreshed account can call it."""

    def __init__(self, secrets: list[str], faults=None) -> None:
        super().__init__(secrets, faults, oauth=True)
        # The refresh token each account was seeded with, and the access token it earns.
        self.live_refresh = {f"sk-ant-ort01-compat-seed-{n}": n for n in range(len(secrets))}
        self.refreshes = 0

    # For the matrix's account columns: where the proxy refreshes, and what each account
    # starts as (an expired access token the fake never accepts, the seed refresh token).
    token_env = "CLAUDE_OAUTH_TOKEN_URL"
    token_path = ACCOUNT_TOKEN_PATH

    def account_seed(self, n: int) -> dict[str, Any]:
        return {
            "provider": "anthropic",
            "access_token": f"sk-ant-oat01-compat-expired-{n}",
            "refresh_token": f"sk-ant-ort01-compat-seed-{n}",
            "email": f"compat-{n + 1}@example.com",
        }

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        if request.path == ACCOUNT_TOKEN_PATH:
            return self._token(body)
        return super().dispatch(request, body)

    def _token(self, body: Any) -> Respond:
        if not isinstance(body, dict) or body.get("grant_type") != "refresh_token":
            return Respond.json({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            index = self.live_refresh.pop(str(body.get("refresh_token")), None)
            if index is None:
                return Respond.json(
                    {"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400
                )
            self.refreshes += 1
            rotated = f"sk-ant-ort01-compat-rotated-{index}-{self.refreshes}"
            self.live_refresh[rotated] = index
        return Respond.json(
            {
                "access_token": self.secrets[index],
                "refresh_token": rotated,
                "expires_in": 8 * 3600,
                "token_type": "Bearer",
            }
        )
