"""The OpenAI Responses API played by the brain (tests.fakes.brain), for the compatibility
matrix: two flavours, each as strict as the service it stands for.

- ``ResponsesFake(codex=False)``: the OpenAI API, ``POST /v1/responses`` with an API key as
  Bearer, plus the input token counter ``POST /v1/responses/input_tokens``. Streamed or not, as
  the request asks. Each key is its own organisation: encrypted reasoning issued to one key
  cannot be verified by the other.
- ``ResponsesFake(codex=True)``: the ChatGPT Codex backend, ``POST /backend-api/codex/responses``
  for logged-in ChatGPT accounts. Only access tokens its token endpoint handed out
  (``POST /oauth/token``, form-encoded, the Codex CLI's client id) are accepted, each with the
  ``Chatgpt-Account-Id`` of its own workspace; refresh tokens rotate and are single use (a used
  one gets 401 ``refresh_token_reused``, as auth.openai.com answers). ``store: false`` and
  ``stream: true`` always, ``instructions`` present, no ``max_output_tokens`` / ``temperature``
  / ``top_p``; every answer carries the ``x-codex-*`` usage headers, and a spent account answers
  429 ``usage_limit_reached`` with ``resets_at`` / ``resets_in_seconds``.

The request rules (unknown fields, ``call_id`` pairing, encrypted reasoning required back with
the calls it was issued with) and the event encoding are ``ResponsesRules``, shared with the
scripted fake in tests.fakes.responses_api.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import brain
from tests.fakes.oauth import codex_id_token, jwt
from tests.fakes.responses_api import (
    API_PATH,
    COUNT_PATH,
    COUNTED,
    Refused,
    ResponsesRules,
    Turn,
    unknown_parameter,
)
from tests.fakes.responses_api import invalid as invalid_request
from tests.fakes.strict import Faults, Generation, Rejected, StrictFake
from tests.fakes.upstream import Recorded, Respond

CODEX_BACKEND_PATH = "/backend-api/codex/responses"
CODEX_TOKEN_PATH = "/oauth/token"
CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"  # the Codex CLI's, which the proxy logs in as
CODEX_ACCESS_SECONDS = 10 * 86400  # ChatGPT access tokens last about ten days
_DATA_URL = re.compile(r"^data:([a-z]+/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)


def workspace(n: int) -> str:
    """The ChatGPT workspace (``chatgpt_account_id``) of the n-th account."""
    return f"compat-workspace-{n + 1}"


def codex_access_token(n: int, label: str) -> str:
    """A ChatGPT access token as the real ones look (a JWT naming the workspace)."""
    return jwt(
        {
            "sub": f"user-compat-{n + 1}",
            "https://api.openai.com/auth": {"chatgpt_account_id": workspace(n)},
            "compat": label,
        }
    )


def _refused_reason(response: Respond) -> str:
    try:
        data = json.loads(response.body)
    except ValueError:
        return response.body.decode("utf-8", "replace")[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(data.get("detail") if isinstance(data, dict) else data)


class ResponsesFake(ResponsesRules, StrictFake):
    family = "responses"

    def __init__(
        self,
        secrets: list[str],
        faults: Faults | None = None,
        *,
        model: str,
        codex: bool = False,
    ) -> None:
        StrictFake.__init__(self, secrets, faults)
        ResponsesRules.__init__(self)
        self.model = model
        self.codex = codex
        # Codex: the live refresh token of each account (seeded, then rotated), the access
        # tokens the token endpoint has handed out, and how many refreshes there were.
        self.live_refresh = {f"rt_compat-seed-{n}": n for n in range(len(secrets))}
        self.used_refresh: set[str] = set()
        self.issued_access: set[str] = set()
        self.refreshes = 0
        self._token_lock = threading.Lock()

    # For the matrix's account columns ---------------------------------------------------------

    token_env = "CODEX_OAUTH_TOKEN_URL"
    token_path = CODEX_TOKEN_PATH

    def account_seed(self, n: int) -> dict[str, Any]:
        """A logged-in account whose access token has expired: only a refresh makes it work."""
        email = f"compat-{n + 1}@example.com"
        return {
            "provider": "codex",
            "access_token": codex_access_token(n, "expired"),
            "refresh_token": f"rt_compat-seed-{n}",
            "email": email,
            "account_id": workspace(n),
            "plan": "plus",
            "id_token": codex_id_token(email, workspace(n)),
        }

    # Requests ---------------------------------------------------------------------------------

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        if self.codex and request.path == CODEX_TOKEN_PATH:
            return self._token(request)
        generate_path = CODEX_BACKEND_PATH if self.codex else API_PATH
        counting = not self.codex and request.path == COUNT_PATH
        if request.path != generate_path and not counting:
            return Respond.json(
                {"error": {"message": f"Unknown request URL: POST {request.path}."}}, 404
            )
        if request.method != "POST":
            return Respond.json({"error": {"message": "Method not allowed."}}, 405)
        try:
            secret, account = self._authenticate(request)
            if counting:
                return self._count(body, account)
            self.validate(body, self.codex, account)
            self._check_model(body)
            turns = self._turns(body["input"])
        except Refused as refused:
            raise Rejected(refused.response, _refused_reason(refused.response)) from None
        tools = [
            brain.Tool(tool["name"], tool.get("parameters") or {})
            for tool in body.get("tools") or ()
            if tool.get("type") == "function"
        ]
        reasoning = body.get("reasoning") or {}
        effort = reasoning.get("effort") or "medium"  # what reasoning models do unasked
        # Summaries are the only reasoning a client may see; without them it stays encrypted.
        thinking = effort not in ("none", "minimal") and bool(reasoning.get("summary"))
        options = {"body": body, "account": account, "reasons": effort != "none"}
        return self.generate(
            Generation(
                secret, body.get("stream") is True, self.model, turns, tools, thinking, options
            )
        )

    def _authenticate(self, request: Recorded) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not self.codex:
            if token not in self.secrets:
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
            return token, f"org-{self.secrets.index(token) + 1}"
        if token not in self.issued_access:
            raise Refused(
                Respond.json(
                    {
                        "error": {
                            "message": "Provided authentication token is expired. Please try "
                            "signing in again.",
                            "type": None,
                            "code": "token_expired",
                            "param": None,
                        }
                    },
                    401,
                )
            )
        n = self.secrets.index(token)
        if request.headers.get("chatgpt-account-id") != workspace(n):
            raise Refused(Respond.json({"detail": "Missing or wrong ChatGPT-Account-Id"}, 403))
        if request.headers.get("accept") != "text/event-stream":
            raise Refused(Respond.json({"detail": "Accept must be text/event-stream"}, 400))
        return token, workspace(n)

    def _check_model(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if model == self.model:
            return
        if self.codex:
            raise Refused(
                Respond.json(
                    {
                        "detail": f"The '{model}' model is not supported when using Codex with "
                        "a ChatGPT account."
                    },
                    400,
                )
            )
        raise Refused(
            Respond.json(
                {
                    "error": {
                        "message": f"The model `{model}` does not exist or you do not have "
                        "access to it.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                },
                404,
            )
        )

    def _count(self, body: Any, account: str) -> Respond:
        if not isinstance(body, dict):
            raise invalid_request("The body must be a JSON object.")
        for name in body:
            if name not in COUNTED:
                raise unknown_parameter(name)
        self.validate_input(body.get("input"), account)
        self._check_model(body)
        payload = json.dumps([body.get("instructions"), body.get("input"), body.get("tools")])
        tokens = brain.estimate_tokens(payload.encode())
        return Respond.json({"object": "response.input_tokens", "input_tokens": tokens})

    # Decoding the input into the brain's turns --------------------------------------------

    def _turns(self, items: list[dict[str, Any]]) -> list[brain.Turn]:
        turns: list[brain.Turn] = []

        def add(role: str, parts: list[brain.Part]) -> None:
            if not parts:
                return
            if turns and turns[-1].role == role:
                turns[-1].parts.extend(parts)
            else:
                turns.append(brain.Turn(role, parts))

        for position, item in enumerate(items):
            kind = item.get("type")
            where = f"input[{position}]"
            if kind == "message":
                role = item.get("role")
                if role in ("developer", "system"):
                    continue  # instructions, not the conversation the brain reads
                content = item.get("content")
                if isinstance(content, str):
                    content = [
                        {"type": "output_text" if role == "assistant" else "input_text"}
                        | {"text": content}
                    ]
                if not isinstance(content, list):
                    raise invalid_request(
                        f"Invalid type for '{where}.content': expected an array.",
                        f"{where}.content",
                    )
                parts = [
                    self._part(part, f"{where}.content[{number}]")
                    for number, part in enumerate(content)
                ]
                add("assistant" if role == "assistant" else "user", [p for p in parts if p])
            elif kind == "function_call":
                arguments = item.get("arguments")
                try:
                    decoded = json.loads(arguments) if isinstance(arguments, str) else None
                except ValueError:
                    decoded = None
                if not isinstance(decoded, dict):
                    raise invalid_request(
                        f"Invalid '{where}.arguments': expected a JSON object in a string.",
                        f"{where}.arguments",
                    )
                call = brain.Part(
                    "tool_call", call_id=item["call_id"], name=str(item.get("name")), input=decoded
                )
                add("assistant", [call])
            elif kind == "function_call_output":
                add("user", [self._output(item, where)])
        return turns

    def _part(self, part: dict[str, Any], where: str) -> brain.Part | None:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid_request(
                    f"Invalid type for '{where}.text': expected a string.", f"{where}.text"
                )
            return brain.Part("text", text=text)
        if kind == "input_image":
            mime, data = self._image(part.get("image_url"), where)
            return brain.Part("image", mime=mime, data=data)
        return None  # files and refusals: nothing the brain reads

    @staticmethod
    def _image(url: Any, where: str) -> tuple[str, bytes]:
        match = _DATA_URL.match(url) if isinstance(url, str) else None
        if match is None:
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                # This fake is offline, as the matrix is: a URL it cannot fetch.
                raise invalid_request(f"Error while downloading {url}.", f"{where}.image_url")
            raise invalid_request(
                f"Invalid '{where}.image_url'. Expected a base64-encoded data URL with an image "
                "MIME type (e.g. 'data:image/png;base64,...') or a URL.",
                f"{where}.image_url",
                "invalid_value",
            )
        try:
            return match.group(1), base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request(
                "The image data you provided does not represent a valid image.",
                f"{where}.image_url",
                "invalid_image",
            ) from None

    def _output(self, item: dict[str, Any], where: str) -> brain.Part:
        output = item.get("output")
        result = brain.Part("tool_result", call_id=item["call_id"])
        if isinstance(output, str):
            result.text = output
            return result
        if not isinstance(output, list):
            raise invalid_request(
                f"Invalid type for '{where}.output': expected a string or an array.",
                f"{where}.output",
            )
        texts = []
        for number, part in enumerate(output):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "input_text":
                texts.append(str(part.get("text") or ""))
            elif kind == "input_image":
                mime, data = self._image(part.get("image_url"), f"{where}.output[{number}]")
                result.images.append(brain.Part("image", mime=mime, data=data))
            elif kind != "input_file":
                raise invalid_request(
                    f"Invalid value: '{kind}'.", f"{where}.output[{number}].type", "invalid_value"
                )
        result.text = "\n".join(texts)
        return result

    # Encoding the brain's plan ------------------------------------------------------------

    def _turn(self, plan: brain.Plan, generation: Generation) -> Turn:
        body = generation.options["body"]
        text = plan.text or None
        input_tokens = brain.estimate_tokens(json.dumps(body.get("input")).encode())
        reasoning_tokens = 40 if generation.options["reasons"] else 0
        output_tokens = reasoning_tokens + brain.estimate_tokens(
            (plan.text + json.dumps(plan.tool_input)).encode()
        )
        return Turn(
            # A reasoning model reasons whether or not the summary is shown; the brain's
            # thinking is the summary.
            reasoning=plan.thinking if generation.options["reasons"] else None,
            text=text,
            calls=[(plan.tool_name, plan.tool_input)] if plan.calls_tool else [],
            usage={
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": input_tokens + output_tokens,
            },
            headers=self._usage_headers(used=12) if self.codex else {},
        )

    def encode_stream(self, plan: brain.Plan, generation: Generation) -> Respond:
        turn = self._turn(plan, generation)
        return self.answer(generation.options["body"], turn, generation.options["account"])

    def encode_message(self, plan: brain.Plan, generation: Generation) -> Respond:
        """``stream: false`` (API keys only; Codex refuses it): the final response object."""
        turn = self._turn(plan, generation)
        events = self.events(generation.options["body"], turn, generation.options["account"])
        return Respond.json(events[-1][1]["response"], headers=turn.headers)

    @staticmethod
    def _usage_headers(*, used: int, resets_in: int = 9000) -> dict[str, str]:
        """What the Codex backend reports on every answer: the 5-hour and weekly windows."""
        return {
            "x-codex-primary-used-percent": str(used),
            "x-codex-primary-window-minutes": "300",
            "x-codex-primary-reset-after-seconds": str(resets_in),
            "x-codex-secondary-used-percent": "3",
            "x-codex-secondary-window-minutes": "10080",
            "x-codex-secondary-reset-after-seconds": "400000",
        }

    def rate_limit_response(self) -> Respond:
        if self.codex:
            # The plan's 5-hour window is spent: the real backend's error, with its reset.
            resets_in = 3600
            return Respond.json(
                {
                    "error": {
                        "type": "usage_limit_reached",
                        "message": "The usage limit has been reached",
                        "plan_type": "plus",
                        "resets_at": int(time.time()) + resets_in,
                        "resets_in_seconds": resets_in,
                    }
                },
                429,
                headers=self._usage_headers(used=100, resets_in=resets_in),
            )
        return Respond.json(
            {
                "error": {
                    "message": f"Rate limit reached for {self.model} in organization org-1 on "
                    "requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again "
                    "in 30s.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            429,
            headers={"retry-after": "30", "x-ratelimit-reset-requests": "30s"},
        )

    # The Codex token endpoint (auth.openai.com/oauth/token) ---------------------------------

    def _token(self, request: Recorded) -> Respond:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return _oauth_error(400, "invalid_request", "Expected a form-encoded body.")
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant type.")
        if form.get("client_id") != CODEX_CLIENT_ID:
            return _oauth_error(401, "invalid_client", "Unknown client.")
        refresh = form.get("refresh_token", "")
        with self._token_lock:
            n = self.live_refresh.pop(refresh, None)
            if n is None:
                if refresh in self.used_refresh:
                    return _oauth_error(
                        401,
                        "refresh_token_reused",
                        "Your refresh token has already been used to generate a new access "
                        "token. Please try signing in again.",
                    )
                return _oauth_error(401, "refresh_token_invalidated", "Invalid refresh token.")
            self.used_refresh.add(refresh)
            self.refreshes += 1
            rotated = f"rt_compat-rotated-{n}-{self.refreshes}"
            self.live_refresh[rotated] = n
            access = self.secrets[n]
            self.issued_access.add(access)
        email = f"compat-{n + 1}@example.com"
        return Respond.json(
            {
                "access_token": access,
                "refresh_token": rotated,
                "id_token": codex_id_token(email, workspace(n)),
                "expires_in": CODEX_ACCESS_SECONDS,
                "token_type": "Bearer",
                "scope": "openid profile email",
            }
        )


def _oauth_error(status: int, code: str, message: str) -> Respond:
    """auth.openai.com's error shape (the Codex CLI reads ``error.code``)."""
    return Respond.json(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        },
        status,
    )
