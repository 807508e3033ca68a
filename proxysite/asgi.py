"""ASGI entry point: ``daphne proxysite.asgi:application`` serves the API and the admin.

API paths go to a lean handler (see proxysite.handlers); everything else (the admin, and static
files served by Django's static handler) to Django's standard ASGI handler. Websockets (the
admin overview's live view, dashboard.consumers) go through channels' router with the session's
user. The first request starts the worker's background services (proxysite.lifecycle); the
reactor starts the live view's publisher (dashboard.live).
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxysite.settings")

from daphne import http_protocol as daphne_http  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_application = ASGIStaticFilesHandler(get_asgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard import live  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from proxysite.handlers import ApiASGIHandler, is_api_request  # noqa: E402
from proxysite.lifecycle import serving  # noqa: E402

api_application = ApiASGIHandler()
# Every scope but HTTP: websockets, with the user of the session cookie (an unknown type is
# refused by the router).
other_application = ProtocolTypeRouter(
    {"websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))}
)


async def application(scope, receive, send) -> None:
    # HTTP first and directly: the router would add a lookup and a call to every API request.
    if scope["type"] != "http":
        await other_application(scope, receive, send)
        return
    if serving.stopping:
        await _refuse_while_stopping(receive, send)
        return
    # Counted so that shutdown can wait for open requests' bookkeeping (proxysite.lifecycle).
    serving.request_started()
    try:
        if is_api_request(scope):
            await api_application(scope, receive, send)
        else:
            await django_application(scope, receive, send)
    finally:
        serving.request_ended()


STOPPING_BODY = (
    b'{"type":"error","error":{"type":"overloaded_error",'
    b'"message":"The server is shutting down; retry the request."}}'
)


async def _refuse_while_stopping(receive, send) -> None:
    """503 without reading the body: a client retries it on another worker."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(STOPPING_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": STOPPING_BODY})


class ProxyWebRequest(daphne_http.WebRequest):
    """Daphne's request, with three changes for serving an API.

    - No form parsing. Twisted parses every POST's Content-Type through the ``email`` package
      (and url-encoded or multipart bodies into ``request.args``) before daphne sees the
      request; daphne never reads the result: it hands the raw body to the application.
      Twisted's own switch, ``parsePOSTFormSubmission=False``, saves about 0.07 ms a request.
    - TCP_NODELAY on the connection. Twisted leaves Nagle's algorithm on: a response written in
      two sends (headers, then body) waits for the client's delayed ACK of the first, up to
      40 ms on Linux, the stalls seen at p99.
    - While the worker drains for a stop, responses say ``Connection: close`` and the
      connection closes after them, so keep-alive clients move to another worker.
    - A finished request leaves daphne's table of connections as soon as its application
      returns. Daphne sweeps that table once a second, so every request's objects (the request,
      its queue, its task, their reference cycles) outlived it by up to a second: long enough to
      be promoted to the collector's oldest generation, whose full collections then found a
      second's worth of dead requests each time (10-40 ms stalls at p99). Freed at once, they
      die young, in the cheap collections.
    """

    def __init__(self, channel, *args, **kwargs) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        transport = getattr(channel, "transport", None)
        if transport is not None and not getattr(channel, "_proxy_nodelay", False):
            channel._proxy_nodelay = True
            with contextlib.suppress(AttributeError, OSError):
                transport.setTcpNoDelay(True)

    def finish(self) -> None:
        super().finish()
        self._leave_server_when_done()

    def connectionLost(self, reason) -> None:
        super().connectionLost(reason)
        self._leave_server_when_done()

    def _leave_server_when_done(self) -> None:
        details = self.server.connections.get(self) if self.server else None
        if not details or details.get("left"):
            return
        details["left"] = True
        instance = details.get("application_instance")
        if instance is None:
            return  # no application was started: daphne's sweep handles it
        if instance.done():
            self._leave_server(instance)
        else:
            instance.add_done_callback(self._leave_server)

    def _leave_server(self, instance) -> None:
        # An application that failed is left to daphne's sweep, which logs its exception.
        if instance.cancelled() or instance.exception() is None:
            self.server.connections.pop(self, None)

    def handle_reply(self, message) -> None:
        super().handle_reply(message)
        if serving.draining and message.get("type") == "http.response.start":
            self.responseHeaders.setRawHeaders(b"connection", [b"close"])
            if self.channel is not None:
                self.channel.persistent = False


def _install_request_class() -> None:
    # Daphne builds each request with the ``WebRequest`` its module holds when a connection
    # opens, so the subclass put there takes effect for every connection of this process.
    if not issubclass(daphne_http.WebRequest, ProxyWebRequest):
        daphne_http.WebRequest = ProxyWebRequest


_install_request_class()
serving.install()
live.publisher.install()
