"""The ASGI handler that serves /v1/: the DRF views, run on the event loop with no thread hops."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import HttpResponseBase
from django.test.utils import override_settings
from django.urls import set_script_prefix

from responses_app.canned.index import canned_index
from responses_app.api.sse import StreamAborted

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[Any]]


class APIHandler(ASGIHandler):
    """Django's ASGI handler, made lean for the API.

    Django's own handler hops to a worker thread three times per request: for the request_started
    signal, for a sync view (DRF views are sync), and for response.close() with request_finished.
    Those exist for views that use the database. The API views never do: they answer from the
    in-memory index (index.py), whose rare rebuild is awaited in a thread *before* the view runs.
    So this handler builds MOCKLLM_API_MIDDLEWARE (async- and sync-capable middleware) as a sync
    chain and calls it directly on the event loop; Django's async_unsafe guard would raise if any
    code on it touched the database. Streams are sent while watching for the client to disconnect,
    which cancels them, as Django does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._polling = False

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE while it builds the chain; this runs once, at start-up.
        with override_settings(MIDDLEWARE=settings.MOCKLLM_API_MIDDLEWARE):
            super().load_middleware(is_async=False)

    async def handle(self, scope: dict, receive: Any, send: Any) -> None:
        if not self._polling:  # only processes that serve the API poll for changes made elsewhere
            self._polling = True
            canned_index.start_polling(settings.MOCKLLM_INDEX_POLL_SECONDS)
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        response: HttpResponseBase | None = None
        try:
            set_script_prefix(get_script_prefix(scope))
            request, response = self.create_request(scope, body_file)
            if request is not None:
                if canned_index.needs_rebuild():
                    await sync_to_async(rebuild_index)()
                response = self.get_response(request)
            hold = getattr(response, "mockllm_hold", 0)
            if response.streaming or hold:
                await self._send_watching_disconnect(response, send, receive, hold)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()
            for closer in getattr(response, "_resource_closers", ()):
                closer()

    async def _send_watching_disconnect(self, response: HttpResponseBase, send: Any, receive: Any,
                                        hold: float = 0) -> None:
        """Send after `hold` seconds (a delay asked for), cancelling if the client goes away first."""

        async def send_later() -> None:
            if hold:
                await asyncio.sleep(hold)
            await self.send_response(response, send)

        sender = asyncio.create_task(send_later())
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        for task in (sender, listener):  # also when this coroutine is itself cancelled mid-wait, no task's
            task.add_done_callback(_consume_outcome)  # exception goes unretrieved (asyncio would log it)
        try:
            await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, listener):
                if not task.done():
                    task.cancel()
        for task in (sender, listener):
            with contextlib.suppress(asyncio.CancelledError, RequestAborted, AssertionError):
                await task
        if sender.done() and not sender.cancelled() and isinstance(sender.exception(), StreamAborted):
            raise StreamAborted  # the ASGI server drops the connection: the `disconnect` fault


def _consume_outcome(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def abort_broken_responses_under_daphne() -> None:
    """Make daphne drop a connection whose application failed after the response started (and leave
    request bodies to the application, see below).

    Daphne logs such a failure and then tries to answer 500, which cannot go out once headers were
    sent, so the client waits forever. Uvicorn aborts the connection instead, which is what a client
    must see, and what the `disconnect` stream fault asks for. This patch does the same for daphne.
    """
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # pragma: no cover - daphne is a dependency
        return
    if getattr(WebRequest.handle_exception, "aborts_started_responses", False):
        return
    original = WebRequest.handle_exception

    def handle_exception(self: Any, exception: BaseException) -> None:
        if getattr(self, "_response_started", False):
            transport = self.channel.transport if self.channel is not None else None
            if transport is not None:
                transport.abortConnection()
            return
        original(self, exception)

    handle_exception.aborts_started_responses = True  # type: ignore[attr-defined]
    WebRequest.handle_exception = handle_exception
    leave_bodies_to_the_application(WebRequest)


def leave_bodies_to_the_application(request_class: Any) -> None:
    """Keep Twisted, under daphne, from parsing multipart/form-data bodies itself.

    Twisted parses such a body before daphne sees the request and, when it is malformed, answers a
    bare 400 and drops the connection: no error shape, no keep-alive. Daphne hands the raw body to
    the application anyway, so the content type is hidden from Twisted's parser and put back before
    daphne builds the ASGI scope; the API then answers 415 in the provider's shape.
    """
    original_received, original_process = request_class.requestReceived, request_class.process

    def requestReceived(self: Any, command: bytes, path: bytes, version: bytes) -> None:
        content_type = self.requestHeaders.getRawHeaders(b"content-type")
        if content_type and any(b"multipart/" in value.lower() for value in content_type):
            self._mockllm_content_type = content_type
            self.requestHeaders.removeHeader(b"content-type")
        original_received(self, command, path, version)

    def process(self: Any) -> None:
        hidden = self.__dict__.pop("_mockllm_content_type", None)
        if hidden is not None:
            self.requestHeaders.setRawHeaders(b"content-type", hidden)
        original_process(self)

    request_class.requestReceived = requestReceived
    request_class.process = process


class QuietStreamAborted(logging.Filter):
    """A `disconnect` fault is asked for: daphne need not log it as an application crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


def rebuild_index() -> None:
    """Rebuild the index in a worker thread, then close that thread's database connections: the API
    skips the request signals that close them, and each request context gets a thread of its own, so
    a connection left open here would leak once per change of the canned set (the soak test saw it)."""
    try:
        canned_index.current()
    finally:
        connections.close_all()


def route_http(api: ASGIApp, site: ASGIApp) -> ASGIApp:
    """Send /v1 and /v1/... to `api`, everything else to `site`."""

    async def app(scope: dict, receive: Any, send: Any) -> Any:
        path = scope.get("path", "")
        if path.startswith("/v1/") or path == "/v1":
            return await api(scope, receive, send)
        return await site(scope, receive, send)

    return app
