"""The OpenAPI description of the control API (/control/), served at GET /control/openapi.json."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from responses_app.api.openapi import OPENAI_ERROR
from responses_app.providers.common import dumps
from responses_app.team.control import MAX_ENTRIES_PER_POST, MAX_LIMIT
from responses_app.team.control_journal import JOURNAL_FILTERS, MAX_WAIT_SECONDS, NARROWING
from responses_app.team.journal import FIELDS

CONTROL_ERROR = {"description": "An error; the message says what was wrong.",
                 "content": {"application/json": {"schema": OPENAI_ERROR}}}
CONTROL_ERRORS = {
    "400": CONTROL_ERROR,
    "401": {**CONTROL_ERROR, "description": "The control token is missing or wrong."},
    "403": {**CONTROL_ERROR, "description": "The control API is off (MOCKLLM_CONTROL_TOKEN is not set)."},
}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


TEST_ID_PARAMETERS = [
    _query("test_id", "Only this test run's; the X-Mock-Test-Id header works too (the two must agree). Printable "
                      "ASCII, at most 200 characters."),
]
SCOPE_PARAMETERS = [
    *TEST_ID_PARAMETERS,
    _query("scenario", "A scenario's shared entries (with a test run: that run's entries of the scenario). Printable "
                       "ASCII, at most 100 characters."),
    _query("default", "true: the default set, the entries every request falls back to.", {"type": "boolean"}),
]
SCOPE_RULE = (
    "A request that names a test run (X-Mock-Test-Id or ?test_id=) reads and changes that run's data only: any "
    "other entry is a 404 to it. A change to shared entries must say whose they are: ?scenario=NAME for a "
    "scenario's (X-Mock-Scenario alone does not say it), ?default=true for the default set.")
JSON_TYPES = {"AutoField": "integer", "BigAutoField": "integer", "BigIntegerField": "integer",
              "IntegerField": "integer", "PositiveSmallIntegerField": "integer", "FloatField": "number",
              "BooleanField": "boolean", "CharField": "string", "TextField": "string", "DateTimeField": "string"}


def _field_schema(field: Any) -> dict[str, Any]:
    """A journal column as the control API's JSON describes it."""
    kind = field.get_internal_type()
    if kind == "JSONField":
        schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}} if field.default is list else \
            {"type": "object"}
    else:
        schema = {"type": [JSON_TYPES[kind], "null"] if field.null else JSON_TYPES[kind]}
        if kind == "DateTimeField":
            schema["format"] = "date-time"
    if field.help_text:
        schema["description"] = str(field.help_text)
    return schema


JOURNAL_ENTRY = {"type": "object", "required": ["id", "created_at", "request_id", "status", "matched"],
                 "properties": {field.name: _field_schema(field) for field in FIELDS}}
CANNED_RESPONSE = {"type": "object", "required": ["id", "prompt", "answer", "entry"], "properties": {
    "id": {"type": "integer"}, "prompt": {"type": "string"}, "answer": {"type": "string"},
    "options": {"type": "object"}, "entry": {"type": "object", "description": "The entry in the responses file's list form."},
    "scenario": {"type": "string"}, "test_id": {"type": "string"}, "source": {"type": "string"},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}


NEW_ENTRY = {"type": "object", "required": ["match"], "additionalProperties": True, "properties": {
    "match": {"description": "The prompt, or {contains|regex|normalized: ..., on: ...}."},
    "response": {"description": "The reply text, or {text, tool_calls, ...}."},
    "turns": {"type": "array", "description": "One reply per assistant turn."},
    "test_id": {"type": "string"}, "scenario": {"type": "string"}}}


def _list_of(schema: dict) -> dict:
    return {"description": "The newest first (journal) or in creation order (responses); `has_more` when `limit` cut it.",
            "content": {"application/json": {"schema": {"type": "object", "required": ["object", "data", "has_more"],
                                                        "properties": {"object": {"const": "list"},
                                                                       "data": {"type": "array", "items": schema},
                                                                       "has_more": {"type": "boolean"},
                                                                       "total": {"type": "integer", "description":
                                                                                 "How many match (journal only)."}}}}}}


RECORD_MODE = {"description": "The run's record mode.", "content": {"application/json": {"schema": {
    "type": "object", "required": ["test_id", "mode"],
    "properties": {"test_id": {"type": "string"}, "mode": {"enum": ["off", "miss", "all"]}}}}}}


def _deleted() -> dict:
    return {"description": "How many were deleted.", "content": {"application/json": {"schema": {
        "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "integer"}}}}}}


def build_control_spec() -> dict[str, Any]:
    journal_filters = [
        *TEST_ID_PARAMETERS,
        _query("scenario", "Only entries of requests in this scenario."),
        *(_query(name, f"Only entries with this {name}.") for name in JOURNAL_FILTERS),
        _query("status", "Only entries answered with this HTTP status.", {"type": "integer"}),
        _query("matched", "true: a canned entry answered; false: the default answer did.", {"type": "boolean"}),
        _query("since", "Only entries from this time on (ISO 8601).", {"type": "string", "format": "date-time"}),
        _query("until", "Only entries from before this time (ISO 8601).", {"type": "string", "format": "date-time"}),
        _query("after_id", "Only entries with a larger id (to page, or to see only what is new).", {"type": "integer"}),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "mockllm control API", "version": "1", "description": (
            "Set up canned responses and read the request journal from a test suite. Every request needs "
            "`Authorization: Bearer TOKEN`, where TOKEN is the server's MOCKLLM_CONTROL_TOKEN. " + SCOPE_RULE + " "
            "Test ids and scenario names are printable ASCII, so that one names the same run in a header, a "
            "query and JSON; a value the database cannot hold (a NUL character) is a 400 naming the parameter.")},
        "components": {"securitySchemes": {"controlToken": {"type": "http", "scheme": "bearer"}}},
        "security": [{"controlToken": []}],
        "paths": {
            "/control/journal": {
                "get": {"summary": "Journal entries matching the filters, newest first.", "parameters": [
                    *journal_filters,
                    _query("limit", f"At most this many (1-{MAX_LIMIT}, default 100).",
                           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    _query("wait", f"Wait up to this many seconds (0-{MAX_WAIT_SECONDS:g}) until `min_count` entries match: journal "
                                   "entries are written in batches, a fraction of a second after the answer.",
                           {"type": "integer"}),
                    _query("min_count", "With `wait`: how many entries to wait for (default 1).", {"type": "integer"}),
                ], "responses": {"200": _list_of(JOURNAL_ENTRY), **CONTROL_ERRORS}},
                "delete": {"summary": "Delete the entries matching the filters. They must narrow to someone's "
                                      f"entries: {NARROWING}; or say all=true.",
                           "parameters": [*journal_filters, _query("all", "true: delete every entry.", {"type": "boolean"})],
                           "responses": {"200": _deleted(), **CONTROL_ERRORS}},
            },
            "/control/responses": {
                "get": {"summary": "Canned responses of the request's scope (every one without a scope), in "
                                   "creation order.", "parameters": [
                    *SCOPE_PARAMETERS,
                    _query("after_id", "Only entries with a larger id.", {"type": "integer"}),
                    _query("limit", f"At most this many (1-{MAX_LIMIT}, default 100).",
                           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                ], "responses": {"200": _list_of(CANNED_RESPONSE), **CONTROL_ERRORS}},
                "post": {"summary": "Add a canned response: an entry in the responses file's list form, to a test "
                                    "run's set (`test_id`, ?test_id= or X-Mock-Test-Id: only that run sees it), a "
                                    "scenario's (`scenario` or ?scenario=) or the default set (?default=true). "
                                    "A text with a NUL character is refused, not altered. A JSON list of "
                                    f"entries (up to {MAX_ENTRIES_PER_POST:,}) is added as one change: one "
                                    "transaction, one version bump, all or nothing; an error names the bad "
                                    "entry's index (`[3].match`).",
                         "parameters": SCOPE_PARAMETERS,
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {
                             "oneOf": [NEW_ENTRY, {"type": "array", "items": NEW_ENTRY, "minItems": 1,
                                                   "maxItems": MAX_ENTRIES_PER_POST}]}}}},
                         "responses": {"201": {"description": "Added; served from the next request on. The stored "
                                                              "row, or the list of them for a list.",
                                               "content": {"application/json": {"schema": {"oneOf": [
                                                   CANNED_RESPONSE, {"type": "array", "items": CANNED_RESPONSE}]}}}},
                                       "409": {**CONTROL_ERROR, "description": "That set already has this prompt."},
                                       **CONTROL_ERRORS}},
                "delete": {"summary": "Delete a test run's canned responses, a scenario's shared ones (?scenario=) "
                                      "or the default set's (?default=true).",
                           "parameters": SCOPE_PARAMETERS,
                           "responses": {"200": _deleted(), **CONTROL_ERRORS}},
            },
            "/control/record": {
                "parameters": TEST_ID_PARAMETERS,
                "get": {"summary": "The test run's record mode (off, miss or all).",
                        "responses": {"200": RECORD_MODE, **CONTROL_ERRORS}},
                "put": {"summary": "Put the test run into record mode: `miss` forwards the run's requests that no "
                                   "entry answers to the upstream the server is configured with and records the "
                                   "answers into the run's own set; `all` forwards and records every request of "
                                   "the run; `off` ends it.",
                        "requestBody": {"required": True, "content": {"application/json": {"schema": {
                            "type": "object", "required": ["mode"],
                            "properties": {"mode": {"enum": ["off", "miss", "all"]}}}}}},
                        "responses": {"200": RECORD_MODE, **CONTROL_ERRORS}},
                "delete": {"summary": "End the test run's record mode.",
                           "responses": {"200": RECORD_MODE, **CONTROL_ERRORS}},
            },
            "/control/responses/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                               *SCOPE_PARAMETERS],
                "get": {"summary": "One canned response (of the request's test run, when it names one).", "responses": {
                    "200": {"description": "It.", "content": {"application/json": {"schema": CANNED_RESPONSE}}},
                    "404": {**CONTROL_ERROR, "description": "No such canned response in the request's scope."},
                    **CONTROL_ERRORS}},
                "delete": {"summary": "Delete one canned response of the scope the request says: its test run, "
                                      "?scenario= or ?default=true.", "responses": {
                    "204": {"description": "Deleted."},
                    "404": {**CONTROL_ERROR, "description": "No such canned response in the request's scope."},
                    **CONTROL_ERRORS}},
            },
        },
    }


def control_openapi_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dumps(build_control_spec()), content_type="application/json")
