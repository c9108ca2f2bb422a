"""Async-native middleware: the JSON access log, and the checks every /v1/ request passes before a view."""
from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from responses_app.api import faults
from responses_app.api.clients import identify
from responses_app.api.errors import error_response
from responses_app.api.paths import is_api_path
from responses_app.api.record import RequestRecord, record_of
from responses_app.canned.index import canned_index
from responses_app.providers.common import APIError
from responses_app.team.journal import record_request

access_logger = logging.getLogger("mockllm.access")
logger = logging.getLogger("mockllm.api")


class _Middleware:
    """Runs natively in both modes, so it never costs a thread hop under ASGI."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        early = self.before(request)
        return self.after(request, early if early is not None else self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        early = self.before(request)
        if early is not None:
            return self.after(request, early)
        return self.after(request, await self.get_response(request))

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response


class AccessLogMiddleware(_Middleware):
    """One JSON line per request, written when the answer is complete (for streams: when they end).

    It attaches the request's record (record.py), which the rest of the path fills in. Prompt and
    answer texts are not logged.
    """

    def before(self, request: HttpRequest) -> None:
        request.mockllm = RequestRecord()
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        record = record_of(request)
        if is_api_path(request.path):
            response["x-request-id"] = record.request_id  # what openai-python reads
            response["request-id"] = record.request_id  # what anthropic-python reads
            if request.path == "/model" or request.path.startswith("/model/"):
                response["x-amzn-RequestId"] = record.request_id  # what botocore reads
        if response.streaming and getattr(response, "is_async", False):
            response.streaming_content = self._log_when_done(request, response, response.streaming_content)
        else:
            self._log(request, response)
        return response

    async def _log_when_done(self, request: HttpRequest, response: HttpResponseBase, content: Any) -> AsyncIterator[bytes]:
        try:
            async for part in content:
                yield part
        finally:
            record = record_of(request)
            if record.stream_end is None:
                record.stream_end = "client_disconnected"
            self._log(request, response)

    def _log(self, request: HttpRequest, response: HttpResponseBase) -> None:
        record = record_of(request)
        duration_ms = round((time.perf_counter() - record.started_at) * 1000, 2)
        if settings.MOCKLLM_JOURNAL and is_api_path(request.path):  # the admin and control API are not journaled
            record_request(request, record, response, duration_ms)  # a queue append (team/journal.py)
        if not access_logger.isEnabledFor(logging.INFO):
            return
        status = response.status_code
        level = logging.WARNING if status >= 500 else logging.INFO
        line = access_logger.makeRecord(
            access_logger.name, level, __file__, 0, "%s %s %s", (request.method, request.path, status), None,
            extra={
                "event": "request",
                "request_id": record.request_id,
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                **record.log_fields(),
            },
        )
        write_soon(line)


_waiting: collections.deque[logging.LogRecord] = collections.deque()


def write_soon(line: logging.LogRecord) -> None:
    """Hand an access-log line to its handlers once the event loop has run what is ready now (the answer
    goes out first); at once outside an event loop.

    Under load, the lines of the requests answered in one turn of the loop are formatted and written
    together: measured under uvicorn, that took a tenth more JSON requests per second than a line
    per request. A line keeps the time it was made at; what is waiting at exit is written then (before
    logging's own handlers are flushed and closed: they were registered with atexit first)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        access_logger.handle(line)
        return
    if not _waiting:
        loop.call_soon(write_waiting)
    _waiting.append(line)


def write_waiting() -> None:
    while _waiting:
        line = _waiting.popleft()
        try:
            access_logger.handle(line)
        except Exception:  # one failure costs no other line
            logger.exception("could not write an access-log line")


atexit.register(write_waiting)


class ProviderErrorMiddleware(_Middleware):
    """For /v1/: identify the client (401 for a key that is required and not known), answer X-Mock-Status,
    refuse oversized bodies early, and turn any non-JSON error page into the provider's shape.

    Views and DRF's exception handler already answer in the provider's shape; this catches what
    happens outside them (an unmatched URL or an error page Django renders itself, in DEBUG too).
    It is in both middleware lists (settings.py), so Django's test client sees what clients see;
    outside /v1/ it does nothing.
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if not is_api_path(request.path):
            return None
        record = record_of(request)
        try:
            record.client = identify(request, canned_index.current(), require_key=settings.MOCKLLM_REQUIRE_API_KEY)
        except APIError as exc:
            record.client = getattr(exc, "client", record.client)  # a refused key's run still finds it
            return error_response(request, exc.status_code, exc.message, param=exc.param, code=exc.code)
        refusal = faults.before_view(request)
        if refusal is not None:
            return refusal
        length = request.META.get("CONTENT_LENGTH")
        if length and length.isdigit() and int(length) > settings.MOCKLLM_MAX_BODY_BYTES:
            return error_response(
                request, 413,
                f"The request body is {int(length)} bytes; this server accepts at most "
                f"{settings.MOCKLLM_MAX_BODY_BYTES} (MOCKLLM_MAX_BODY_BYTES).",
            )
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not is_api_path(request.path):
            return response
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            response = self._replacement(request, response)
        if not response.streaming:  # a plain body, not chunked: as the real APIs send it
            response["Content-Length"] = str(len(response.content))
        return response

    @staticmethod
    def _replacement(request: HttpRequest, response: HttpResponseBase) -> HttpResponse:
        status = response.status_code
        message = {
            404: f"Unknown request URL: {request.method} {request.path}.",
            400: "The request was rejected as malformed.",
            413: "The request body is larger than this server accepts (MOCKLLM_MAX_BODY_BYTES).",
        }.get(status, "The server had an error while processing your request." if status >= 500 else response.reason_phrase)
        return error_response(request, status, message)
