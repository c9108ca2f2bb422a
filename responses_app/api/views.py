"""Thin DRF views: each route names its wire format (a Provider), and one path answers for all of them."""
from __future__ import annotations

import functools
from typing import Any

from django.http import HttpResponse, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api import threads, upstream
from responses_app.api.answer import answer
from responses_app.api.body import IgnoreAcceptNegotiation, read_json_body
from responses_app.api.errors import is_gemini_request
from responses_app.api.record import record_of
from responses_app.canned.index import canned_index
from responses_app.providers import anthropic_messages, model_list, ollama_models, openai_embeddings


def json_response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")


class LeanAPIView(APIView):
    """An APIView that does only the work its settings ask for. The API's views have no authenticators,
    permissions or throttles (keys are checked by the middleware), and negotiation always picks JSON
    (body.IgnoreAcceptNegotiation). So DRF authenticates lazily, on the first use of request.user, as its
    perform_authentication documents; the renderer and the Allow header are made once per view class
    instead of per request; empty permission and throttle lists are not checked. A view that sets any of
    these gets DRF's own behaviour."""

    def perform_authentication(self, request: Request) -> None:
        if self.authentication_classes:
            super().perform_authentication(request)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        if self.content_negotiation_class is IgnoreAcceptNegotiation and self.renderer_classes:
            renderer = _shared_renderer(self.renderer_classes[0])  # renderers keep no state between requests
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def check_permissions(self, request: Request) -> None:
        if self.permission_classes:
            super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        if self.throttle_classes:
            super().check_throttles(request)

    @property
    def default_response_headers(self) -> dict[str, str]:
        """DRF's, which depend only on the view's class, its methods and its renderers: made once."""
        key = (type(self), tuple(self.http_method_names), len(self.renderer_classes))
        headers = _DEFAULT_HEADERS.get(key)
        if headers is None:
            headers = _DEFAULT_HEADERS[key] = super().default_response_headers
        return dict(headers)  # a copy: DRF pops Vary from it


_DEFAULT_HEADERS: dict[tuple, dict[str, str]] = {}


@functools.cache
def _shared_renderer(renderer_class: type) -> Any:
    return renderer_class()


class ProviderView(LeanAPIView):
    """POST to a wire format's answering endpoint (chat completions, messages, ...): parse, find, plan, deliver."""

    provider: Any = None  # a providers.base.Provider, given by the route (api/urls.py)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        record_of(request).provider = self.provider  # every error from here on is in this format's shape
        super().initial(request, *args, **kwargs)

    def read_body(self, request: Request) -> dict:
        """The JSON body; any Content-Type for a format that reads it so (Ollama), else JSON's only."""
        return read_json_body(request, any_content_type=getattr(self.provider, "ANY_CONTENT_TYPE", False))

    def post(self, request: Request) -> HttpResponseBase:
        data = self.read_body(request)
        turn = threads.start_turn(data, record_of(request)) if self.provider is anthropic_messages else None
        if turn is None:
            return answer(request._request, self.provider, self.provider.parse(data))
        with turn:  # a server-held thread: the whole conversation is answered, and the answer held
            parsed = self.provider.parse(turn.body)
            response = answer(request._request, self.provider, parsed)
            record = record_of(request)
            turn.answered(response, parsed, record.match, record.ids)
        return response


class BedrockView(ProviderView):
    """POST /model/{modelId}/converse, /converse-stream, /invoke, /invoke-with-response-stream: the model
    is in the URL (an id, an inference profile or an ARN, URL-encoded), and the route says whether to stream."""

    stream = False

    def post(self, request: Request, model_id: str) -> HttpResponseBase:
        data = read_json_body(request, undeclared=True)
        return answer(request._request, self.provider, self.provider.parse(data, model_id=model_id, stream=self.stream))


class CountTokensView(ProviderView):
    """POST to a wire format's token-counting endpoint: the count its `usage` would report."""

    def post(self, request: Request) -> HttpResponseBase:
        parsed = self.provider.parse_count(read_json_body(request))
        record = record_of(request)
        record.endpoint, record.model = parsed.endpoint, parsed.model
        recorded = upstream.count_tokens(request._request, self.provider, parsed, canned_index.current())
        return recorded if recorded is not None else json_response(self.provider.count(parsed))


class EmbeddingsView(ProviderView):
    """POST /v1/embeddings (OpenAI; Ollama's /api/embed and /api/embeddings by their route): canned vectors
    where the responses file has them, else derived ones."""

    provider: Any = openai_embeddings

    def post(self, request: Request) -> HttpResponseBase:
        return self.embed(request, self.read_body(request))

    def embed(self, request: Request, data: dict) -> HttpResponseBase:
        wire = getattr(self.provider, "base", self.provider)  # Azure's embeddings: OpenAI's body and answer
        parsed = wire.parse(data)
        record = record_of(request)
        record.endpoint, record.model = wire.ENDPOINT, parsed.model
        index = canned_index.current()
        client = record.client
        # Record and replay covers OpenAI's /v1/embeddings only (Azure's and Ollama's are answered as canned).
        recorded = upstream.embeddings(request._request, parsed, index) if self.provider is openai_embeddings else {}
        if isinstance(recorded, HttpResponseBase):
            return recorded  # forwarded upstream to be recorded
        vectors = [list(index.embedding_for(text, client.scenario, client.test_id) or recorded.get(text)
                        or openai_embeddings.vector_for(text, parsed.dimensions))
                   for text in parsed.inputs]
        return json_response(wire.render_json(parsed, vectors))


def _is_anthropic(request: Request) -> bool:
    return "HTTP_ANTHROPIC_VERSION" in request.META


class ModelsView(LeanAPIView):
    """GET /v1/models, in the Anthropic shape when the request carries `anthropic-version`, in Gemini's
    when it looks like a Gemini client's (a Google API key or client header)."""

    def get(self, request: Request) -> HttpResponse:
        if is_gemini_request(request._request):
            return json_response(model_list.render_gemini_list(request.query_params))
        return json_response(model_list.render_list(_is_anthropic(request), request.query_params))


class ModelView(LeanAPIView):
    """GET /v1/models/{id}."""

    def get(self, request: Request, model_id: str) -> HttpResponse:
        if is_gemini_request(request._request):
            return json_response(model_list.render_gemini_one(model_id))
        return json_response(model_list.render_one(model_id, _is_anthropic(request)))


class OllamaTagsView(LeanAPIView):
    """GET /api/tags: the configured models, as Ollama lists its local models."""

    def get(self, request: Request) -> HttpResponse:
        return json_response(ollama_models.render_tags())


class OllamaRunningView(LeanAPIView):
    """GET /api/ps: the configured models, as loaded ones."""

    def get(self, request: Request) -> HttpResponse:
        return json_response(ollama_models.render_running())


class OllamaVersionView(LeanAPIView):
    """GET /api/version."""

    def get(self, request: Request) -> HttpResponse:
        return json_response(ollama_models.render_version())


class OllamaShowView(LeanAPIView):
    """POST /api/show: one model's details."""

    def post(self, request: Request) -> HttpResponse:
        return json_response(ollama_models.render_show(read_json_body(request, any_content_type=True)))
