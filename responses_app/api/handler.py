"""The ASGI handler that serves /v1/: the DRF views, run on the event loop with no thread hops."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.db import connections
from django.http import HttpRequest, HttpResponseBase
from django.urls import ResolverMatch, URLResolver, get_resolver, set_script_prefix
from django.utils.module_loading import import_string

from responses_app.api.paths import is_api_path
from responses_app.api.record import record_of
from responses_app.api.sse import StreamAborted
from responses_app.canned.index import canned_index

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

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Django's entry point without its per-request ThreadSensitiveContext: only the rare index
        rebuild runs in a thread, and it enters one of its own (handle)."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def read_body(self, receive: Any) -> Any:
        """The body in memory when it came in one message (every API request in practice: a JSON body
        is read whole by the view anyway); Django's spooled temporary file when it comes in pieces."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        if not message.get("more_body", False):
            return io.BytesIO(message.get("body", b""))
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by handle)
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
        body_file.write(message.get("body", b""))
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            body_file.write(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    def load_middleware(self, is_async: bool = False) -> None:
        """The chain of MOCKLLM_API_MIDDLEWARE around the view, built as BaseHandler builds it for
        settings.MIDDLEWARE, synchronously: these middleware run natively in both modes and use only
        __call__ (no process_view, process_exception or process_template_response hooks)."""
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(settings.MOCKLLM_API_MIDDLEWARE):
            middleware = import_string(path)
            if any(hasattr(middleware, hook) for hook in ("process_view", "process_exception",
                                                          "process_template_response")):
                raise ImproperlyConfigured(f"{path}: the API handler runs only a middleware's __call__")
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        """Django's resolve_request, remembering the match of each path (the API has a few routes and a
        catch-all); a request with its own urlconf is resolved as Django does."""
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        request.resolver_match = match = _resolve(get_resolver(), request.path_info)
        return match

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
            prefix = get_script_prefix(scope)
            if prefix not in ("", "/"):  # each request runs in a fresh context, where the prefix is "/" already
                set_script_prefix(prefix)
            request, response = self.create_request(scope, body_file)
            if request is not None:
                if canned_index.needs_rebuild():
                    async with ThreadSensitiveContext():
                        await sync_to_async(rebuild_index)()
                response = self.get_response(request)
            hold = record_of(request).hold if request is not None else 0.0
            if getattr(response, "whole", False):
                await self._send_whole_stream(response, send)
            elif response.streaming or hold:
                await self._send_watching_disconnect(response, send, receive, hold)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()
            for closer in getattr(response, "_resource_closers", ()):
                closer()

    async def _send_whole_stream(self, response: HttpResponseBase, send: Any) -> None:
        """A short stream with no pacing and no fault, made in full (answer.py marks it `whole`): sent as
        one body message, which the ASGI server writes with the end of the chunked body in one system
        call. A stream of one character per event costs its writes, not its bytes; and nothing here
        waits, so there is no disconnect to watch for. Still chunked, as the providers' streams are."""
        body = b"".join(response)
        await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
        await send({"type": "http.response.body", "body": body})

    async def _send_watching_disconnect(self, response: HttpResponseBase, send: Any, receive: Any,
                                        hold: float = 0) -> None:
        """Send after `hold` seconds (a delay asked for), cancelling if the client goes away first."""

        async def send_later() -> None:
            if hold:
                await asyncio.sleep(hold)
            prepare = getattr(response, "prepare", None)  # api/upstream.py: status known once upstream answers
            if prepare is not None:
                await prepare()
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


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The response's headers as ASGI sends them, cookies included (as Django's send_response builds them)."""
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers.extend((b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
                   for cookie in response.cookies.values())
    return headers


def _consume_outcome(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


@functools.lru_cache(maxsize=1024)
def _resolve(resolver: URLResolver, path: str) -> ResolverMatch:
    """A path's match under a resolver (a new resolver, after the URLs change, starts afresh)."""
    return resolver.resolve(path)


def rebuild_index() -> None:
    """Rebuild the index in a worker thread, then close that thread's database connections: the API
    skips the request signals that close them, and each request context gets a thread of its own, so
    a connection left open here would leak once per change of the canned set (the soak test saw it)."""
    try:
        canned_index.current()
    finally:
        connections.close_all()


def route_http(api: ASGIApp, site: ASGIApp) -> ASGIApp:
    """Send the provider API paths (api/paths.py) to `api`, everything else to `site`."""

    async def app(scope: dict, receive: Any, send: Any) -> Any:
        if is_api_path(scope.get("path", "")):
            return await api(scope, receive, send)
        return await site(scope, receive, send)

    return app
