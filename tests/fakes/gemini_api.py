"""A fake Gemini API (Generative Language v1beta) as strict as the real one, 2.5 or 3.

Strictness:
- unknown field names anywhere in the request: 400 ``Invalid JSON payload received. Unknown
  name "X" at 'path': Cannot find field.`` (the proto JSON parser; snake_case is accepted);
- roles are ``user``/``model``; a function call turn follows a user or function response turn;
  as many function responses as the call turn had calls;
- thinking config per model: 2.5 Pro takes a budget (never 0) and refuses ``thinkingLevel``;
  3 Pro takes LOW/HIGH levels; never a budget and a level together;
- ``parameters`` (OpenAPI subset) and ``parametersJsonSchema`` are mutually exclusive, and the
  former refuses JSON-Schema-only keywords;
- Gemini 3 only: every model step of the current turn that calls a function carries, on its
  first functionCall part, the thoughtSignature this fake issued for that call (or Google's
  documented ``skip_thought_signature_validator``); otherwise 400, as the real service does.

What it sends mirrors the real service, odd parts included: streams are ``data:`` lines ending
in ``\\r\\n\\r\\n`` without event names or [DONE]; function calls arrive whole with a signature;
and Gemini 3 ends a streamed text answer with an extra part ``{"text": "", "thoughtSignature":
…}`` after the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tests.fakes import brain
from tests.fakes.strict import Generation, Rejected, StrictFake
from tests.fakes.upstream import Recorded, Respond

ANY = None  # a free-form value (Struct): not checked further
SCHEMA: dict[str, dict[str, Any]] = {
    "GenerateContentRequest": {
        "contents": ["Content"],
        "systemInstruction": "Content",
        "tools": ["Tool"],
        "toolConfig": "ToolConfig",
        "generationConfig": "GenerationConfig",
        "safetySettings": ["SafetySetting"],
        "cachedContent": ANY,
        "model": ANY,
    },
    "CountTokensRequest": {
        "contents": ["Content"],
        "generateContentRequest": "GenerateContentRequest",
    },
    "Content": {"role": ANY, "parts": ["Part"]},
    "Part": {
        "text": ANY,
        "inlineData": "Blob",
        "fileData": "FileData",
        "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse",
        "thought": ANY,
        "thoughtSignature": ANY,
        "executableCode": ANY,
        "codeExecutionResult": ANY,
        "videoMetadata": ANY,
        "mediaResolution": ANY,
    },
    "Blob": {"mimeType": ANY, "data": ANY},
    "FileData": {"mimeType": ANY, "fileUri": ANY},
    "FunctionCall": {"id": ANY, "name": ANY, "args": ANY},
    "FunctionResponse": {
        "id": ANY,
        "name": ANY,
        "response": ANY,
        "parts": ["Part"],
        "willContinue": ANY,
        "scheduling": ANY,
    },
    "Tool": {
        "functionDeclarations": ["FunctionDeclaration"],
        "googleSearch": ANY,
        "googleSearchRetrieval": ANY,
        "codeExecution": ANY,
        "urlContext": ANY,
    },
    "FunctionDeclaration": {
        "name": ANY,
        "description": ANY,
        "parameters": ANY,  # checked by _check_openapi_schema
        "parametersJsonSchema": ANY,
        "response": ANY,
        "responseJsonSchema": ANY,
        "behavior": ANY,
    },
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": ANY},
    "FunctionCallingConfig": {"mode": ANY, "allowedFunctionNames": ANY},
    "GenerationConfig": {
        name: ANY
        for name in (
            "stopSequences responseMimeType responseSchema responseJsonSchema "
            "responseModalities candidateCount maxOutputTokens temperature topP topK seed "
            "presencePenalty frequencyPenalty responseLogprobs logprobs enableEnhancedCivicAnswers "
            "speechConfig mediaResolution"
        ).split()
    }
    | {"thinkingConfig": "ThinkingConfig"},
    "ThinkingConfig": {"thinkingBudget": ANY, "includeThoughts": ANY, "thinkingLevel": ANY},
    "SafetySetting": {"category": ANY, "threshold": ANY},
}
OPENAPI_KEYS = frozenset(
    "type format title description nullable enum maxItems minItems properties required "
    "minProperties maxProperties minLength maxLength pattern example anyOf propertyOrdering "
    "default items minimum maximum".split()
)
SKIP_SIGNATURE = "skip_thought_signature_validator"
# Gemini 2.5 and thinkingLevel: users of 2.5 Pro/Flash report 400 "Thinking level is not
# supported for this model." (microsoft/vscode#334581, 2026-09; RooCodeInc/Roo-Code#10700),
# while Google's thinking page lists low/medium/high for 2.5 too. The fake follows what the
# service was seen to answer; set this to True to follow the documentation instead.
LEVELS_ON_GEMINI_2_5 = False
_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")


def google_error(status: int, code: str, message: str, details: list[Any] | None = None):
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        error["details"] = details
    return Respond.json({"error": error}, status)


def invalid(message: str) -> Rejected:
    return Rejected(google_error(400, "INVALID_ARGUMENT", message), message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def check_fields(value: Any, kind: str, where: str) -> None:
    """Reject names the message type does not have, the way the proto JSON parser does."""
    if not isinstance(value, dict):
        raise invalid(f"Invalid value at '{where}' ({kind}), expected an object")
    fields = SCHEMA[kind]
    for raw_name, item in value.items():
        name = _camel(raw_name)
        if name not in fields:
            at = f" at '{where}'" if where else ""
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{raw_name}"{at}: Cannot find field.'
            )
        sub = fields[name]
        path = f"{where}.{raw_name}" if where else raw_name
        if isinstance(sub, list):
            if not isinstance(item, list):
                raise invalid(f"Invalid value at '{path}', expected a list")
            for i, element in enumerate(item):
                check_fields(element, sub[0], f"{path}[{i}]")
        elif isinstance(sub, str):
            check_fields(item, sub, path)


def _check_openapi_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        return
    for name, value in schema.items():
        if name not in OPENAPI_KEYS:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
            )
        if name == "properties" and isinstance(value, dict):
            for key, sub in value.items():
                _check_openapi_schema(sub, f"{where}.properties[{key}].value")
        elif name == "items":
            _check_openapi_schema(value, f"{where}.items")
        elif name == "anyOf" and isinstance(value, list):
            for i, sub in enumerate(value):
                _check_openapi_schema(sub, f"{where}.any_of[{i}]")


class GeminiFake(StrictFake):
    family = "gemini"

    def __init__(self, secrets: list[str], faults=None, *, model: str = "gemini-2.5-pro") -> None:
        super().__init__(secrets, faults)
        self.model = model
        self.gemini3 = model.startswith("gemini-3")

    # Request side -------------------------------------------------------------------------

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        if request.method == "HEAD" or request.path == "/":
            return Respond(404, {"content-type": "text/html"}, b"")
        key = request.headers.get("x-goog-api-key") or (request.query.get("key") or [""])[0]
        if not key:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity).",
            )
        if key not in self.secrets:
            raise Rejected(
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                        }
                    ],
                ),
                "bad API key",
            )
        match = _PATH.match(request.path)
        if not match:
            return google_error(404, "NOT_FOUND", f"Not found: {request.path}")
        model, action = match.groups()
        if model != self.model:
            return google_error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for {action}.",
            )
        if not isinstance(body, dict):
            raise invalid("Invalid JSON payload received.")
        if action == "countTokens":
            return self._count_tokens(body)
        if action == "streamGenerateContent" and request.query.get("alt") != ["sse"]:
            raise invalid("This fake only streams with alt=sse (as the proxy asks).")
        check_fields(body, "GenerateContentRequest", "")
        turns, tools, thinking = self._check_request(body)
        return self.generate(
            Generation(key, action == "streamGenerateContent", model, turns, tools, thinking)
        )

    def _count_tokens(self, body: dict[str, Any]) -> Respond:
        check_fields(body, "CountTokensRequest", "")
        if ("contents" in body) == ("generateContentRequest" in body):
            raise invalid("Exactly one of contents or generateContentRequest must be set.")
        inner = body.get("generateContentRequest")
        if inner is not None:
            if inner.get("model") != f"models/{self.model}":
                raise invalid(f"generate_content_request.model: expected models/{self.model}")
            self._check_request(inner)
        else:
            self._check_contents(body["contents"])
        total = brain.estimate_tokens(json.dumps(body).encode())
        return Respond.json(
            {
                "totalTokens": total,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
            }
        )

    def _check_request(
        self, body: dict[str, Any]
    ) -> tuple[list[brain.Turn], list[brain.Tool], bool]:
        thinking = self._check_thinking((body.get("generationConfig") or {}).get("thinkingConfig"))
        tools: list[brain.Tool] = []
        for i, tool in enumerate(body.get("tools") or []):
            for j, declaration in enumerate(tool.get("functionDeclarations") or []):
                where = f"tools[{i}].function_declarations[{j}]"
                if "parameters" in declaration and "parametersJsonSchema" in declaration:
                    raise invalid(
                        f"{where}: parameters and parameters_json_schema are mutually exclusive."
                    )
                if "parameters" in declaration:
                    _check_openapi_schema(declaration["parameters"], f"{where}.parameters")
                # The brain only reads "properties", which both schema dialects spell alike.
                schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
                schema = schema if isinstance(schema, dict) else {}
                tools.append(brain.Tool(declaration.get("name", ""), schema))
        turns = self._check_contents(body.get("contents"))
        return turns, tools, thinking

    def _check_thinking(self, config: Any) -> bool:
        if not config:
            return False
        budget, level = config.get("thinkingBudget"), config.get("thinkingLevel")
        if budget is not None and level is not None:
            raise invalid("You can only set either thinking budget or thinking level.")
        if self.gemini3:
            if level is not None and level not in ("LOW", "HIGH", "low", "high"):
                raise invalid(
                    f"Unable to submit request because thinking_level {level} is not supported by this model."
                )
        else:
            if level is not None and not LEVELS_ON_GEMINI_2_5:
                raise invalid("Thinking level is not supported for this model.")
            if budget == 0:
                raise invalid("Budget 0 is invalid. This model only works in thinking mode.")
        return bool(config.get("includeThoughts"))

    def _check_contents(self, contents: Any) -> list[brain.Turn]:
        if not isinstance(contents, list) or not contents:
            raise invalid("* GenerateContentRequest.contents: contents is not specified")
        turns: list[brain.Turn] = []
        previous: dict[str, Any] | None = None
        current_turn_start = 0  # index of the user content that starts the current turn
        for i, content in enumerate(contents):
            role = content.get("role", "user")
            parts = content.get("parts") or []
            if role not in ("user", "model"):
                raise invalid("Please use a valid role: user, model.")
            if not parts:
                raise invalid(
                    f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
                )
            calls = [p for p in parts if "functionCall" in p]
            responses = [p for p in parts if "functionResponse" in p]
            if calls and (previous is None or previous.get("role") == "model"):
                raise invalid(
                    "Please ensure that function call turn comes immediately after a user turn or "
                    "after a function response turn."
                )
            previous_calls = [p for p in (previous or {}).get("parts", []) if "functionCall" in p]
            if previous_calls and role == "user" and len(responses) != len(previous_calls):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            if role == "user" and any("functionResponse" not in p for p in parts):
                current_turn_start = i
            turns.append(brain.Turn("user" if role == "user" else "assistant", _parts(parts)))
            previous = content
        if self.gemini3:
            self._check_signatures(contents, current_turn_start)
        return turns

    def _check_signatures(self, contents: list[dict[str, Any]], start: int) -> None:
        for i in range(start, len(contents)):
            content = contents[i]
            if content.get("role") != "model":
                continue
            for j, part in enumerate(content.get("parts") or []):
                if "functionCall" not in part:
                    continue
                signature = part.get("thoughtSignature")
                call = part["functionCall"]
                if signature is None:
                    raise invalid(
                        "Function call is missing a thought_signature in functionCall parts. This "
                        "is required for tools to work correctly, and missing thought_signature may "
                        "lead to degraded model performance. Additional data, function call "
                        f"`default_api:{call.get('name')}` , position {j + 1}. Please refer to "
                        "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                    )
                if signature != SKIP_SIGNATURE and not self.signature_ok(
                    signature, _call_key(call)
                ):
                    raise invalid("Corrupted thought signature.")
                break  # only the first functionCall of a step carries it

    # Response side ------------------------------------------------------------------------

    def _answer_parts(self, plan: brain.Plan, thoughts: bool) -> list[list[dict[str, Any]]]:
        """The parts of the answer, grouped as the stream chunks them."""
        chunks: list[list[dict[str, Any]]] = []
        if plan.thinking and thoughts:
            chunks.append([{"text": plan.thinking, "thought": True}])
        if plan.text:
            half = len(plan.text) // 2
            chunks += [[{"text": plan.text[:half]}], [{"text": plan.text[half:]}]]
        if plan.calls_tool:
            call = {"name": plan.tool_name, "args": plan.tool_input}
            chunks.append([{"functionCall": call, "thoughtSignature": self.sign(_call_key(call))}])
        return chunks

    def _usage(self, plan: brain.Plan) -> dict[str, Any]:
        return {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30 if plan.thinking else 0,
            "totalTokenCount": 150 if plan.thinking else 120,
        }

    def encode_stream(self, plan: brain.Plan, generation: Generation) -> Respond:
        chunks = self._answer_parts(plan, generation.thinking)
        if self.gemini3 and plan.text and not plan.calls_tool:
            # What Gemini 3 really sends: the text signature on an empty part after the answer.
            chunks.append([{"text": "", "thoughtSignature": self.sign(plan.text)}])
        events = []
        for n, parts in enumerate(chunks):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            data: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model}
            if n == len(chunks) - 1:
                candidate["finishReason"] = "STOP"
            data["usageMetadata"] = self._usage(plan)
            data["responseId"] = "fake-response-1"
            events.append((None, data))
        return Respond.sse(events, terminator=b"\r\n\r\n")

    def encode_message(self, plan: brain.Plan, generation: Generation) -> Respond:
        parts = [part for chunk in self._answer_parts(plan, generation.thinking) for part in chunk]
        # Non-stream: the text pieces are one part, which carries the signature on Gemini 3.
        merged: list[dict[str, Any]] = []
        for part in parts:
            if (
                merged
                and "text" in part
                and "text" in merged[-1]
                and not part.get("thought")
                and not merged[-1].get("thought")
            ):
                merged[-1] = {"text": merged[-1]["text"] + part["text"]}
            else:
                merged.append(part)
        if self.gemini3 and plan.text and not plan.calls_tool:
            merged[-1]["thoughtSignature"] = self.sign(plan.text)
        return Respond.json(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": merged},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": self._usage(plan),
                "modelVersion": self.model,
                "responseId": "fake-response-1",
            }
        )

    def rate_limit_response(self) -> Respond:
        return google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"},
            ],
        )


def _call_key(call: dict[str, Any]) -> str:
    return f"{call.get('name')}:{json.dumps(call.get('args') or {}, sort_keys=True)}"


def _image(blob: dict[str, Any]) -> brain.Part:
    try:
        data = base64.b64decode(blob.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "Invalid value at 'inline_data.data' (TYPE_BYTES), Base64 decoding failed"
        ) from None
    return brain.Part("image", mime=blob.get("mimeType", ""), data=data)


def _parts(parts: list[dict[str, Any]]) -> list[brain.Part]:
    out = []
    for part in parts:
        if "text" in part and not part.get("thought"):
            out.append(brain.Part("text", text=part["text"]))
        elif "inlineData" in part:
            out.append(_image(part["inlineData"]))
        elif "functionCall" in part:
            call = part["functionCall"]
            out.append(
                brain.Part("tool_call", name=call.get("name", ""), input=call.get("args") or {})
            )
        elif "functionResponse" in part:
            result = part["functionResponse"]
            response = result.get("response") or {}
            text = response.get("output", response.get("error", json.dumps(response)))
            images = [
                _image(p["inlineData"]) for p in result.get("parts") or [] if "inlineData" in p
            ]
            out.append(
                brain.Part(
                    "tool_result", name=result.get("name", ""), text=str(text), images=images
                )
            )
    return out
