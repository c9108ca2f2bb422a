"""Every bad request gets the right status in its provider's error shape, and the connection survives."""
import http.client
import json

import pytest

from responses_app.api import faults
from responses_app.api.errors import GEMINI_METHODS
from responses_app.api.paths import is_api_path

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
OLLAMA = "/api/chat"
GOOD_OPENAI = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
GOOD_ANTHROPIC = {"model": "c", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
VERTEX = "/v1beta1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
GOOD_GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
GOOD_OLLAMA = {"model": "llama3.2", "messages": [{"role": "user", "content": "hello"}], "stream": False}
JSON = {"Content-Type": "application/json"}
HELLO_ANSWER = "Hello! I am a mock LLM. I always give the same answer to the same prompt."  # fixtures/responses.yml


def body(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def with_(base: dict, **changes) -> dict:
    return {**base, **changes}


# (name, method, path, headers, body, status, param or None, words in the message)
CASES = [
    ("malformed json", "POST", OPENAI, JSON, b'{"model": ', 400, None, "not valid JSON"),
    ("invalid utf-8", "POST", OPENAI, JSON, b'{"model": "\xff\xfe"}', 400, None, "not valid JSON"),
    ("json array", "POST", OPENAI, JSON, b"[1, 2]", 400, None, "must be a JSON object"),
    ("empty body", "POST", OPENAI, JSON, b"", 400, None, "body is empty"),
    ("text/plain", "POST", OPENAI, {"Content-Type": "text/plain"}, body(GOOD_OPENAI), 415, None, "application/json"),
    ("no content type", "POST", OPENAI, {}, body(GOOD_OPENAI), 415, None, "application/json"),
    ("missing model", "POST", OPENAI, JSON, body({"messages": GOOD_OPENAI["messages"]}), 400, "model", "required"),
    ("model not a string", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, model=3)), 400, "model", "must be a string"),
    ("missing messages", "POST", OPENAI, JSON, body({"model": "m"}), 400, "messages", "required"),
    ("empty messages", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, messages=[])), 400, "messages", "non-empty"),
    ("bad role", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, messages=[{"role": "robot", "content": "x"}])),
     400, "messages[0].role", "must be one of"),
    ("content a number", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, messages=[{"role": "user", "content": 5}])),
     400, "messages[0].content", "string or an array"),
    ("stream as a string", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, stream="true")), 400, "stream", "boolean"),
    ("n zero", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, n=0)), 400, "n", "between 1 and 128"),
    ("max_tokens negative", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, max_tokens=-5)), 400, "max_tokens", "at least 1"),
    ("max_tokens a string", "POST", OPENAI, JSON, body(with_(GOOD_OPENAI, max_tokens="10")), 400, "max_tokens", "integer"),
    ("wrong method", "GET", OPENAI, {}, None, 405, None, "not allowed"),
    ("unknown route", "POST", "/v1/nothing/here", JSON, body(GOOD_OPENAI), 404, None, "Unknown request URL"),
    ("bare /v1", "GET", "/v1", {}, None, 404, None, "Unknown request URL"),
    ("unknown route under /v1beta (Gemini's shape)", "POST", "/v1beta/nothing", JSON, body(GOOD_OPENAI), 404, None,
     "Unknown request URL"),
    ("unknown route under /openai", "GET", "/openai", {}, None, 404, None, "Unknown request URL"),
    ("azure without api-version", "POST", "/openai/deployments/d/chat/completions", JSON, body(GOOD_OPENAI), 404, None,
     "Resource not found"),
    ("azure missing messages", "POST", "/openai/deployments/d/chat/completions?api-version=1", JSON, body({}), 400,
     "messages", "required"),
    ("azure unknown route", "POST", "/openai/v1/nothing", JSON, body(GOOD_OPENAI), 404, None, "Unknown request URL"),
    ("unknown route under /api", "POST", "/api/nothing/here", JSON, body(GOOD_OPENAI), 404, None, "Unknown request URL"),
    ("mock status", "POST", OPENAI, {**JSON, "X-Mock-Status": "429"}, body(GOOD_OPENAI), 429, None, "X-Mock-Status"),
    ("bad mock status", "POST", OPENAI, {**JSON, "X-Mock-Status": "teapot"}, body(GOOD_OPENAI), 400, None, "X-Mock-Status"),
    ("anthropic malformed json", "POST", ANTHROPIC, JSON, b"{nope", 400, None, "not valid JSON"),
    ("anthropic max_tokens missing", "POST", ANTHROPIC, JSON, body({"model": "c", "messages": GOOD_ANTHROPIC["messages"]}),
     400, "max_tokens", "required"),
    ("anthropic system role in messages", "POST", ANTHROPIC, JSON,
     body(with_(GOOD_ANTHROPIC, messages=[{"role": "system", "content": "x"}])), 400, "messages.0.role", "user"),
    ("anthropic missing content", "POST", ANTHROPIC, JSON,
     body(with_(GOOD_ANTHROPIC, messages=[{"role": "user"}])), 400, "messages.0.content", "required"),
    ("anthropic bad system", "POST", ANTHROPIC, JSON, body(with_(GOOD_ANTHROPIC, system=7)), 400, "system", "string or an array"),
    ("anthropic wrong method", "GET", ANTHROPIC, {"anthropic-version": "2023-06-01"}, None, 405, None, "not allowed"),
    ("anthropic wrong content type", "POST", ANTHROPIC, {"Content-Type": "application/xml"}, b"<x/>", 415, None,
     "application/json"),
    ("anthropic unknown route", "POST", "/v1/messages/nope", JSON, body(GOOD_ANTHROPIC), 404, None, "Unknown request URL"),
    ("anthropic-version picks the shape", "GET", "/v1/unknown", {"anthropic-version": "2023-06-01"}, None, 404, None, ""),
    ("anthropic overloaded", "POST", ANTHROPIC, {**JSON, "X-Mock-Status": "529"}, body(GOOD_ANTHROPIC), 529, None, ""),
    ("gemini malformed json", "POST", GEMINI, JSON, b"{nope", 400, None, "not valid JSON"),
    ("gemini contents missing", "POST", GEMINI, JSON, body({}), 400, "contents", "contents is not specified"),
    ("gemini bad role", "POST", GEMINI, JSON, body({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
     400, "contents[0].role", "valid role"),
    ("gemini text not a string", "POST", GEMINI, JSON, body({"contents": [{"parts": [{"text": 5}]}]}),
     400, "contents[0].parts[0].text", "expected a string"),
    ("gemini bad candidate count", "POST", GEMINI, JSON,
     body({**GOOD_GEMINI, "generationConfig": {"candidateCount": 0}}), 400, "generationConfig.candidateCount", "1 to 8"),
    ("gemini wrong method", "GET", GEMINI, {}, None, 405, None, "not allowed"),
    ("gemini wrong content type", "POST", GEMINI, {"Content-Type": "text/plain"}, body(GOOD_GEMINI), 415, None,
     "application/json"),
    ("gemini unknown route", "POST", "/v1beta/tunedModels/x:generateContent", JSON, body(GOOD_GEMINI), 404, None,
     "Unknown request URL"),
    ("gemini unknown model", "GET", "/v1beta/models/no-such-model", {}, None, 404, None, "does not exist"),
    ("gemini rate limited", "POST", GEMINI, {**JSON, "X-Mock-Status": "429"}, body(GOOD_GEMINI), 429, None, ""),
    ("gemini unavailable", "POST", GEMINI + "?alt=sse", {**JSON, "X-Mock-Status": "503"}, body(GOOD_GEMINI), 503,
     None, ""),
    ("gemini under /v1", "POST", "/v1/models/gemini-2.5-flash:countTokens", JSON, body({"contents": 3}), 400,
     "contents", "expected an array"),
    ("gemini key picks the shape", "GET", "/v1/unknown", {"x-goog-api-key": "k"}, None, 404, None, ""),
    ("vertex bad body", "POST", VERTEX, JSON, body({"contents": []}), 400, "contents", "not specified"),
    ("vertex embeddings", "POST", VERTEX.replace(":generateContent", ":predict"), JSON, body({"instances": []}), 400,
     "instances", "non-empty"),
    ("an OpenAI fine-tuned model id is not a Gemini method", "GET", "/v1/models/ft:gpt-4o-mini:org::abc12", {}, None,
     404, None, "does not exist"),
    ("vertex unknown route", "GET", "/v1beta1/projects/p/locations/l", {}, None, 404, None, "Unknown request URL"),
    ("ollama malformed json", "POST", OLLAMA, JSON, b'{"model": ', 400, None, "not valid JSON"),
    ("ollama missing model", "POST", OLLAMA, JSON, body({"messages": GOOD_OLLAMA["messages"]}), 400, None, "required"),
    ("ollama bad role", "POST", OLLAMA, JSON, body(with_(GOOD_OLLAMA, messages=[{"role": "robot", "content": "x"}])),
     400, None, "must be one of"),
    ("ollama bad format", "POST", OLLAMA, JSON, body(with_(GOOD_OLLAMA, format="yaml")), 400, None, "invalid format"),
    ("ollama option of the wrong type", "POST", OLLAMA, JSON, body(with_(GOOD_OLLAMA, options={"num_predict": "ten"})),
     400, None, 'option "num_predict" must be of type integer'),
    ("ollama wrong method", "GET", OLLAMA, {}, None, 405, None, "not allowed"),
    ("ollama tags by POST", "POST", "/api/tags", JSON, b"{}", 405, None, "not allowed"),
    ("ollama unknown model shown", "POST", "/api/show", JSON, body({"model": "nope"}), 404, None, "not found"),
    ("ollama mock status", "POST", OLLAMA, {**JSON, "X-Mock-Status": "503"}, body(GOOD_OLLAMA), 503, None,
     "X-Mock-Status"),
]
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT",
                 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def is_anthropic(path: str, headers: dict) -> bool:
    return path.startswith("/v1/messages") or "anthropic-version" in headers


def is_gemini(path: str, headers: dict) -> bool:
    return (path.startswith(("/v1beta/", "/v1beta1/")) or path.split("?")[0].rpartition(":")[2] in GEMINI_METHODS
            or "x-goog-api-key" in headers)


def assert_provider_error(path, headers, response, payload, status, param, words):
    assert response.status == status, payload
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("x-request-id", "").startswith("req_")
    data = json.loads(payload)
    if is_gemini(path, headers):
        assert set(data) == {"error"} and {"code", "message", "status"} <= set(data["error"]) <= {
            "code", "message", "status", "details"}
        assert (data["error"]["code"], data["error"]["status"]) == (status, GEMINI_STATUS[status])
        violations = [v for d in data["error"].get("details", []) for v in d["fieldViolations"]]
        assert [v["field"] for v in violations] == ([param] if param else [])
        message = data["error"]["message"]
    elif path.startswith("/api/"):  # Ollama: {"error": "..."}, which the ollama client raises as ResponseError
        assert set(data) == {"error"} and isinstance(data["error"], str)
        message = data["error"]
    elif is_anthropic(path, headers):
        assert data["type"] == "error" and set(data["error"]) == {"type", "message"}
        assert data["request_id"] == response.getheader("request-id")
        expected_type = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
                         415: "invalid_request_error", 413: "request_too_large", 529: "overloaded_error"}[status]
        assert data["error"]["type"] == expected_type
        message = data["error"]["message"]
    elif path.startswith("/openai") and (status != 400 or param is None):  # Azure's own: the status as the code
        assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}
        assert data["error"]["code"] == str(status)
        message = data["error"]["message"]
    else:
        assert set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}
        assert data["error"]["param"] == param
        message = data["error"]["message"]
    assert isinstance(message, str) and message and words in message


@pytest.mark.parametrize(("name", "method", "path", "headers", "payload", "status", "param", "words"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_request_gets_provider_shaped_error(server, name, method, path, headers, payload, status, param, words):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    assert_provider_error(path, headers, response, response.read(), status, param, words)
    connection.close()


def test_the_connection_survives_every_error(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.connect()
    sock = connection.sock
    for _, method, path, headers, payload, status, *_ in CASES:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == status
        assert connection.sock is sock, f"connection was closed after {method} {path} -> {status}"
    connection.request("POST", OPENAI, body=body(GOOD_OPENAI), headers=JSON)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["choices"][0]["message"]["content"] == HELLO_ANSWER
    assert connection.sock is sock


def test_a_body_over_the_limit_is_413_in_each_shape(new_server):
    srv = new_server(MOCKLLM_MAX_BODY_BYTES="2048")
    big_openai = body(with_(GOOD_OPENAI, messages=[{"role": "user", "content": "x" * 5000}]))
    big_anthropic = body(with_(GOOD_ANTHROPIC, messages=[{"role": "user", "content": "x" * 5000}]))
    big_gemini = body({"contents": [{"parts": [{"text": "x" * 5000}]}]})
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    for path, payload in ((OPENAI, big_openai), (ANTHROPIC, big_anthropic), (GEMINI, big_gemini)):
        connection.request("POST", path, body=payload, headers=JSON)
        response = connection.getresponse()
        assert_provider_error(path, JSON, response, response.read(), 413, None, "MOCKLLM_MAX_BODY_BYTES")
    # Without a Content-Length (chunked), the limit still holds.
    connection.request("POST", OPENAI, body=iter([big_openai[:3000], big_openai[3000:]]), headers=JSON,
                       encode_chunked=True)
    response = connection.getresponse()
    assert_provider_error(OPENAI, JSON, response, response.read(), 413, None, "MOCKLLM_MAX_BODY_BYTES")
    connection.request("POST", OPENAI, body=body(GOOD_OPENAI), headers=JSON)
    assert connection.getresponse().status == 200


def test_an_unexpected_error_is_a_logged_500_in_the_provider_shape(client, monkeypatch, caplog, db):
    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr(faults, "plan_for", broken)
    with caplog.at_level("ERROR", logger="mockllm.errors"):
        response = client.post(OPENAI, GOOD_OPENAI, content_type="application/json")
        anthropic_response = client.post(ANTHROPIC, GOOD_ANTHROPIC, content_type="application/json")
        gemini_response = client.post(GEMINI, GOOD_GEMINI, content_type="application/json")
    assert gemini_response.status_code == 500
    assert gemini_response.json() == {"error": {"code": 500, "status": "INTERNAL",
                                                "message": "The server had an error while processing your request."}}
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "index exploded" not in response.content.decode()  # no traceback leaks to the client
    assert anthropic_response.status_code == 500
    assert anthropic_response.json()["error"]["type"] == "api_error"
    record = next(r for r in caplog.records if r.name == "mockllm.errors")
    assert record.exc_info and "index exploded" in str(record.exc_info[1])


def test_a_chunked_body_without_content_length_is_read(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    payload = body({"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]})
    connection.request("POST", OPENAI, body=iter([payload[:10], payload[10:]]), headers=JSON, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["choices"][0]["message"]["content"] == "2+2 equals 9."


def test_api_paths_are_whole_prefixes():
    assert all(is_api_path(p) for p in ("/v1", "/v1/", "/v1/chat/completions", "/v1beta/models", "/openai/v1/x",
                                          "/model/m/converse", "/api/chat", "/v1beta1/projects/p"))
    assert not any(is_api_path(p) for p in ("/", "", "/v1x", "/apiary", "/admin/", "/control/runs", "/models"))
