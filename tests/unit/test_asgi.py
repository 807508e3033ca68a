from __future__ import annotations

import io
from types import SimpleNamespace

from daphne import http_protocol
from twisted.web import http as twisted_http

import proxysite.asgi  # noqa: F401  (installs daphne's request class)


def daphne_request() -> http_protocol.WebRequest:
    server = SimpleNamespace(protocol_connected=lambda request: None)
    channel = SimpleNamespace(
        getPeer=lambda: None,
        getHost=lambda: None,
        transport=None,
        factory=SimpleNamespace(server=server),
    )
    return http_protocol.WebRequest(channel)


def test_daphne_hands_a_form_encoded_body_over_unparsed():
    # Daphne passes the raw body to the application and never reads Twisted's parsed form
    # arguments: parsing them (Content-Type through the email package) was wasted work.
    request = daphne_request()
    request.process = lambda: None
    request.content = io.BytesIO(b"model=claude&max_tokens=1")
    request.content.seek(0, 2)
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/x-www-form-urlencoded"])

    request.requestReceived(b"POST", b"/v1/messages?beta=true", b"HTTP/1.1")

    assert request.args == {b"beta": [b"true"]}
    assert request.content.read() == b"model=claude&max_tokens=1"


def test_installing_the_request_class_twice_keeps_one_subclass():
    proxysite.asgi._without_form_parsing()
    (daphnes_own,) = http_protocol.WebRequest.__bases__
    assert daphnes_own.__bases__ == (twisted_http.Request,)


async def test_it_refuses_requests_that_arrive_once_shutdown_began(monkeypatch):
    from proxysite.lifecycle import serving

    monkeypatch.setattr(serving, "stopping", True)
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the body is never read")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/messages", "method": "POST", "headers": []}
    await proxysite.asgi.application(scope, receive, send)
    assert sent[0]["status"] == 503
    assert b'"overloaded_error"' in sent[1]["body"]
    assert serving.in_flight == 0
