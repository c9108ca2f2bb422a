"""The routes under /openai/ (Azure OpenAI): by deployment with `?api-version=`, and the newer /openai/v1/
paths that the plain `OpenAI` client reaches with an Azure base URL. Anything else is a 404 in Azure's shape."""
from django.urls import re_path

from responses_app.api import azure_views, views
from responses_app.api.errors import unknown_route
from responses_app.providers import azure_openai

DEPLOYMENT = r"^deployments/(?P<deployment>[^/]+)"

urlpatterns = [
    re_path(DEPLOYMENT + r"/chat/completions/?$", azure_views.DeploymentView.as_view(provider=azure_openai.chat),
            name="azure-chat-completions"),
    re_path(DEPLOYMENT + r"/completions/?$", azure_views.DeploymentView.as_view(provider=azure_openai.completions),
            name="azure-completions"),
    re_path(DEPLOYMENT + r"/responses/?$", azure_views.DeploymentView.as_view(provider=azure_openai.responses),
            name="azure-deployment-responses"),
    re_path(DEPLOYMENT + r"/embeddings/?$", azure_views.DeploymentEmbeddingsView.as_view(), name="azure-embeddings"),
    re_path(r"^responses/?$", azure_views.VersionedView.as_view(provider=azure_openai.responses), name="azure-responses"),
    re_path(r"^models/?$", azure_views.VersionedModelsView.as_view(), name="azure-models"),
    re_path(r"^models/(?P<model_id>[^/]+)/?$", azure_views.VersionedModelView.as_view(), name="azure-model"),
    re_path(r"^v1/chat/completions/?$", views.ProviderView.as_view(provider=azure_openai.chat), name="azure-v1-chat"),
    re_path(r"^v1/completions/?$", views.ProviderView.as_view(provider=azure_openai.completions),
            name="azure-v1-completions"),
    re_path(r"^v1/responses/?$", views.ProviderView.as_view(provider=azure_openai.responses), name="azure-v1-responses"),
    re_path(r"^v1/embeddings/?$", views.EmbeddingsView.as_view(provider=azure_openai.embeddings),
            name="azure-v1-embeddings"),
    re_path(r"^v1/models/?$", views.ModelsView.as_view(), name="azure-v1-models"),
    re_path(r"^v1/models/(?P<model_id>[^/]+)/?$", views.ModelView.as_view(), name="azure-v1-model"),
    re_path(r"^(?P<path>.*)$", unknown_route),
]
