from django.urls import path, re_path

from responses_app.team import control, control_journal
from responses_app.team.openapi import control_openapi_view

# /control/...: the control API for test suites (control.py). Anything else here is a JSON 404.
urlpatterns = [
    re_path(r"^journal/?$", control_journal.journal_view, name="control-journal"),
    re_path(r"^responses/?$", control.CannedResponsesView.as_view(), name="control-responses"),
    re_path(r"^responses/(?P<pk>[0-9]+)/?$", control.CannedResponseView.as_view(), name="control-response"),
    re_path(r"^record/?$", control.RecordModeView.as_view(), name="control-record"),
    path("openapi.json", control_openapi_view, name="control-openapi"),
    re_path(r"^(?P<path>.*)$", control.unknown_control_route),
]
