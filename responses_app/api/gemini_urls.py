"""The Gemini API's and Vertex AI's routes: Google-style methods (`models/{model}:generateContent`) under
/v1/, /v1beta/ and /v1beta1/, each with or without Vertex AI's `projects/P/locations/L/publishers/X/` in
front, and Vertex AI's publisher model list. `method_routes` are also in api/urls.py (for /v1/); this module
is the whole URLconf of /v1beta/ and /v1beta1/, where `models` is Gemini's model list and any other path a
Gemini-shaped 404."""
from __future__ import annotations

from django.urls import URLPattern, re_path

from responses_app.api import gemini_views
from responses_app.api.errors import unknown_route
from responses_app.providers import gemini_embeddings

# `model` takes everything up to the last colon of the path's last segment.
MODEL = r"^(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/(?P<publisher>[^/]+)/)?" \
        r"models/(?P<model>[^/]+)"

PUBLISHER = r"^(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?publishers/(?P<publisher>[^/]+)/models"


def _method(verb: str, view, name: str) -> URLPattern:
    return re_path(MODEL + f":{verb}$", view, name=name)


method_routes = [
    _method("generateContent", gemini_views.GenerateContentView.as_view(), "gemini-generate-content"),
    _method("streamGenerateContent", gemini_views.GenerateContentView.as_view(stream=True),
            "gemini-stream-generate-content"),
    _method("countTokens", gemini_views.CountTokensView.as_view(), "gemini-count-tokens"),
    _method("embedContent", gemini_views.EmbeddingsView.as_view(parse_body=gemini_embeddings.parse_embed),
            "gemini-embed-content"),
    _method("batchEmbedContents", gemini_views.EmbeddingsView.as_view(parse_body=gemini_embeddings.parse_batch),
            "gemini-batch-embed-contents"),
    _method("predict", gemini_views.EmbeddingsView.as_view(parse_body=gemini_embeddings.parse_predict),
            "vertex-predict"),
    # Vertex AI's model list: no OpenAI path starts with publishers/ or projects/.
    re_path(PUBLISHER + r"/?$", gemini_views.PublisherModelsView.as_view(), name="vertex-models"),
    re_path(PUBLISHER + r"/(?P<model_id>[^/:]+)/?$", gemini_views.PublisherModelView.as_view(), name="vertex-model"),
]

urlpatterns = [
    *method_routes,
    re_path(r"^models/?$", gemini_views.ModelsView.as_view(), name="gemini-models"),
    re_path(r"^models/(?P<model_id>[^/]+)/?$", gemini_views.ModelView.as_view(), name="gemini-model"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]
