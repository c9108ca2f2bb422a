"""Thin DRF views: each route names its wire format (a Provider), and one path answers for all of them."""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api import threads
from responses_app.api.answer import answer
from responses_app.api.body import read_json_body
from responses_app.api.record import record_of
from responses_app.canned.index import canned_index
from responses_app.providers import anthropic_messages, model_list, openai_embeddings


def json_response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type="application/json")


class LeanAPIView(APIView):
    """An APIView that skips DRF's eager authentication when it has no authenticators (the API's: keys
    are checked by the middleware). DRF then authenticates lazily, on the first use of request.user,
    as its perform_authentication documents; permissions and throttles still run, empty as they are."""

    def perform_authentication(self, request: Request) -> None:
        if self.authentication_classes:
            super().perform_authentication(request)


class ProviderView(LeanAPIView):
    """POST to a wire format's answering endpoint (chat completions, messages, ...): parse, find, plan, deliver."""

    provider: Any = None  # a providers.base.Provider, given by the route (api/urls.py)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        record_of(request).provider = self.provider  # every error from here on is in this format's shape
        super().initial(request, *args, **kwargs)

    def post(self, request: Request) -> HttpResponseBase:
        data = read_json_body(request)
        turn = threads.start_turn(data, record_of(request)) if self.provider is anthropic_messages else None
        if turn is None:
            return answer(request._request, self.provider, self.provider.parse(data))
        with turn:  # a server-held thread: the whole conversation is answered, and the answer held
            parsed = self.provider.parse(turn.body)
            response = answer(request._request, self.provider, parsed)
            record = record_of(request)
            turn.answered(response, parsed, record.match, record.ids)
        return response


class CountTokensView(ProviderView):
    """POST to a wire format's token-counting endpoint: the count its `usage` would report."""

    def post(self, request: Request) -> HttpResponseBase:
        parsed = self.provider.parse_count(read_json_body(request))
        record = record_of(request)
        record.endpoint, record.model = parsed.endpoint, parsed.model
        return json_response(self.provider.count(parsed))


class EmbeddingsView(ProviderView):
    """POST /v1/embeddings (OpenAI): canned vectors where the responses file has them, else derived ones."""

    provider = openai_embeddings

    def post(self, request: Request) -> HttpResponseBase:
        parsed = openai_embeddings.parse(read_json_body(request))
        record = record_of(request)
        record.endpoint, record.model = openai_embeddings.ENDPOINT, parsed.model
        index = canned_index.current()
        client = record.client
        vectors = [list(index.embedding_for(text, client.scenario, client.test_id)
                        or openai_embeddings.vector_for(text, parsed.dimensions))
                   for text in parsed.inputs]
        return json_response(openai_embeddings.render_json(parsed, vectors))


def _is_anthropic(request: Request) -> bool:
    return "HTTP_ANTHROPIC_VERSION" in request.META


class ModelsView(LeanAPIView):
    """GET /v1/models, in the Anthropic shape when the request carries `anthropic-version`."""

    def get(self, request: Request) -> HttpResponse:
        return json_response(model_list.render_list(_is_anthropic(request), request.query_params))


class ModelView(LeanAPIView):
    """GET /v1/models/{id}."""

    def get(self, request: Request, model_id: str) -> HttpResponse:
        return json_response(model_list.render_one(model_id, _is_anthropic(request)))
