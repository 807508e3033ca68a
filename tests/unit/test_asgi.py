from __future__ import annotations

import io
from types import SimpleNamespace

from daphne import http_protocol
from twisted.web import http as twisted_http

import proxysite.asgi  # noqa: F401  (installs daphne's request class)


class RecordingTransport:
    def __init__(self) -> None:
        self.nodelay_calls: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay_calls.append(enabled)


def daphne_channel(transport=None) -> SimpleNamespace:
    server = SimpleNamespace(protocol_connected=lambda request: None, server_name="")
    return SimpleNamespace(
        getPeer=lambda: None,
        getHost=lambda: None,
        transport=transport,
        factory=SimpleNamespace(server=server),
        persistent=True,
    )


def daphne_request(channel=None) -> http_protocol.WebRequest:
    return http_protocol.WebRequest(channel or daphne_channel())


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
    proxysite.asgi._install_request_class()
    (daphnes_own,) = http_protocol.WebRequest.__bases__
    assert daphnes_own.__bases__ == (twisted_http.Request,)


def test_it_turns_nagle_off_once_per_connection():
    # With Nagle on, a response sent as headers then body waits for the client's delayed ACK
    # (up to 40 ms): the p99 stalls.
    transport = RecordingTransport()
    channel = daphne_channel(transport)
    daphne_request(channel)
    daphne_request(channel)  # a second request on the same keep-alive connection
    assert transport.nodelay_calls == [True]


def test_it_asks_keep_alive_clients_to_leave_while_the_worker_drains(monkeypatch):
    from proxysite.lifecycle import serving

    channel = daphne_channel()
    request = daphne_request(channel)
    request.server = channel.factory.server
    monkeypatch.setattr(serving, "draining", True)
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": []})
    assert request.responseHeaders.getRawHeaders(b"connection") == [b"close"]
    assert channel.persistent is False


def test_it_keeps_connections_alive_while_serving_normally():
    channel = daphne_channel()
    request = daphne_request(channel)
    request.server = channel.factory.server
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": []})
    assert request.responseHeaders.getRawHeaders(b"connection") is None
    assert channel.persistent is True


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


def served_request(instance) -> http_protocol.WebRequest:
    """A request in a daphne server's table of connections, its application ``instance``."""
    request = daphne_request()
    request.server = SimpleNamespace(connections={})
    request.server.connections[request] = {"connected": 0.0, "application_instance": instance}
    return request


async def test_a_finished_request_leaves_daphnes_table_as_soon_as_its_application_returns():
    # Daphne's own sweep runs once a second: until then the request's objects stayed alive,
    # long enough to reach the collector's oldest generation (the full collections' stalls).
    import asyncio

    loop = asyncio.get_running_loop()
    returned = loop.create_future()
    returned.set_result(None)
    request = served_request(returned)
    request._leave_server_when_done()
    assert request not in request.server.connections


async def test_a_request_whose_application_still_runs_leaves_when_it_returns():
    import asyncio

    running = asyncio.get_running_loop().create_future()
    request = served_request(running)
    request._leave_server_when_done()
    assert request in request.server.connections  # daphne may still cancel it on a timeout
    running.set_result(None)
    await asyncio.sleep(0)
    assert request not in request.server.connections


async def test_a_failed_application_is_left_for_daphnes_sweep_to_log():
    import asyncio

    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("boom"))
    request = served_request(failed)
    request._leave_server_when_done()
    assert request in request.server.connections
    failed.exception()  # retrieved: no "exception never retrieved" warning
