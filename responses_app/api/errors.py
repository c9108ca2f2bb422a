"""Every error under /v1/ rendered in the shape of the provider the client speaks.

What to fail and when is decided in faults.py; this module only renders: an exception a view raised,
an unknown URL, or an error the fault plan asked for, with the headers clients act on.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf

from responses_app.api.rate_limits import Budget, seconds_text
from responses_app.api.record import record_of
from responses_app.providers import (
    anthropic_messages,
    azure_openai,
    bedrock_converse,
    gemini_generate,
    ollama_chat,
    openai_chat,
)
from responses_app.providers.base import Provider
from responses_app.providers.common import APIError, dumps

logger = logging.getLogger("mockllm.errors")
GEMINI_PREFIXES = ("/v1beta/", "/v1beta1/")
# Google-style methods at the end of a path (`models/{model}:generateContent`); an OpenAI fine-tuned model's
# id has colons too (`ft:gpt-4o-mini:org::id`), so only these say a /v1 path is Gemini's.
GEMINI_METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens", "embedContent",
                            "batchEmbedContents", "predict"})

MOCK_MESSAGES = {
    400: "Bad request.", 401: "Incorrect API key provided.", 403: "You are not allowed to use this model.",
    404: "The model does not exist.", 408: "The request timed out.", 409: "The request conflicts with another one.",
    413: "The request is too large.", 422: "The request could not be processed.",
    429: "Rate limit reached for requests.", 500: "The server had an error while processing your request.",
    502: "Bad gateway.", 503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.", 529: "Overloaded.",
}


def provider_for(request: HttpRequest) -> Provider:
    """The wire format of the request's route once a view took it; before that (an unknown URL, a
    refused key, a header-asked error), Bedrock's under /model/, Ollama's under /api, Azure's under
    /openai, Anthropic's for /v1/messages... or a request carrying `anthropic-version`, Gemini's for a request that looks like a
    Gemini client's, else OpenAI's."""
    record = record_of(request)
    if record.provider is not None:
        return record.provider
    if request.path.startswith("/openai"):
        return azure_openai.chat
    if request.path == "/model" or request.path.startswith("/model/"):
        return bedrock_converse
    if request.path == "/api" or request.path.startswith("/api/"):
        return ollama_chat
    if request.path.startswith("/v1/messages") or "HTTP_ANTHROPIC_VERSION" in request.META:
        return anthropic_messages
    if is_gemini_request(request):
        return gemini_generate
    return openai_chat


def is_gemini_request(request: HttpRequest) -> bool:
    """Under /v1beta or /v1beta1 (Gemini's and Vertex AI's own prefixes), a Google-style method (`:verb`)
    or a Vertex AI resource path under /v1, or a request that carries a Google API key or client header."""
    path = request.path
    if path.startswith(GEMINI_PREFIXES) or path in ("/v1beta", "/v1beta1"):
        return True
    if path.startswith("/v1/") and (path.rpartition(":")[2] in GEMINI_METHODS
                                    or path.startswith(("/v1/projects/", "/v1/publishers/"))):
        return True
    meta = request.META
    query = meta.get("QUERY_STRING", "")
    return ("HTTP_X_GOOG_API_KEY" in meta or "HTTP_X_GOOG_API_CLIENT" in meta or query.startswith("key=")
            or "&key=" in query)


def error_response(
    request: HttpRequest, status: int, message: str, *, param: str | None = None, code: str | None = None,
    error_type: str | None = None, details: dict | None = None, allow: str = "POST",
) -> HttpResponse:
    provider = provider_for(request)
    body = provider.render_error(
        status, message, param=param, code=code, error_type=error_type, request_id=record_of(request).request_id,
        details=details,
    )
    response = HttpResponse(dumps(body), status=status, content_type="application/json")
    error_headers = getattr(provider, "error_headers", None)
    if error_headers is not None:
        for name, value in error_headers(status, error_type).items():
            response[name] = value
    if status == 405:
        response["Allow"] = allow
    return response


def _describe(exc: Exception, request: HttpRequest, allowed: str) -> tuple[int, str, dict[str, Any]]:
    """Status, message and extra fields for an exception raised while answering."""
    if isinstance(exc, APIError):
        return exc.status_code, exc.message, {"param": exc.param, "code": exc.code, "error_type": exc.error_type,
                                              "details": exc.details}
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
        record_of(request).notes["error"] = type(exc).__name__
    return error_response(request, status, message, **extra)


def unknown_route(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, f"Unknown request URL: {request.method} {request.path}.", code="unknown_url")


def add_rate_limit_headers(response: HttpResponse, budget: Budget, provider: Provider) -> None:
    """The x-ratelimit-* family (and Anthropic's anthropic-ratelimit-* one) from a client's budgets."""
    for kind in ("requests", "tokens"):
        limit, remaining = getattr(budget, f"limit_{kind}"), getattr(budget, f"remaining_{kind}")
        if limit is None:
            continue
        reset = getattr(budget, f"reset_{kind}")
        response[f"x-ratelimit-limit-{kind}"] = str(limit)
        response[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        response[f"x-ratelimit-reset-{kind}"] = seconds_text(reset)
        if provider.NAME == "anthropic":
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
    provider = provider_for(request)
    if provider.NAME == "anthropic" and status == 529 and not error_type:
        error_type = "overloaded_error"
    # A filtered prompt names its category where the format can (Azure's innererror); other formats get the message.
    filter_details = getattr(provider, "filter_details", None) if "filtered" in spec else None
    response = error_response(request, status, message, code=spec.get("code"), error_type=error_type,
                              param=spec.get("param"), details=filter_details(*spec["filtered"]) if filter_details else None)
    retry_after = retry_after_of(spec, budget)
    if retry_after is not None:
        response["retry-after"] = str(math.ceil(retry_after))
        response["retry-after-ms"] = str(round(retry_after * 1000))
        if provider.NAME == "bedrock":  # what botocore's standard retry mode waits for (milliseconds)
            response["x-amz-retry-after"] = str(round(retry_after * 1000))
    if "should_retry" in spec:
        response["x-should-retry"] = "true" if spec["should_retry"] else "false"
    if status == 429:
        if budget is not None:
            add_rate_limit_headers(response, budget, provider)
        if not response.has_header("x-ratelimit-remaining-requests"):  # asked for, with no budget configured
            response["x-ratelimit-remaining-requests"] = "0"
            response["x-ratelimit-reset-requests"] = seconds_text(retry_after or 0.0)
    record_of(request).notes.update(mock_error=status, mock_error_source=source)
    return response


def retry_after_of(spec: Mapping[str, Any], budget: Budget | None) -> float | None:
    """The seconds a client is told to wait: as asked, else the budget's wait (or 1 s) for a 429."""
    retry_after = spec.get("retry_after")
    if retry_after is None and int(spec["status"]) == 429:
        retry_after = budget.retry_after if budget is not None and budget.retry_after is not None else 1.0
    return retry_after
