"""Reading a request body under /v1/ and /control/: always JSON, whatever the client says it accepts."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.negotiation import BaseContentNegotiation

from responses_app.api.record import record_of
from responses_app.providers.common import APIError, parse_json_object


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """Always JSON: clients send `Accept: application/json` even for streams, and some send nothing."""

    def select_parser(self, request: Any, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


def read_json_body(request: Any, *, lists: bool = False, undeclared: bool = False,
                   any_content_type: bool = False) -> Any:
    """The request's JSON object (or, with `lists`, a JSON list too); 415 unless the body is declared as
    JSON (or, with `undeclared`, has no Content-Type: boto3's invoke_model sends none unless told; or
    `any_content_type`: Ollama reads JSON whatever the header says), 413 when it is too big.

    The body is read directly rather than through DRF's request.data, which treats a body sent
    without Content-Length (chunked) as empty.
    """
    content_type = request.content_type or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if (not any_content_type and media_type != "application/json" and not media_type.endswith("+json")
            and not (undeclared and not media_type)):
        shown = repr(content_type) if content_type else "none"
        raise APIError(415, f"Content-Type must be application/json (got {shown}).", code="unsupported_media_type")
    raw = request._request.body
    record_of(request).body = raw
    if len(raw) > settings.MOCKLLM_MAX_BODY_BYTES:
        raise APIError(
            413, f"The request body is {len(raw)} bytes; this server accepts at most "
            f"{settings.MOCKLLM_MAX_BODY_BYTES} (MOCKLLM_MAX_BODY_BYTES).",
        )
    return parse_json_object(raw, lists=lists)
