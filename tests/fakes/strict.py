"""What every strict fake upstream shares: credentials, scripted faults, and a log to read.

A family fake (``AnthropicFake``, ``GeminiFake``, ``OpenAIFake``) subclasses ``StrictFake`` and
implements ``dispatch``: authenticate, validate the request the way the real service does
(unknown fields rejected with the service's own status and message), decode it into the brain's
neutral turns, and encode the brain's plan in the service's wire format. ``handle`` is what
``FakeUpstream.default`` calls; it also applies the faults a compatibility cell asks for, which
are the same idea on every family even though each encodes them differently:

- ``drop_first_stream``: the first streamed generation is cut right after its first event;
- ``rate_limit_first_credential``: from its second generation on, the credential that served
  the first one answers 429 with a reset time (a quota running out mid-session);
- ``pause``: each generation stalls this many seconds half-way (a slow model).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import brain
from tests.fakes.upstream import DROP, Recorded, Respond


@dataclass
class Faults:
    drop_first_stream: bool = False
    rate_limit_first_credential: bool = False
    pause: float = 0.0


@dataclass
class Generation:
    """One generation request, decoded: what the encoder needs besides the plan."""

    secret: str
    stream: bool
    model: str
    turns: list[brain.Turn]
    tools: list[brain.Tool]
    thinking: bool
    options: dict[str, Any] = field(default_factory=dict)  # family-specific (stream_options…)


class Rejected(Exception):
    """The request is invalid: answer with this response (the service's own error shape)."""

    def __init__(self, response: Respond, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


@dataclass
class LogEntry:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__


class StrictFake:
    family = "?"

    def __init__(self, secrets: list[str], faults: Faults | None = None) -> None:
        self.secrets = secrets
        self.faults = faults or Faults()
        self.log: list[LogEntry] = []
        self.generations: list[str] = []  # the secret each successful generation used
        self.rejections: list[str] = []  # why a request was refused (4xx from validation)
        self.dropped_streams = 0
        self.rate_limited = 0
        self._first_secret = ""
        self._lock = threading.Lock()
        # Signatures are an HMAC of what they vouch for, so they survive a restart of the proxy
        # and work from any worker, like the real services' (and forged ones are refused).
        self._sign_key = f"{self.family}-signing-key".encode()

    # Signatures ---------------------------------------------------------------------------

    def sign(self, text: str) -> str:
        digest = hmac.new(self._sign_key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(b"sig1" + digest).decode()

    def signature_ok(self, signature: Any, text: str) -> bool:
        return isinstance(signature, str) and hmac.compare_digest(signature, self.sign(text))

    # Entry point --------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Respond:
        try:
            body: Any = request.json() if request.body else None
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        entry = LogEntry(request.method, request.path, request.query, request.headers, body)
        with self._lock:
            self.log.append(entry)
        try:
            response = self.dispatch(request, body)
        except Rejected as exc:
            with self._lock:
                self.rejections.append(exc.reason)
            entry.note = exc.reason
            response = exc.response
        entry.status = response.status
        entry.response = _summary(response)
        return response

    def dispatch(self, request: Recorded, body: Any) -> Respond:
        raise NotImplementedError

    # Faults -------------------------------------------------------------------------------

    def generate(self, generation: Generation) -> Respond:
        """Run the brain and encode its plan, applying the faults."""
        with self._lock:
            if not self._first_secret:
                self._first_secret = generation.secret
            elif (
                self.faults.rate_limit_first_credential and generation.secret == self._first_secret
            ):
                self.rate_limited += 1
                return self.rate_limit_response()
            drop = generation.stream and self.faults.drop_first_stream and not self.dropped_streams
            if drop:
                self.dropped_streams += 1
            self.generations.append(generation.secret)
        plan = brain.think(generation.turns, generation.tools, thinking=generation.thinking)
        if generation.stream:
            response = self.encode_stream(plan, generation)
            chunks = list(response.chunks or [])
            if drop:
                response.chunks = chunks[:1] + [0.05, DROP]
            elif self.faults.pause:
                middle = max(1, len(chunks) // 2)
                response.chunks = chunks[:middle] + [self.faults.pause] + chunks[middle:]
            return response
        response = self.encode_message(plan, generation)
        if self.faults.pause:
            response.delay = self.faults.pause
        return response

    def encode_stream(self, plan: brain.Plan, generation: Generation) -> Respond:
        raise NotImplementedError

    def encode_message(self, plan: brain.Plan, generation: Generation) -> Respond:
        raise NotImplementedError

    def rate_limit_response(self) -> Respond:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {
            "generations": len(self.generations),
            "credentials_used": sorted({self.secrets.index(s) for s in self.generations}),
            "rejections": self.rejections,
            "dropped_streams": self.dropped_streams,
            "rate_limited": self.rate_limited,
        }

    def requests_to(self, suffix: str) -> list[LogEntry]:
        return [e for e in self.log if e.path.endswith(suffix)]


def _summary(response: Respond) -> Any:
    """The response as written, for the artifacts: JSON when it is, else text (drops marked)."""
    if response.chunks is None:
        raw = response.body
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")
    out = []
    for chunk in response.chunks:
        if chunk is DROP:
            out.append("<connection dropped>")
        elif isinstance(chunk, int | float):
            out.append(f"<pause {chunk} s>")
        else:
            out.append(chunk.decode("utf-8", "replace"))
    return "".join(out)


def path_of(location: list[Any]) -> str:
    """A field path the way Anthropic's validation names it: ``messages.1.content.0.text``."""
    return ".".join(str(p) for p in location)
