from django.contrib import admin
from django.urls import include, path

from responses_app.api.openapi import openapi_view

admin.site.site_header = "mockllm"
admin.site.site_title = "mockllm admin"
admin.site.index_title = "Canned responses"

urlpatterns = [
    path("v1/", include("responses_app.api.urls")),
    path("control/", include("responses_app.team.urls")),
    path("admin/", admin.site.urls),
    path("openapi.json", openapi_view, name="openapi"),
]
