"""Every error under /v1/ in the shape of the provider the client speaks, decided in one place."""
from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from .providers import anthropic, openai
from .providers.common import APIError, dumps

logger = logging.getLogger("mockllm.errors")


def provider_for(request: HttpRequest) -> ModuleType:
    """Anthropic for /v1/messages... and for any request carrying `anthropic-version`; else OpenAI."""
    path = request.path
    if path.startswith("/v1/messages") or "HTTP_ANTHROPIC_VERSION" in request.META:
        return anthropic
    return openai


def error_response(
    request: HttpRequest, status: int, message: str, *, param: str | None = None, code: str | None = None,
    error_type: str | None = None, allow: str = "POST",
) -> HttpResponse:
    provider = provider_for(request)
    body = provider.error_body(
        status, message, param=param, code=code, error_type=error_type,
        request_id=getattr(request, "request_id", None),
    )
    response = HttpResponse(dumps(body), status=status, content_type="application/json")
    if status == 405:
        response["Allow"] = allow
    return response


def _describe(exc: Exception, request: HttpRequest, allowed: str) -> tuple[int, str, dict[str, Any]]:
    """Status, message and extra fields for an exception raised while answering."""
    if isinstance(exc, APIError):
        return exc.status_code, exc.message, {"param": exc.param, "code": exc.code, "error_type": exc.error_type}
    if isinstance(exc, RequestDataTooBig):
        return 413, "The request body is larger than this server accepts (MOCKLLM_MAX_BODY_BYTES).", {}
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, f"Method {request.method} is not allowed for {request.path}; use {allowed}.", {"allow": allowed}
    if isinstance(exc, drf.UnsupportedMediaType):
        return 415, "Content-Type must be application/json.", {}
    if isinstance(exc, (Http404, drf.NotFound)):
        return 404, f"Unknown request URL: {request.method} {request.path}.", {"code": "unknown_url"}
    if isinstance(exc, (PermissionDenied, drf.PermissionDenied)):
        return 403, "Permission denied.", {}
    if isinstance(exc, SuspiciousOperation):
        return 400, "The request was rejected as malformed.", {}
    if isinstance(exc, drf.APIException):
        return exc.status_code, str(exc.detail), {}
    return 500, "The server had an error while processing your request.", {}


def provider_exception_handler(exc: Exception, context: dict) -> HttpResponse:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes a provider-shaped answer."""
    request = context["request"]._request
    view = context.get("view")
    methods = [m for m in view._allowed_methods() if m != "OPTIONS"] if view is not None else ["POST"]
    status, message, extra = _describe(exc, request, ", ".join(methods))
    if status >= 500:
        logger.error("unexpected error while answering", exc_info=exc, extra={"path": request.path})
        request.log_fields = {**getattr(request, "log_fields", {}), "error": type(exc).__name__}
    return error_response(request, status, message, **extra)


def unknown_route(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, f"Unknown request URL: {request.method} {request.path}.", code="unknown_url")
