from django.contrib import admin
from django.urls import include, path, re_path

from responses_app.api.errors import unknown_route
from responses_app.api.openapi import openapi_view
from responses_app.api.urls import bedrock_urlpatterns, ollama_urlpatterns

admin.site.site_header = "mockllm"
admin.site.site_title = "mockllm admin"
admin.site.index_title = "Canned responses"

urlpatterns = [
    path("v1/", include("responses_app.api.urls")),
    path("v1beta/", include("responses_app.api.gemini_urls")),  # Gemini API
    path("v1beta1/", include("responses_app.api.gemini_urls")),  # Vertex AI's default version
    path("openai/", include("responses_app.api.azure_urls")),
    path("model/", include(bedrock_urlpatterns)),
    path("api/", include(ollama_urlpatterns)),
    # The other provider API prefixes (api/paths.py): until a route there answers, a provider-shaped 404.
    re_path(r"^(?P<path>(?:v1beta1?|openai|model|api)(?:/.*)?)$", unknown_route),
    path("control/", include("responses_app.team.urls")),
    path("admin/", admin.site.urls),
    path("openapi.json", openapi_view, name="openapi"),
]
