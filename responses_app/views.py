"""Thin DRF views, one per upstream endpoint: validate, look up, answer."""
from __future__ import annotations

from types import ModuleType

from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from .index import response_index
from .providers import anthropic, openai
from .providers.common import read_json_body
from .sse import deliver


def answer(request: Request, provider: ModuleType, parsed: object) -> HttpResponse | StreamingHttpResponse:
    """Find the canned answer for a parsed request and send it as JSON or as an SSE stream."""
    match = response_index.current().find(parsed.prompt)
    log_fields = request._request.__dict__.setdefault("log_fields", {})
    log_fields.update(
        provider=provider.NAME, model=parsed.model, stream=parsed.stream,
        matched=match.entry.id if match.entry else "default", match_rule=match.rule,
    )
    ids = provider.new_response_ids()
    if parsed.stream:
        events = provider.iter_stream(parsed, match, ids)
        response = StreamingHttpResponse(
            deliver(events, log_fields=log_fields, error_event=provider.stream_error_event),
            content_type="text/event-stream; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    else:
        response = HttpResponse(provider.render_json(parsed, match, ids), content_type="application/json")
    response["X-Mockllm-Match"] = str(match.entry.id) if match.entry else "default"
    return response


class ChatCompletionsView(APIView):
    """POST /v1/chat/completions (OpenAI)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, openai, openai.parse_request(read_json_body(request)))


class MessagesView(APIView):
    """POST /v1/messages (Anthropic)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, anthropic, anthropic.parse_request(read_json_body(request)))
