"""A lean ASGI handler for the API paths.

Django's ASGIHandler does four things per request that an API request here never needs and that
cost more than the whole proxying work (docs/performance-notes.md; measured ~5 ms per request on
this stack, mostly thread start-ups):
- it runs each request in a ``ThreadSensitiveContext``, which starts a fresh thread for the
  request's first ``sync_to_async`` call;
- it sends ``request_started`` / ``request_finished``, whose receivers (reset_queries,
  close_old_connections) are synchronous and so each cost a thread hop;
- it logs every response with status >= 400 through ``sync_to_async``;
- it closes the response through ``sync_to_async``.
API views never touch the ORM on the event-loop thread: their database work goes through
``database_sync_to_async``, which opens and closes its own connection around each call. So for
API paths this handler skips the first three and closes responses directly (cheap: the
event-loop thread has no database connection to close), and runs a short middleware chain
(request ids and JSON errors only; no sessions, CSRF or messages, which only the admin uses).
Everything else (admin, static files) goes through Django's own handler unchanged.
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix, set_urlconf

API_PREFIXES = ("/v1/", "/v1", "/healthz", "/readyz", "/metrics")
API_MIDDLEWARE = ["proxysite.middleware.RequestIdMiddleware"]


def is_api_request(scope: dict) -> bool:
    path = scope.get("path", "")
    return path.startswith(API_PREFIXES) or (path == "/" and scope.get("method") == "HEAD")


class ApiASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = API_MIDDLEWARE
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = configured

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        # Django's version logs every response >= 400 through a thread hop (log_response in
        # sync_to_async): for a proxy that answers 429s and upstream errors as a matter of course,
        # that is half a millisecond each and a log line nobody needs. The proxy logs upstream
        # failures itself (claude_api.dispatch) and unexpected errors in its exception handler.
        set_urlconf(settings.ROOT_URLCONF)
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        return response

    async def handle(self, scope, receive, send) -> None:
        # Django's ASGIHandler.handle, without the request signals and the threaded close.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected during send_response
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server cancels this handler (daphne at shutdown; asyncio.wait does not pass
            # that on): end both tasks here, or the request runs on unseen after the shutdown's
            # last flush (its outcome lost) and the disconnect listener stays suspended until
            # interpreter teardown finalises it, which crashes CPython 3.11 (SIGSEGV in gc).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            body_file.close()
            raise
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
            else:
                # A disconnect cancels the view (and so the upstream call) right away.
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            pass
        else:
            # Cheap here: request_finished's close_old_connections finds no connection opened
            # on the event-loop thread.
            response.close()
        body_file.close()
