"""Schemathesis against the server's own OpenAPI description: no 5xx, every 4xx in the provider's
shape with a message, and the same connection keeps answering. MOCKLLM_FUZZ_EXAMPLES sets the budget
per operation (default 20: the description has 46 operations across six providers, so the suite's run
stays near a thousand requests); `make fuzz` runs a long campaign (2,000 per operation)."""
from __future__ import annotations

import http.client
import json
import os
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from responses_app.api.errors import GEMINI_METHODS
from responses_app.api.openapi import build_spec

EXAMPLES = int(os.environ.get("MOCKLLM_FUZZ_EXAMPLES", "20"))
schema = schemathesis.openapi.from_dict(build_spec(mock_headers=False))
GOOD = json.dumps({"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]}).encode()


@pytest.fixture(scope="module")
def connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.connect()
    yield conn
    conn.close()


def as_http(case) -> tuple[str, str, dict[str, str], bytes | None]:
    kwargs = case.as_transport_kwargs(base_url="http://x")
    path = kwargs["url"][len("http://x"):]
    if kwargs.get("params"):
        from urllib.parse import urlencode

        path += "?" + urlencode(kwargs["params"], doseq=True)
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    body = None
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif kwargs.get("data") is not None:
        body = kwargs["data"] if isinstance(kwargs["data"], bytes) else str(kwargs["data"]).encode()
    return kwargs["method"], path, headers, body


def is_gemini_path(path: str) -> bool:
    """Where the errors are in Gemini's shape: its prefixes, and its methods (`:generateContent`) under /v1."""
    path = unquote(path.split("?")[0])
    return path.startswith(("/v1beta/", "/v1beta1/", "/v1/projects/")) or path.rpartition(":")[2] in GEMINI_METHODS


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_fuzzed_requests_never_break_the_server(case, connection):
    method, path, headers, body = as_http(case)
    sock = connection.sock
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    assert response.status < 500, f"{method} {path} -> {response.status}: {payload[:300]!r}"
    if response.status >= 400 and path.startswith("/model/"):  # Bedrock: the name in a header, the message in the body
        error = json.loads(payload)
        assert set(error) == {"message"} and isinstance(error["message"], str) and error["message"]
        assert response.getheader("x-amzn-ErrorType", "").endswith("Exception:http://internal.amazon.com/coral/com.amazon.bedrock/")
    elif response.status >= 400 and path.startswith("/api/"):  # Ollama: {"error": "..."}
        error = json.loads(payload)
        assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]
    elif response.status >= 400:
        error = json.loads(payload)
        anthropic_shaped = error.get("type") == "error"
        inner = error["error"]
        assert isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]
        if anthropic_shaped:
            assert set(inner) == {"type", "message"}
        elif is_gemini_path(path):
            assert {"code", "message", "status"} <= set(inner) <= {"code", "message", "status", "details"}
            assert inner["code"] == response.status and inner["status"].isupper()
        elif path.startswith("/openai/"):  # Azure: the service's {code, message}, or the model's OpenAI shape
            assert set(inner) in ({"code", "message"}, {"message", "type", "param", "code"})
        else:
            assert set(inner) == {"message", "type", "param", "code"}
    connection.request("POST", "/v1/chat/completions", body=GOOD, headers={"Content-Type": "application/json"})
    follow = connection.getresponse()
    follow.read()
    assert follow.status == 200 and connection.sock is sock, "the connection did not survive"


def test_the_description_is_served(server):
    import httpx

    served = httpx.get(f"{server.url}/openapi.json").json()
    assert set(served["paths"]) == set(build_spec()["paths"])
    assert served["paths"]["/v1/messages"]["post"]["parameters"][0]["name"] == "X-Mock-Status"
