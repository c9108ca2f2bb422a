"""The OpenAPI description of every endpoint this server answers, served at GET /openapi.json.

It describes what the server accepts (the subset of each provider's request that matters here,
with every other field allowed) and the shapes it answers with, errors included. The fuzzing tests
generate requests from it.

It is longer than 350 lines because it is one document: six providers' paths built from the same
helpers (`_post`, the mock headers, the error schemas), declarations rather than logic.
"""
from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse

from responses_app.providers import anthropic_messages, gemini_generate, ollama_chat, openai_chat, openai_embeddings
from responses_app.providers.common import dumps

OPENAI_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string", "minLength": 1}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
AZURE_ERROR = {  # the service's own {code, message}, the model's OpenAI shape, or a filtered prompt's
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "code"], "properties": {
        "message": {"type": "string", "minLength": 1}, "code": {"type": ["string", "null"]},
        "innererror": {"type": "object"}}}},
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
     "description": "error | disconnect | no_done | malformed | stall | timeout, with after_chunks=N or after_ms=N "
                    "(and type=... for error: the error event's type, Bedrock's stream exception)"},
    {"name": "X-Mock-Content-Filter", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "prompt | completion, with category=… and severity=low|medium|high: a content filter's refusal"},
    {"name": "X-Mock-Test-Id", "in": "header", "required": False,
     "schema": {"type": "string", "maxLength": 200, "pattern": "^[ -~]*$"},
     "description": "The test run this request belongs to: it sees that run's canned responses first, and its "
                    "journal entries carry this id. Printable ASCII (else a 400), so that it names the same run "
                    "here and in the control API."},
    {"name": "X-Mock-Scenario", "in": "header", "required": False,
     "schema": {"type": "string", "maxLength": 100, "pattern": "^[ -~]*$"},
     "description": "Answer from this scenario's canned responses first (overrides the API key's scenario). "
                    "Printable ASCII (else a 400)."},
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


def _json_or_stream(schema: dict, stream_type: str = "text/event-stream") -> dict:
    return {"application/json": {"schema": schema}, stream_type: {"schema": {"type": "string"}}}


def _post(summary: str, body: dict, answer: dict, error_schema: dict, stream: bool = True,
          stream_type: str = "text/event-stream") -> dict:
    framing = "an SSE stream when `stream` is true" if stream_type == "text/event-stream" else \
        "NDJSON lines unless `stream` is false"
    return {"post": {
        "summary": summary,
        "parameters": list(MOCK_HEADERS),
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {"description": "The canned answer" + (f", as JSON or as {framing}." if stream else "."),
                    "content": _json_or_stream(answer, stream_type) if stream else {"application/json": {"schema": answer}}},
            **_error_responses(error_schema),
        },
    }}


CHAT_REQUEST = {
    "type": "object", "required": ["model", "messages"], "additionalProperties": True,
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role"], "properties": {
            "role": {"enum": list(openai_chat.ROLES)},
            "content": {"oneOf": [TEXT_OR_PARTS, {"type": "null"}]}}}},
        "stream": {"type": "boolean"}, "n": {"type": "integer", "minimum": 1, "maximum": openai_chat.MAX_N},
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
                                                             "properties": {"role": {"enum": list(anthropic_messages.ROLES)},
                                                                            "content": TEXT_OR_PARTS}}},
        "system": TEXT_OR_PARTS, "stream": {"type": "boolean"},
    },
}
BEDROCK_ERROR = {"type": "object", "required": ["message"], "properties": {"message": {"type": "string", "minLength": 1}}}
BEDROCK_TEXT_BLOCKS = {"type": "array", "items": {"type": "object", "properties": {"text": {"type": "string"}}}}
CONVERSE_REQUEST = {
    "type": "object", "required": ["messages"], "additionalProperties": True,
    "properties": {
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role", "content"],
                                                             "properties": {"role": {"enum": ["user", "assistant"]},
                                                                            "content": BEDROCK_TEXT_BLOCKS}}},
        "system": BEDROCK_TEXT_BLOCKS,
        "inferenceConfig": {"type": "object", "properties": {"maxTokens": {"type": "integer", "minimum": 1}}},
    },
}
CONVERSE_RESPONSE = {"type": "object", "required": ["output", "stopReason", "usage", "metrics"], "properties": {
    "output": {"type": "object", "required": ["message"]}, "stopReason": {"type": "string"},
    "usage": {"type": "object", "required": ["inputTokens", "outputTokens", "totalTokens"]},
    "metrics": {"type": "object", "required": ["latencyMs"]}}}
MESSAGE_RESPONSE = {"type": "object", "required": ["id", "type", "role", "model", "content", "usage"], "properties": {
    "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
    "content": {"type": "array"}, "usage": {"type": "object"}}}


GEMINI_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "status"], "properties": {
        "code": {"type": "integer"}, "message": {"type": "string", "minLength": 1}, "status": {"type": "string"},
        "details": {"type": "array"}}}},
}
GEMINI_CONTENT = {"type": "object", "properties": {
    "role": {"enum": list(gemini_generate.ROLES)},
    "parts": {"type": "array", "items": {"type": "object", "properties": {"text": {"type": "string"}}}}}}
GENERATE_REQUEST = {
    "type": "object", "required": ["contents"], "additionalProperties": True,
    "properties": {
        "contents": {"type": "array", "minItems": 1, "items": GEMINI_CONTENT},
        "systemInstruction": GEMINI_CONTENT,
        "tools": {"type": "array", "items": {"type": "object", "properties": {"functionDeclarations": {
            "type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1}, "description": {"type": "string"}}}}}}},
        "toolConfig": {"type": "object", "properties": {"functionCallingConfig": {"type": "object", "properties": {
            "mode": {"enum": ["AUTO", "ANY", "NONE", "VALIDATED"]},
            "allowedFunctionNames": {"type": "array", "items": {"type": "string"}}}}}},
        "generationConfig": {"type": "object", "properties": {
            "candidateCount": {"type": "integer", "minimum": 1, "maximum": gemini_generate.MAX_CANDIDATES},
            "maxOutputTokens": {"type": "integer", "minimum": 1},
            "responseMimeType": {"enum": ["text/plain", "application/json"]}}},
    },
}
GENERATE_RESPONSE = {"type": "object", "required": ["candidates", "usageMetadata", "modelVersion", "responseId"],
                     "properties": {"candidates": {"type": "array"}, "usageMetadata": {"type": "object"}}}
GOOGLE_KEY = {"name": "key", "in": "query", "required": False, "schema": {"type": "string"},
              "description": "The API key, as Gemini clients may send it (or in `x-goog-api-key`); never logged."}


def _gemini_paths(prefix: str, model_path: str) -> dict[str, Any]:
    """The Gemini methods under `prefix` + `model_path` (`models/{model}`, or Vertex AI's resource path)."""
    def method(summary: str, body: dict, answer: dict, stream: bool = False, alt: bool = False) -> dict:
        operation = _post(summary, body, answer, GEMINI_ERROR, stream=stream)
        operation["post"]["parameters"] = [
            *operation["post"]["parameters"], GOOGLE_KEY,
            *({"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for name in re.findall(r"{(\w+)}", model_path)),
            *([{"name": "alt", "in": "query", "required": False, "schema": {"enum": ["sse"]},
                "description": "`sse`: a stream of SSE `data:` records; without it, one JSON array."}] if alt else []),
        ]
        return operation

    base = prefix + model_path
    paths = {
        base + ":generateContent": method("Gemini generateContent", GENERATE_REQUEST, GENERATE_RESPONSE),
        base + ":streamGenerateContent": method("Gemini streamGenerateContent", GENERATE_REQUEST, GENERATE_RESPONSE,
                                                stream=True, alt=True),
        base + ":countTokens": method("Gemini countTokens", {**GENERATE_REQUEST, "required": []}, {
            "type": "object", "required": ["totalTokens"], "properties": {"totalTokens": {"type": "integer"}}}),
        base + ":embedContent": method("Gemini embedContent", {
            "type": "object", "required": ["content"], "additionalProperties": True,
            "properties": {"content": GEMINI_CONTENT, "outputDimensionality": {
                "type": "integer", "minimum": 1, "maximum": openai_embeddings.MAX_DIMENSIONS}}},
            {"type": "object", "required": ["embedding"]}),
    }
    if "projects" in model_path:
        paths[base + ":predict"] = method("Vertex AI text-embedding models' predict", {
            "type": "object", "required": ["instances"], "additionalProperties": True,
            "properties": {"instances": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["content"], "properties": {"content": {"type": "string"}}}}}},
            {"type": "object", "required": ["predictions"]})
    else:
        paths[base + ":batchEmbedContents"] = method("Gemini batchEmbedContents", {
            "type": "object", "required": ["requests"], "additionalProperties": True,
            "properties": {"requests": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["content"], "properties": {"content": GEMINI_CONTENT}}}}},
            {"type": "object", "required": ["embeddings"]})
    return paths


def gemini_spec_paths() -> dict[str, Any]:
    """Gemini under /v1beta (and /v1), Vertex AI under /v1beta1 (and /v1), and Gemini's model list."""
    vertex = "projects/{project}/locations/{location}/publishers/google/models/{model}"
    model_list = {"get": {"summary": "Gemini's model list.", "parameters": [
        GOOGLE_KEY, {"name": "pageSize", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "pageToken", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The list.", "content": {"application/json": {
            "schema": {"type": "object", "required": ["models"]}}}},
            "400": {"description": "A bad pageSize.", "content": {"application/json": {"schema": GEMINI_ERROR}}}}}}
    one_model = {"get": {"summary": "One model, or 404.", "parameters": [
        {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The model.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["name"]}}}},
            "404": {"description": "Not one of MOCKLLM_MODELS.", "content": {"application/json": {"schema": GEMINI_ERROR}}}}}}
    on_v1 = {path: operation for model_path in ("models/{model}", vertex)  # the same methods under /v1
             for path, operation in _gemini_paths("/v1/", model_path).items() if path.endswith(":generateContent")}
    publisher = {"name": "publisher", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    vertex_list = {"get": {**model_list["get"], "summary": "Vertex AI's publisher model list.",
                           "parameters": [publisher], "responses": {"200": {"description": "The list.", "content": {
                               "application/json": {"schema": {"type": "object", "required": ["publisherModels"]}}}}}}}
    vertex_one = {"get": {**one_model["get"], "parameters": [publisher, *one_model["get"]["parameters"]]}}
    return {**_gemini_paths("/v1beta/", "models/{model}"), **_gemini_paths("/v1beta1/", vertex), **on_v1,
            "/v1beta/models": model_list, "/v1beta/models/{model_id}": one_model,
            "/v1beta1/publishers/{publisher}/models": vertex_list,
            "/v1beta1/publishers/{publisher}/models/{model_id}": vertex_one}


def azure_paths(openai_paths: dict[str, Any]) -> dict[str, Any]:
    """Azure OpenAI's paths: each OpenAI operation by deployment (the model optional in the body, `api-version`
    required) and under /openai/v1/, in Azure's error shape."""
    deployment = {"name": "deployment", "in": "path", "required": True,
                  "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9._-]+$"}}
    version = {"name": "api-version", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1},
               "description": "Any version; without it, a 404 \"Resource not found\", as Azure answers."}

    def azure(operations: dict[str, Any], *parameters: dict, model_optional: bool = False) -> dict[str, Any]:
        copied = {}
        for method, operation in operations.items():
            operation = {**operation, "parameters": [*parameters, *operation.get("parameters", [])],
                         "responses": {status: {**answer, "content": {"application/json": {"schema": AZURE_ERROR}}}
                                       if status[0] in "45" else answer for status, answer in operation["responses"].items()}}
            if model_optional:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                body = {**schema, "required": [name for name in schema["required"] if name != "model"]}
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            copied[method] = operation
        return copied

    paths: dict[str, Any] = {}
    for name in ("chat/completions", "completions", "embeddings", "responses"):
        paths[f"/openai/deployments/{{deployment}}/{name}"] = azure(openai_paths[f"/v1/{name}"], deployment, version,
                                                                   model_optional=True)
    paths["/openai/responses"] = azure(openai_paths["/v1/responses"], version)
    paths["/openai/models"] = azure(openai_paths["/v1/models"], version)
    for name in ("chat/completions", "completions", "embeddings", "responses", "models", "models/{model_id}"):
        paths[f"/openai/v1/{name}"] = azure(openai_paths[f"/v1/{name}"])
    return paths
def _bedrock(summary: str, body: dict, answer: dict) -> dict:
    """A Bedrock Runtime operation: the model id in the path (URL-encoded: ARNs hold ':' and '/'), the
    error's name in x-amzn-ErrorType. Its streaming twin answers application/vnd.amazon.eventstream."""
    operation = _post(summary, body, answer, BEDROCK_ERROR, stream=False)
    operation["post"]["parameters"] = [
        {"name": "modelId", "in": "path", "required": True, "schema": {"type": "string"}},
        *operation["post"]["parameters"]]
    return operation
OLLAMA_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
                "properties": {"error": {"type": "string", "minLength": 1}}}
OLLAMA_OPTIONS = {"type": "object", "additionalProperties": True, "properties": {
    "num_predict": {"type": "integer"}, "temperature": {"type": "number"}, "seed": {"type": "integer"},
    "stop": {"type": "array", "items": {"type": "string"}}}}
OLLAMA_FORMAT = {"oneOf": [{"enum": ["", "json"]}, {"type": "object"}]}
OLLAMA_THINK = {"oneOf": [{"type": "boolean"}, {"enum": ["high", "medium", "low"]}]}
OLLAMA_DONE = {"done": {"const": True}, "done_reason": {"type": "string"}, "total_duration": {"type": "integer"},
               "eval_count": {"type": "integer"}, "prompt_eval_count": {"type": "integer"}}
OLLAMA_NDJSON = "application/x-ndjson"


def _ollama_paths() -> dict[str, Any]:
    """Ollama's /api paths: JSON bodies, NDJSON streams (the default), errors as {"error": "..."}."""
    model_list = {"type": "object", "required": ["models"], "properties": {"models": {"type": "array"}}}
    return {
        "/api/chat": _post("Ollama chat", {
            "type": "object", "required": ["model"], "additionalProperties": True,
            "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}, "format": OLLAMA_FORMAT,
                           "think": OLLAMA_THINK, "options": OLLAMA_OPTIONS,
                           "messages": {"type": "array", "items": {
                               "type": "object", "required": ["role"], "properties": {
                                   "role": {"enum": list(ollama_chat.ROLES)}, "content": {"type": "string"},
                                   "tool_name": {"type": "string"}}}},
                           "tools": {"type": "array", "items": {"type": "object", "required": ["function"],
                                                                "properties": {"function": {
                                                                    "type": "object", "required": ["name"],
                                                                    "properties": {"name": {"type": "string"}}}}}}}},
            {"type": "object", "required": ["model", "created_at", "message", "done"],
             "properties": {"message": {"type": "object", "required": ["role", "content"]}, **OLLAMA_DONE}},
            OLLAMA_ERROR, stream_type=OLLAMA_NDJSON),
        "/api/generate": _post("Ollama completion", {
            "type": "object", "required": ["model"], "additionalProperties": True,
            "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}, "system": {"type": "string"},
                           "stream": {"type": "boolean"}, "format": OLLAMA_FORMAT, "think": OLLAMA_THINK,
                           "options": OLLAMA_OPTIONS}},
            {"type": "object", "required": ["model", "created_at", "response", "done"],
             "properties": {"response": {"type": "string"}, **OLLAMA_DONE}},
            OLLAMA_ERROR, stream_type=OLLAMA_NDJSON),
        "/api/embed": _post("Ollama embeddings", {
            "type": "object", "required": ["model", "input"], "additionalProperties": True,
            "properties": {"model": {"type": "string"},
                           "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                           "truncate": {"type": "boolean"},
                           "dimensions": {"type": "integer", "minimum": 1, "maximum": openai_embeddings.MAX_DIMENSIONS}}},
            {"type": "object", "required": ["model", "embeddings"]}, OLLAMA_ERROR, stream=False),
        "/api/embeddings": _post("Ollama embeddings, the older endpoint", {
            "type": "object", "required": ["model"], "additionalProperties": True,
            "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}}},
            {"type": "object", "required": ["embedding"]}, OLLAMA_ERROR, stream=False),
        "/api/show": _post("Ollama: one model's details, or 404", {
            "type": "object", "required": ["model"], "additionalProperties": True,
            "properties": {"model": {"type": "string"}}},
            {"type": "object", "required": ["details", "model_info"]}, OLLAMA_ERROR, stream=False),
        "/api/tags": {"get": {"summary": "Ollama: the configured models, as local models.", "responses": {
            "200": {"description": "The list.", "content": {"application/json": {"schema": model_list}}}}}},
        "/api/ps": {"get": {"summary": "Ollama: the configured models, as loaded models.", "responses": {
            "200": {"description": "The list.", "content": {"application/json": {"schema": model_list}}}}}},
        "/api/version": {"get": {"summary": "Ollama: the version reported.", "responses": {
            "200": {"description": "The version.", "content": {"application/json": {"schema": {
                "type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}}}}}}},
    }


def build_spec(*, mock_headers: bool = True) -> dict[str, Any]:
    """The description; without `mock_headers`, the X-Mock-* headers are left out (for fuzzing: they
    ask for errors, stalls and broken streams on purpose)."""
    count_request = {**MESSAGES_REQUEST, "required": ["model", "messages"]}
    models_get = {"get": {"summary": "The configured models: OpenAI shape, or Anthropic's with `anthropic-version`.",
                          "responses": {"200": {"description": "The list.", "content": {"application/json": {
                              "schema": {"type": "object", "required": ["data"]}}}}}}}
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "mockllm", "version": "1",
                 "description": "Canned, deterministic answers in the OpenAI, Anthropic, Azure OpenAI, Gemini (and "
                                "Vertex AI), Bedrock and Ollama wire formats."},
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
                               "dimensions": {"type": "integer", "minimum": 1, "maximum": openai_embeddings.MAX_DIMENSIONS}}},
                {"type": "object", "required": ["object", "data", "model", "usage"]}, OPENAI_ERROR, stream=False),
            "/v1/messages": _post("Anthropic messages", MESSAGES_REQUEST, MESSAGE_RESPONSE, ANTHROPIC_ERROR),
            "/v1/messages/count_tokens": _post("Anthropic token counting", count_request, {
                "type": "object", "required": ["input_tokens"], "properties": {"input_tokens": {"type": "integer"}}},
                ANTHROPIC_ERROR, stream=False),
            **gemini_spec_paths(),
            "/model/{modelId}/converse": _bedrock("Bedrock Runtime Converse (and /converse-stream)", CONVERSE_REQUEST,
                                                  CONVERSE_RESPONSE),
            "/model/{modelId}/invoke": _bedrock(
                "Bedrock Runtime InvokeModel with an Anthropic body (and /invoke-with-response-stream)",
                {**MESSAGES_REQUEST, "required": ["anthropic_version", "max_tokens", "messages"],
                 "properties": {**{k: v for k, v in MESSAGES_REQUEST["properties"].items() if k not in ("model", "stream")},
                                "anthropic_version": {"const": "bedrock-2023-05-31"}}},
                MESSAGE_RESPONSE),
            "/v1/models": models_get,
            "/v1/models/{model_id}": {"get": {
                "summary": "One model, or 404.",
                "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The model.", "content": {"application/json": {"schema": {"type": "object"}}}},
                              "404": {"description": "Not one of MOCKLLM_MODELS.",
                                      "content": {"application/json": {"schema": OPENAI_ERROR}}}}}},
            **_ollama_paths(),
        },
    }
    spec["paths"].update(azure_paths(spec["paths"]))
    return spec if mock_headers else _without_mock_headers(spec)


def _without_mock_headers(spec: dict[str, Any]) -> dict[str, Any]:
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation["parameters"] = [p for p in operation.get("parameters", []) if p not in MOCK_HEADERS]
    return spec


def openapi_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dumps(build_spec()), content_type="application/json")
