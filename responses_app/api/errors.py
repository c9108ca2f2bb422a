"""Every error under /v1/ in the shape of the provider the client speaks, decided in one place."""
from __future__ import annotations

import hashlib
import logging
import math
from types import ModuleType
from typing import Any, Mapping

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from responses_app.api.rate_limits import Budget, rate_limiter, seconds_text
from responses_app.providers import anthropic_messages as anthropic
from responses_app.providers import openai_chat as openai
from responses_app.providers.common import APIError, dumps

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


MOCK_MESSAGES = {
    400: "Bad request.", 401: "Incorrect API key provided.", 403: "You are not allowed to use this model.",
    404: "The model does not exist.", 408: "The request timed out.", 409: "The request conflicts with another one.",
    413: "The request is too large.", 422: "The request could not be processed.",
    429: "Rate limit reached for requests.", 500: "The server had an error while processing your request.",
    502: "Bad gateway.", 503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.", 529: "Overloaded.",
}


def client_key(request: HttpRequest) -> str:
    """Who a request is from, for rate limits: its API key (hashed, never kept), else its address;
    and its test run, so that two runs sharing a key or a machine do not share a budget."""
    from responses_app.api.clients import presented_key

    key = presented_key(request)
    who = "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16] if key else \
        "addr:" + str(request.META.get("REMOTE_ADDR", ""))
    client = getattr(request, "client", None)
    return f"{who}|test:{client.test_id}" if client is not None and client.test_id else who


def mock_headers(request: HttpRequest) -> dict[str, str]:
    """The request's X-Mock-* headers, by lower-case name."""
    return {name[5:].lower().replace("_", "-"): value for name, value in request.META.items()
            if name.startswith("HTTP_X_MOCK_")}


def add_rate_limit_headers(response: HttpResponse, budget: Budget, provider: ModuleType) -> None:
    """The x-ratelimit-* family (and Anthropic's anthropic-ratelimit-* one) from a client's budgets."""
    for kind in ("requests", "tokens"):
        limit, remaining = getattr(budget, f"limit_{kind}"), getattr(budget, f"remaining_{kind}")
        if limit is None:
            continue
        reset = getattr(budget, f"reset_{kind}")
        response[f"x-ratelimit-limit-{kind}"] = str(limit)
        response[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        response[f"x-ratelimit-reset-{kind}"] = seconds_text(reset)
        if provider is anthropic:
            response[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            response[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            response[f"anthropic-ratelimit-{kind}-reset"] = seconds_text(reset)


def mock_error_response(request: HttpRequest, spec: Mapping[str, Any], *, source: str,
                        budget: Budget | None = None) -> HttpResponse:
    """An error asked for (by a header, an entry, a model name, chance or a rate limit), in the
    provider's shape, with the headers clients act on: retry-after(-ms), x-should-retry, x-ratelimit-*."""
    status = int(spec["status"])
    message = spec.get("message") or f"{MOCK_MESSAGES.get(status, 'Mock error.')} (mockllm: {source})"
    error_type = spec.get("type")
    if provider_for(request) is anthropic and status == 529 and not error_type:
        error_type = "overloaded_error"
    response = error_response(request, status, message, code=spec.get("code"), error_type=error_type)
    retry_after = spec.get("retry_after")
    if retry_after is None and status == 429:
        retry_after = budget.retry_after if budget is not None and budget.retry_after is not None else 1.0
    if retry_after is not None:
        response["retry-after"] = str(math.ceil(retry_after))
        response["retry-after-ms"] = str(round(retry_after * 1000))
        rate_limiter.note_retry_after(client_key(request), retry_after)
    if "should_retry" in spec:
        response["x-should-retry"] = "true" if spec["should_retry"] else "false"
    if status == 429:
        if budget is not None:
            add_rate_limit_headers(response, budget, provider_for(request))
        if not response.has_header("x-ratelimit-remaining-requests"):  # asked for, with no budget configured
            response["x-ratelimit-remaining-requests"] = "0"
            response["x-ratelimit-reset-requests"] = seconds_text(retry_after or 0.0)
    request.log_fields = {**getattr(request, "log_fields", {}), "mock_error": status, "mock_error_source": source}
    return response
