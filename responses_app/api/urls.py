from django.urls import re_path

from responses_app.api import views
from responses_app.api.errors import unknown_route

# Each route takes an optional trailing slash; anything else under /v1/ is a provider-shaped 404.
urlpatterns = [
    re_path(r"^chat/completions/?$", views.ChatCompletionsView.as_view(), name="chat-completions"),
    re_path(r"^completions/?$", views.CompletionsView.as_view(), name="completions"),
    re_path(r"^responses/?$", views.ResponsesView.as_view(), name="responses"),
    re_path(r"^embeddings/?$", views.EmbeddingsView.as_view(), name="embeddings"),
    re_path(r"^messages/?$", views.MessagesView.as_view(), name="messages"),
    re_path(r"^messages/count_tokens/?$", views.CountTokensView.as_view(), name="count-tokens"),
    re_path(r"^models/?$", views.ModelsView.as_view(), name="models"),
    re_path(r"^models/(?P<model_id>[^/]+)/?$", views.ModelView.as_view(), name="model"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]
