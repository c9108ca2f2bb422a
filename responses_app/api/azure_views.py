"""Azure OpenAI's routes that differ from OpenAI's: a deployment in the path, and `?api-version=` required."""
from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase
from rest_framework.request import Request

from responses_app.api.answer import answer
from responses_app.api.body import read_json_body
from responses_app.api.record import record_of
from responses_app.api.views import EmbeddingsView, ModelsView, ModelView, ProviderView
from responses_app.providers import azure_openai
from responses_app.providers.common import APIError

NOT_FOUND = "Resource not found"  # Azure's words for a request without an api-version


class ApiVersionRequired:
    """Azure's deployment routes (and /openai/responses, /openai/models) answer a request without
    `?api-version=` with a 404 "Resource not found", as the real service does."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if not has_api_version(request._request.META.get("QUERY_STRING", "")):
            record_of(request).notes["error"] = "no api-version"
            raise APIError(404, NOT_FOUND)


def has_api_version(query: str) -> bool:
    """Whether the query string gives a non-empty `api-version` (read directly: a QueryDict costs more)."""
    return any(name == "api-version" and value for name, _, value in (pair.partition("=") for pair in query.split("&")))


def model_or_deployment(data: dict, deployment: str) -> dict:
    """The deployment is the model when the body names none."""
    if data.get("model") is None:
        data["model"] = deployment
    return data


class DeploymentView(ApiVersionRequired, ProviderView):
    """POST /openai/deployments/{deployment}/chat/completions (completions, responses)?api-version=..."""

    def post(self, request: Request, deployment: str) -> HttpResponseBase:  # type: ignore[override]
        data = model_or_deployment(read_json_body(request), deployment)
        return answer(request._request, self.provider, self.provider.parse(data))


class DeploymentEmbeddingsView(ApiVersionRequired, EmbeddingsView):
    """POST /openai/deployments/{deployment}/embeddings?api-version=..."""

    provider = azure_openai.embeddings

    def post(self, request: Request, deployment: str) -> HttpResponseBase:  # type: ignore[override]
        return self.embed(request, model_or_deployment(read_json_body(request), deployment))


class VersionedView(ApiVersionRequired, ProviderView):
    """POST /openai/responses?api-version=... (the `AzureOpenAI` client's Responses API)."""


class VersionedModelsView(ApiVersionRequired, ModelsView):
    """GET /openai/models?api-version=..."""


class VersionedModelView(ApiVersionRequired, ModelView):
    """GET /openai/models/{id}?api-version=..."""
