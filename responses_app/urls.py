from django.urls import re_path

from . import views
from .errors import unknown_route

# Each route takes an optional trailing slash; anything else under /v1/ is a provider-shaped 404.
urlpatterns = [
    re_path(r"^chat/completions/?$", views.ChatCompletionsView.as_view(), name="chat-completions"),
    re_path(r"^messages/?$", views.MessagesView.as_view(), name="messages"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]
