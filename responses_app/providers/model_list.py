"""GET /v1/models and /v1/models/{id}: one configured list, in the OpenAI, the Anthropic or the Gemini shape.

The APIs share the path; a request carrying `anthropic-version` gets the Anthropic shape, and one that
looks like a Gemini client (api/views.py) or comes under /v1beta gets Gemini's.
"""
from __future__ import annotations

from django.conf import settings

from responses_app.providers.common import APIError, dumps

OPENAI_CREATED = 1_700_000_000
ANTHROPIC_CREATED_AT = "2025-01-01T00:00:00Z"


def _openai(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": OPENAI_CREATED, "owned_by": "mockllm"}


def _anthropic(model_id: str) -> dict:
    display = " ".join(part.capitalize() for part in model_id.replace("-", " ").split())
    return {"type": "model", "id": model_id, "display_name": display, "created_at": ANTHROPIC_CREATED_AT,
            "lifecycle": "active"}


def _find(model_id: str) -> str:
    if model_id not in settings.MOCKLLM_MODELS:
        raise APIError(404, f"The model `{model_id}` does not exist (this server lists: "
                       f"{', '.join(settings.MOCKLLM_MODELS)}; set MOCKLLM_MODELS to change it).",
                       code="model_not_found")
    return model_id


def render_list(anthropic: bool, query: dict) -> bytes:
    models = list(settings.MOCKLLM_MODELS)
    if not anthropic:
        return dumps({"object": "list", "data": [_openai(m) for m in models]})
    limit = query.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise APIError(400, "`limit` must be a whole number from 1 to 1000.", param="limit")
    if query.get("after_id"):
        models = models[models.index(_find(query["after_id"])) + 1:]
    if query.get("before_id"):
        models = models[:models.index(_find(query["before_id"]))]
        models = models[-int(limit):]
    page = models[:int(limit)]
    return dumps({"data": [_anthropic(m) for m in page], "has_more": len(models) > len(page),
                  "first_id": page[0] if page else None, "last_id": page[-1] if page else None})


def _gemini(model_id: str) -> dict:
    embedding = "embedding" in model_id
    methods = ["embedContent", "batchEmbedContents"] if embedding else ["generateContent", "countTokens"]
    return {"name": f"models/{model_id}", "version": "001", "displayName": model_id,
            "description": f"{model_id}, served by mockllm", "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536, "supportedGenerationMethods": methods}


def render_gemini_list(query: dict) -> bytes:
    """Gemini's ListModelsResponse, paged by `pageSize` and `pageToken` (the name of the first model of the page)."""
    models = list(settings.MOCKLLM_MODELS)
    size = query.get("pageSize", "50")
    if not size.isdigit() or not 1 <= int(size) <= 1000:
        raise APIError(400, "`pageSize` must be a whole number from 1 to 1000.", param="pageSize")
    start = models.index(query["pageToken"]) if query.get("pageToken") in models else 0
    page = models[start:start + int(size)]
    body: dict = {"models": [_gemini(m) for m in page]}
    if start + int(size) < len(models):
        body["nextPageToken"] = models[start + int(size)]
    return dumps(body)


def render_gemini_one(model_id: str) -> bytes:
    return dumps(_gemini(_find(model_id.removeprefix("models/"))))


def _vertex(model_id: str, publisher: str) -> dict:
    return {"name": f"publishers/{publisher}/models/{model_id}", "versionId": "001", "launchStage": "GA",
            "openSourceCategory": "PROPRIETARY"}


def render_vertex_list(publisher: str) -> bytes:
    """Vertex AI's ListPublisherModelsResponse (google-genai's `models.list()` in Vertex mode)."""
    return dumps({"publisherModels": [_vertex(m, publisher) for m in settings.MOCKLLM_MODELS]})


def render_vertex_one(model_id: str, publisher: str) -> bytes:
    return dumps(_vertex(_find(model_id), publisher))


def render_one(model_id: str, anthropic: bool) -> bytes:
    found = _find(model_id)
    return dumps(_anthropic(found) if anthropic else _openai(found))
