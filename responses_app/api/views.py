"""Thin DRF views, one per upstream endpoint: validate, look up, answer."""
from __future__ import annotations

from types import ModuleType

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api.clients import ANONYMOUS
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.fields import EntryError
from responses_app.api.errors import add_rate_limit_headers, client_key, mock_error_response, mock_headers
from responses_app.api.faults import plan_for
from responses_app.api.rate_limits import rate_limiter
from responses_app.canned.fault_schema import TIMING_RATES
from responses_app.providers.chunking import split_text, stream_seconds
from responses_app.canned.index import canned_index
from responses_app.providers import anthropic_messages as anthropic
from responses_app.providers import openai_completions as completions
from responses_app.providers import openai_embeddings as embeddings
from responses_app.providers import model_list as models
from responses_app.providers import openai_chat as openai
from responses_app.providers import openai_responses as responses
from responses_app.providers.common import APIError, read_json_body
from responses_app.api.sse import deliver


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")


def answer(request: Request, provider: ModuleType, parsed: ChatRequest) -> HttpResponse | StreamingHttpResponse:
    """Find the canned reply for a parsed request, apply any failures or timing asked for, and send
    it as JSON or as an SSE stream."""
    django_request = request._request
    index = canned_index.current()
    client = getattr(django_request, "client", ANONYMOUS)
    match = index.find(parsed, client.scenario, client.test_id)
    log_fields = django_request.__dict__.setdefault("log_fields", {})
    log_fields.update(
        provider=parsed.provider, endpoint=parsed.endpoint, model=parsed.model, stream=parsed.stream,
        matched=match.entry.id if match.entry else "default", match_rule=match.rule,
        input_tokens=parsed.input_tokens, output_tokens=match.output_tokens,
    )
    django_request.journal_prompt = parsed.prompt
    if match.near_misses:
        log_fields["near_misses"] = list(match.near_misses)
    try:
        plan = plan_for(mock_headers(django_request), parsed.model, match.entry.faults if match.entry else None,
                        index.settings)
    except EntryError as exc:
        raise APIError(400, f"{exc.message} (in the X-Mock-* headers)") from None

    budget = None
    if index.settings.get("rate_limits"):
        budget = rate_limiter.spend(client_key(django_request), index.settings["rate_limits"],
                                    parsed.input_tokens + match.output_tokens)
        if budget.retry_after is not None:
            return mock_error_response(django_request, {"status": 429, "retry_after": budget.retry_after},
                                       source="rate limit", budget=budget)
    if plan.error is not None:
        return mock_error_response(django_request, plan.error, source="error asked for", budget=budget)

    timing = plan.timing
    chunk = timing.get("chunk", "char")
    ttft = timing.get("ttft_ms", 0.0) / 1000
    duration = 0.0
    if any(rate in timing for rate in TIMING_RATES):  # only paced answers pay for measuring themselves
        text = match.reply.text or "".join(call.arguments for call in match.reply.tool_calls)
        duration = stream_seconds(timing, len(split_text(text, chunk)), len(text), match.output_tokens)
    ids = provider.new_response_ids()
    if parsed.stream:
        events = provider.iter_stream(parsed, match, ids, chunk)
        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(
            deliver(events, log_fields=log_fields, error_event=provider.stream_error_event, ttft=ttft,
                    duration=duration, jitter=timing.get("jitter", 0.0), seed=timing.get("seed"),
                    fault=plan.stream_error, stall_seconds=settings.MOCKLLM_STALL_SECONDS),
            content_type="text/event-stream; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        if plan.stream_error and plan.stream_error["mode"] == "timeout":
            response.mockllm_hold = settings.MOCKLLM_STALL_SECONDS  # not a byte, not even the headers
            log_fields["stream_end"] = "fault:timeout"
    else:
        response = HttpResponse(provider.render_json(parsed, match, ids), content_type="application/json")
        response.mockllm_hold = ttft + duration  # a non-streamed answer takes as long as the stream would
    response["X-Mockllm-Match"] = str(match.entry.id) if match.entry else match.rule
    if match.near_misses:
        response["X-Mockllm-Near-Miss"] = _header_safe("; ".join(match.near_misses))[:2000]
    if budget is not None:
        add_rate_limit_headers(response, budget, provider)
    return response


def json_response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")


class ChatCompletionsView(APIView):
    """POST /v1/chat/completions (OpenAI)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, openai, openai.parse_request(read_json_body(request)))


class CompletionsView(APIView):
    """POST /v1/completions (OpenAI legacy text completions)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, completions, completions.parse_request(read_json_body(request)))


class ResponsesView(APIView):
    """POST /v1/responses (OpenAI Responses API)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, responses, responses.parse_request(read_json_body(request)))


class MessagesView(APIView):
    """POST /v1/messages (Anthropic)."""

    def post(self, request: Request) -> HttpResponse:
        return answer(request, anthropic, anthropic.parse_request(read_json_body(request)))


class CountTokensView(APIView):
    """POST /v1/messages/count_tokens (Anthropic): the count `usage.input_tokens` would report."""

    def post(self, request: Request) -> HttpResponse:
        parsed = anthropic.parse_request(read_json_body(request), endpoint="count_tokens")
        request._request.log_fields.update(provider="anthropic", endpoint="count_tokens", model=parsed.model)
        return json_response(anthropic.render_count(parsed))


class EmbeddingsView(APIView):
    """POST /v1/embeddings (OpenAI): canned vectors where the responses file has them, else derived ones."""

    def post(self, request: Request) -> HttpResponse:
        parsed = embeddings.parse_request(read_json_body(request))
        index = canned_index.current()
        client = getattr(request._request, "client", ANONYMOUS)
        vectors = [list(index.embedding_for(text, client.scenario, client.test_id)
                        or embeddings.vector_for(text, parsed.dimensions))
                   for text in parsed.inputs]
        request._request.log_fields.update(provider="openai", endpoint="embeddings", model=parsed.model)
        return json_response(embeddings.render_json(parsed, vectors))


def _is_anthropic(request: Request) -> bool:
    return "HTTP_ANTHROPIC_VERSION" in request.META


class ModelsView(APIView):
    """GET /v1/models, in the Anthropic shape when the request carries `anthropic-version`."""

    def get(self, request: Request) -> HttpResponse:
        return json_response(models.render_list(_is_anthropic(request), request.query_params))


class ModelView(APIView):
    """GET /v1/models/{id}."""

    def get(self, request: Request, model_id: str) -> HttpResponse:
        return json_response(models.render_one(model_id, _is_anthropic(request)))
