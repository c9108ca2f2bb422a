"""The OpenAPI description of every endpoint this server answers, served at GET /openapi.json.

It describes what the server accepts (the subset of each provider's request that matters here,
with every other field allowed) and the shapes it answers with, errors included. The fuzzing tests
generate requests from it.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from responses_app.providers.common import dumps

OPENAI_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string", "minLength": 1}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
ANTHROPIC_ERROR = {
    "type": "object", "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "request_id": {"type": "string"},
                   "error": {"type": "object", "required": ["type", "message"], "properties": {
                       "type": {"type": "string"}, "message": {"type": "string", "minLength": 1}}}},
}
TEXT_OR_PARTS = {"oneOf": [
    {"type": "string"},
    {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string"}, "text": {"type": "string"}}}},
]}
MOCK_HEADERS = [
    {"name": "X-Mock-Status", "in": "header", "required": False, "description": "Answer with this error status (400-599).",
     "schema": {"type": "string"}},
    {"name": "X-Mock-Timing", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "ttft_ms=…; chunks_per_second=…; chunk=char|word|token|N; jitter=…; seed=…"},
    {"name": "X-Mock-Stream-Error", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "error | disconnect | no_done | malformed | stall | timeout, with after_chunks=N or after_ms=N"},
    {"name": "X-Mock-Test-Id", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 200},
     "description": "The test run this request belongs to: it sees that run's canned responses first, and its "
                    "journal entries carry this id."},
    {"name": "X-Mock-Scenario", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 100},
     "description": "Answer from this scenario's canned responses first (overrides the API key's scenario)."},
]


def _error_responses(error_schema: dict) -> dict:
    content = {"application/json": {"schema": error_schema}}
    return {
        "400": {"description": "The request is malformed; the message says what was wrong.", "content": content},
        "405": {"description": "Wrong method.", "content": content},
        "401": {"description": "MOCKLLM_REQUIRE_API_KEY is on and the key is missing or unknown.", "content": content},
        "413": {"description": "The body is larger than MOCKLLM_MAX_BODY_BYTES.", "content": content},
        "415": {"description": "The body is not declared as JSON.", "content": content},
        "4XX": {"description": "An error asked for with X-Mock-Status, a model name or an entry.", "content": content},
        "5XX": {"description": "An error asked for (the server answers no other 5xx).", "content": content},
    }


def _json_or_stream(schema: dict) -> dict:
    return {"application/json": {"schema": schema}, "text/event-stream": {"schema": {"type": "string"}}}


def _post(summary: str, body: dict, answer: dict, error_schema: dict, stream: bool = True) -> dict:
    return {"post": {
        "summary": summary,
        "parameters": list(MOCK_HEADERS),
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {"description": "The canned answer" + (", as JSON or as an SSE stream when `stream` is true." if stream else "."),
                    "content": _json_or_stream(answer) if stream else {"application/json": {"schema": answer}}},
            **_error_responses(error_schema),
        },
    }}


CHAT_REQUEST = {
    "type": "object", "required": ["model", "messages"], "additionalProperties": True,
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role"], "properties": {
            "role": {"enum": ["developer", "system", "user", "assistant", "tool", "function"]},
            "content": {"oneOf": [TEXT_OR_PARTS, {"type": "null"}]}}}},
        "stream": {"type": "boolean"}, "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "max_tokens": {"type": "integer", "minimum": 1}, "max_completion_tokens": {"type": "integer", "minimum": 1},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    },
}
CHAT_RESPONSE = {"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
    "id": {"type": "string"}, "object": {"const": "chat.completion"}, "created": {"type": "integer"},
    "model": {"type": "string"}, "choices": {"type": "array"}, "usage": {"type": "object"}}}
MESSAGES_REQUEST = {
    "type": "object", "required": ["model", "max_tokens", "messages"], "additionalProperties": True,
    "properties": {
        "model": {"type": "string"}, "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"],
                                                             "properties": {"role": {"enum": ["user", "assistant"]},
                                                                            "content": TEXT_OR_PARTS}}},
        "system": TEXT_OR_PARTS, "stream": {"type": "boolean"},
    },
}
MESSAGE_RESPONSE = {"type": "object", "required": ["id", "type", "role", "model", "content", "usage"], "properties": {
    "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
    "content": {"type": "array"}, "usage": {"type": "object"}}}


def build_spec(*, mock_headers: bool = True) -> dict[str, Any]:
    """The description; without `mock_headers`, the X-Mock-* headers are left out (for fuzzing: they
    ask for errors, stalls and broken streams on purpose)."""
    count_request = {**MESSAGES_REQUEST, "required": ["model", "messages"]}
    models_get = {"get": {"summary": "The configured models: OpenAI shape, or Anthropic's with `anthropic-version`.",
                          "responses": {"200": {"description": "The list.", "content": {"application/json": {
                              "schema": {"type": "object", "required": ["data"]}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mockllm", "version": "1",
                 "description": "Canned, deterministic answers in the OpenAI and Anthropic wire formats."},
        "paths": {
            "/v1/chat/completions": _post("OpenAI chat completions", CHAT_REQUEST, CHAT_RESPONSE, OPENAI_ERROR),
            "/v1/completions": _post("OpenAI legacy text completions", {
                "type": "object", "required": ["model", "prompt"], "additionalProperties": True,
                "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}, "stream": {"type": "boolean"}}},
                {"type": "object", "required": ["id", "object", "choices"]}, OPENAI_ERROR),
            "/v1/responses": _post("OpenAI Responses API", {
                "type": "object", "required": ["model", "input"], "additionalProperties": True,
                "properties": {"model": {"type": "string"}, "input": {"type": "string", "minLength": 0},
                               "instructions": {"type": "string"}, "stream": {"type": "boolean"}}},
                {"type": "object", "required": ["id", "object", "output"]}, OPENAI_ERROR),
            "/v1/embeddings": _post("OpenAI embeddings", {
                "type": "object", "required": ["model", "input"], "additionalProperties": True,
                "properties": {"model": {"type": "string"},
                               "input": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
                               "encoding_format": {"enum": ["float", "base64"]},
                               "dimensions": {"type": "integer", "minimum": 1, "maximum": 16384}}},
                {"type": "object", "required": ["object", "data", "model", "usage"]}, OPENAI_ERROR, stream=False),
            "/v1/messages": _post("Anthropic messages", MESSAGES_REQUEST, MESSAGE_RESPONSE, ANTHROPIC_ERROR),
            "/v1/messages/count_tokens": _post("Anthropic token counting", count_request, {
                "type": "object", "required": ["input_tokens"], "properties": {"input_tokens": {"type": "integer"}}},
                ANTHROPIC_ERROR, stream=False),
            "/v1/models": models_get,
            "/v1/models/{model_id}": {"get": {
                "summary": "One model, or 404.",
                "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The model.", "content": {"application/json": {"schema": {"type": "object"}}}},
                              "404": {"description": "Not one of MOCKLLM_MODELS.",
                                      "content": {"application/json": {"schema": OPENAI_ERROR}}}}}},
        },
    } if mock_headers else _without_mock_headers(build_spec())


def _without_mock_headers(spec: dict[str, Any]) -> dict[str, Any]:
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["parameters"] = [p for p in operation.get("parameters", []) if p not in MOCK_HEADERS]
    return spec


def openapi_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dumps(build_spec()), content_type="application/json")


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
    _query("test_id", "Only this test run's (X-Mock-Test-Id); the X-Mock-Test-Id header works too."),
]
JOURNAL_ENTRY = {"type": "object", "required": ["id", "created_at", "request_id", "status", "matched"], "properties": {
    "id": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
    "request_id": {"type": "string", "description": "The x-request-id the request was answered with."},
    "test_id": {"type": "string"}, "scenario": {"type": "string"},
    "api_key_name": {"type": "string", "description": "The name of the API key used (never the key)."},
    "method": {"type": "string"}, "path": {"type": "string"}, "provider": {"type": "string"},
    "endpoint": {"type": "string"}, "model": {"type": "string"}, "stream": {"type": "boolean"},
    "status": {"type": "integer"}, "matched": {"type": "boolean"}, "entry_id": {"type": ["integer", "null"]},
    "match_rule": {"type": "string"}, "near_misses": {"type": "array", "items": {"type": "string"}},
    "prompt": {"type": "string"}, "stream_end": {"type": "string"}, "duration_ms": {"type": "number"},
    "input_tokens": {"type": ["integer", "null"]}, "output_tokens": {"type": ["integer", "null"]},
    "headers": {"type": "object", "description": "Request headers; Authorization, x-api-key and cookies redacted."},
    "body": {"type": "string"}}}
CANNED_RESPONSE = {"type": "object", "required": ["id", "prompt", "answer", "entry"], "properties": {
    "id": {"type": "integer"}, "prompt": {"type": "string"}, "answer": {"type": "string"},
    "options": {"type": "object"}, "entry": {"type": "object", "description": "The entry in the responses file's list form."},
    "scenario": {"type": "string"}, "test_id": {"type": "string"}, "source": {"type": "string"},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}


def _list_of(schema: dict) -> dict:
    return {"description": "The newest first (journal) or in creation order (responses); `has_more` when `limit` cut it.",
            "content": {"application/json": {"schema": {"type": "object", "required": ["object", "data", "has_more"],
                                                        "properties": {"object": {"const": "list"},
                                                                       "data": {"type": "array", "items": schema},
                                                                       "has_more": {"type": "boolean"},
                                                                       "total": {"type": "integer", "description":
                                                                                 "How many match (journal only)."}}}}}}


def _deleted() -> dict:
    return {"description": "How many were deleted.", "content": {"application/json": {"schema": {
        "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "integer"}}}}}}


def build_control_spec() -> dict[str, Any]:
    journal_filters = [
        *TEST_ID_PARAMETERS,
        *(_query(name, f"Only entries with this {name}.") for name in
          ("model", "provider", "endpoint", "scenario", "api_key_name", "request_id")),
        _query("status", "Only entries answered with this HTTP status.", {"type": "integer"}),
        _query("matched", "true: a canned entry answered; false: the default answer did.", {"type": "boolean"}),
        _query("since", "Only entries from this time on (ISO 8601).", {"type": "string", "format": "date-time"}),
        _query("after_id", "Only entries with a larger id (to page, or to see only what is new).", {"type": "integer"}),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "mockllm control API", "version": "1", "description": (
            "Set up canned responses and read the request journal from a test suite. Every request needs "
            "`Authorization: Bearer TOKEN`, where TOKEN is the server's MOCKLLM_CONTROL_TOKEN.")},
        "components": {"securitySchemes": {"controlToken": {"type": "http", "scheme": "bearer"}}},
        "security": [{"controlToken": []}],
        "paths": {
            "/control/journal": {
                "get": {"summary": "Journal entries matching the filters, newest first.", "parameters": [
                    *journal_filters,
                    _query("limit", "At most this many (1-1000, default 100).", {"type": "integer"}),
                    _query("wait", "Wait up to this many seconds (0-30) until `min_count` entries match: journal "
                                   "entries are written in batches, a fraction of a second after the answer.",
                           {"type": "integer"}),
                    _query("min_count", "With `wait`: how many entries to wait for (default 1).", {"type": "integer"}),
                ], "responses": {"200": _list_of(JOURNAL_ENTRY), **CONTROL_ERRORS}},
                "delete": {"summary": "Delete the entries matching the filters (give one, or all=true).",
                           "parameters": [*journal_filters, _query("all", "true: delete every entry.", {"type": "boolean"})],
                           "responses": {"200": _deleted(), **CONTROL_ERRORS}},
            },
            "/control/responses": {
                "get": {"summary": "Canned responses, in creation order.", "parameters": [
                    *TEST_ID_PARAMETERS, _query("scenario", "Only this scenario's."),
                    _query("after_id", "Only entries with a larger id.", {"type": "integer"}),
                    _query("limit", "At most this many (1-1000, default 100).", {"type": "integer"}),
                ], "responses": {"200": _list_of(CANNED_RESPONSE), **CONTROL_ERRORS}},
                "post": {"summary": "Add a canned response: an entry in the responses file's list form, plus an "
                                    "optional `test_id` (only requests with that X-Mock-Test-Id see it) or `scenario`.",
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {
                             "type": "object", "required": ["match"], "additionalProperties": True, "properties": {
                                 "match": {"description": "The prompt, or {contains|regex|normalized: ..., on: ...}."},
                                 "response": {"description": "The reply text, or {text, tool_calls, ...}."},
                                 "turns": {"type": "array", "description": "One reply per assistant turn."},
                                 "test_id": {"type": "string"}, "scenario": {"type": "string"}}}}}},
                         "responses": {"201": {"description": "Added; served from the next request on.",
                                               "content": {"application/json": {"schema": CANNED_RESPONSE}}},
                                       "409": {**CONTROL_ERROR, "description": "That set already has this prompt."},
                                       **CONTROL_ERRORS}},
                "delete": {"summary": "Delete a test run's (test_id) or a scenario's canned responses.",
                           "parameters": [*TEST_ID_PARAMETERS, _query("scenario", "Only this scenario's.")],
                           "responses": {"200": _deleted(), **CONTROL_ERRORS}},
            },
            "/control/responses/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "get": {"summary": "One canned response.", "responses": {
                    "200": {"description": "It.", "content": {"application/json": {"schema": CANNED_RESPONSE}}},
                    "404": {**CONTROL_ERROR, "description": "No such canned response."}, **CONTROL_ERRORS}},
                "delete": {"summary": "Delete one canned response.", "responses": {
                    "204": {"description": "Deleted."},
                    "404": {**CONTROL_ERROR, "description": "No such canned response."}, **CONTROL_ERRORS}},
            },
        },
    }


def control_openapi_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dumps(build_control_spec()), content_type="application/json")
