"""Thin views for the Gemini API and Vertex AI: the model is in the URL (`models/{model}:generateContent`),
and `?alt=sse` picks a stream's framing. The answering path is the same as every other format's."""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase
from rest_framework.request import Request

from responses_app.api.answer import answer
from responses_app.api.body import read_json_body
from responses_app.api.record import record_of
from responses_app.api.views import LeanAPIView, ProviderView, json_response
from responses_app.canned.index import canned_index
from responses_app.providers import gemini_embeddings, gemini_generate, model_list
from responses_app.providers.openai_embeddings import vector_for


class GenerateContentView(ProviderView):
    """POST {models/M | projects/P/locations/L/publishers/google/models/M}:generateContent, or
    :streamGenerateContent when the route says `stream`."""

    provider = gemini_generate
    stream = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if self.stream and "alt=sse" not in request._request.META.get("QUERY_STRING", ""):
            self.provider = gemini_generate.ARRAY_STREAM  # one JSON array, as Google answers without alt=sse
        super().initial(request, *args, **kwargs)

    def post(self, request: Request, model: str, **route: str) -> HttpResponseBase:
        parsed = self.provider.parse(read_json_body(request), model=model, stream=self.stream)
        return answer(request._request, self.provider, parsed)


class CountTokensView(ProviderView):
    """POST ...:countTokens: the count `usageMetadata.promptTokenCount` would report."""

    provider = gemini_generate

    def post(self, request: Request, model: str, **route: str) -> HttpResponseBase:
        parsed = gemini_generate.parse_count(read_json_body(request), model=model)
        record = record_of(request)
        record.endpoint, record.model = parsed.endpoint, parsed.model
        return json_response(gemini_generate.count(parsed))


class EmbeddingsView(ProviderView):
    """POST ...:embedContent, ...:batchEmbedContents, or Vertex AI's ...:predict (text-embedding models):
    canned vectors where the responses file has them, else derived ones."""

    provider = gemini_embeddings
    parse_body: Any = None  # gemini_embeddings.parse_embed, parse_batch or parse_predict, given by the route

    def post(self, request: Request, model: str, **route: str) -> HttpResponseBase:
        parsed = self.parse_body(read_json_body(request), model)
        record = record_of(request)
        record.endpoint, record.model = gemini_embeddings.ENDPOINT, model
        index = canned_index.current()
        client = record.client
        vectors = [list(index.embedding_for(text, client.scenario, client.test_id) or vector_for(text, parsed.dimensions))
                   for text in parsed.inputs]
        return json_response(gemini_embeddings.render(parsed, vectors))


class ModelsView(LeanAPIView):
    """GET /v1beta/models (Gemini's ListModels)."""

    def get(self, request: Request, **route: str) -> HttpResponse:
        return json_response(model_list.render_gemini_list(request.query_params))


class ModelView(LeanAPIView):
    """GET /v1beta/models/{model}."""

    def get(self, request: Request, model_id: str, **route: str) -> HttpResponse:
        return json_response(model_list.render_gemini_one(model_id))


class PublisherModelsView(LeanAPIView):
    """GET [projects/P/locations/L/]publishers/{publisher}/models (Vertex AI's model list)."""

    def get(self, request: Request, publisher: str, **route: str) -> HttpResponse:
        return json_response(model_list.render_vertex_list(publisher))


class PublisherModelView(LeanAPIView):
    """GET [projects/P/locations/L/]publishers/{publisher}/models/{model}."""

    def get(self, request: Request, publisher: str, model_id: str, **route: str) -> HttpResponse:
        return json_response(model_list.render_vertex_one(model_id, publisher))
