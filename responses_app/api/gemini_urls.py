"""The Gemini API's and Vertex AI's routes: Google-style methods (`models/{model}:generateContent`) under
/v1/, /v1beta/ and /v1beta1/, each with or without Vertex AI's `projects/P/locations/L/publishers/X/` in
front. `method_routes` are also in api/urls.py (for /v1/); this module is the whole URLconf of /v1beta/
and /v1beta1/, where the model list is Gemini's and any other path a Gemini-shaped 404."""
from __future__ import annotations

from django.urls import URLPattern, re_path

from responses_app.api import gemini_views
from responses_app.api.errors import unknown_route
from responses_app.providers import gemini_embeddings

# `model` takes everything up to the last colon of the path's last segment.
MODEL = r"^(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/(?P<publisher>[^/]+)/)?" \
        r"models/(?P<model>[^/]+)"


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
]

urlpatterns = [
    *method_routes,
    re_path(r"^models/?$", gemini_views.ModelsView.as_view(), name="gemini-models"),
    re_path(r"^models/(?P<model_id>[^/]+)/?$", gemini_views.ModelView.as_view(), name="gemini-model"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]
