from django.urls import re_path

from responses_app.api import views
from responses_app.api.errors import unknown_route
from responses_app.api.gemini_urls import method_routes as gemini_method_routes
from responses_app.providers import (
    anthropic_messages,
    bedrock_converse,
    bedrock_invoke,
    ollama_chat,
    ollama_embeddings,
    ollama_generate,
    openai_chat,
    openai_completions,
    openai_responses,
)

# Each route takes an optional trailing slash; anything else under /v1/ is a provider-shaped 404.
urlpatterns = [
    *gemini_method_routes,  # models/{model}:generateContent...: before `models/{model_id}`, which would take them
    re_path(r"^chat/completions/?$", views.ProviderView.as_view(provider=openai_chat), name="chat-completions"),
    re_path(r"^completions/?$", views.ProviderView.as_view(provider=openai_completions), name="completions"),
    re_path(r"^responses/?$", views.ProviderView.as_view(provider=openai_responses), name="responses"),
    re_path(r"^embeddings/?$", views.EmbeddingsView.as_view(), name="embeddings"),
    re_path(r"^messages/?$", views.ProviderView.as_view(provider=anthropic_messages), name="messages"),
    re_path(r"^messages/count_tokens/?$", views.CountTokensView.as_view(provider=anthropic_messages),
            name="count-tokens"),
    re_path(r"^models/?$", views.ModelsView.as_view(), name="models"),
    re_path(r"^models/(?P<model_id>[^/]+)/?$", views.ModelView.as_view(), name="model"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]

# Bedrock Runtime, under /model/ (mockllm_site/urls.py): the model id may hold ':' and, once decoded, '/'.
MODEL = r"^(?P<model_id>.+)/"
bedrock_urlpatterns = [
    re_path(MODEL + r"converse$", views.BedrockView.as_view(provider=bedrock_converse), name="bedrock-converse"),
    re_path(MODEL + r"converse-stream$", views.BedrockView.as_view(provider=bedrock_converse, stream=True),
            name="bedrock-converse-stream"),
    re_path(MODEL + r"invoke$", views.BedrockView.as_view(provider=bedrock_invoke), name="bedrock-invoke"),
    re_path(MODEL + r"invoke-with-response-stream$", views.BedrockView.as_view(provider=bedrock_invoke, stream=True),
            name="bedrock-invoke-stream"),
]

# Ollama, under /api/ (mockllm_site/urls.py); anything else there is an Ollama-shaped 404.
ollama_urlpatterns = [
    re_path(r"^chat/?$", views.ProviderView.as_view(provider=ollama_chat), name="ollama-chat"),
    re_path(r"^generate/?$", views.ProviderView.as_view(provider=ollama_generate), name="ollama-generate"),
    re_path(r"^embed/?$", views.EmbeddingsView.as_view(provider=ollama_embeddings.EMBED), name="ollama-embed"),
    re_path(r"^embeddings/?$", views.EmbeddingsView.as_view(provider=ollama_embeddings.LEGACY),
            name="ollama-embeddings"),
    re_path(r"^tags/?$", views.OllamaTagsView.as_view(), name="ollama-tags"),
    re_path(r"^ps/?$", views.OllamaRunningView.as_view(), name="ollama-ps"),
    re_path(r"^show/?$", views.OllamaShowView.as_view(), name="ollama-show"),
    re_path(r"^version/?$", views.OllamaVersionView.as_view(), name="ollama-version"),
]
