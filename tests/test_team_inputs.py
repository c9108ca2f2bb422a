"""What the database cannot hold, and names that would mean one run here and another there: refused
with a 400 that names the parameter, in the control API's shape or the provider's, never a 500."""
from __future__ import annotations

import socket

import pytest

from .support import CONTROL_TOKEN, chat, control, make_server, scratch_database


@pytest.fixture(scope="module")
def pg(tmp_path_factory, postgres_url):
    with scratch_database(postgres_url) as database_url:
        server = make_server(tmp_path_factory.mktemp("inputs"), database_url=database_url,
                             MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
        server.start(daphne=True)
        yield server
        server.stop()


def refused(response, param: str) -> str:
    """The 400's message, once checked to be the OpenAI error shape naming `param`."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    return error["message"]


@pytest.mark.parametrize("method, path, param, value", [
    ("GET", "journal", "test_id", "a\x00b"),
    ("GET", "journal", "model", "\x00"),
    ("GET", "journal", "request_id", "x\x00"),
    ("GET", "journal", "scenario", "s\x00"),
    ("GET", "journal", "api_key_name", "\x00"),
    ("DELETE", "journal", "request_id", "x\x00"),
    ("GET", "responses", "scenario", "\x00"),
    ("DELETE", "responses", "test_id", "a\x00b"),
    ("GET", "journal", "since", "2026-13-45T00:00:00"),
])
def test_a_control_filter_the_database_cannot_hold_is_a_400_naming_it(pg, method, path, param, value):
    refused(control(pg, method, path, params={param: value}), param)


@pytest.mark.parametrize("entry, param", [
    ({"match": "a\x00b", "response": "x"}, "match"),
    ({"match": {"contains": "a\x00b"}, "response": "x"}, "match.contains"),
    ({"match": "hello", "response": "a\x00b"}, "response"),
    ({"match": "hello", "response": {"tool_calls": [{"name": "f", "arguments": {"city": "\x00"}}]}},
     "response.tool_calls[0].arguments.city"),
    ({"match": "hello", "response": {"tool_calls": [{"name": "f", "arguments": {"\x00": 1}}]}},
     "response.tool_calls[0].arguments"),
    ({"match": "hello", "turns": ["one", "tw\x00"]}, "turns[1]"),
])
def test_a_canned_entry_with_a_nul_is_refused_not_altered(pg, entry, param):
    message = refused(control(pg, "POST", "responses", json={**entry, "test_id": "nul-entries"}), param)
    assert "NUL" in message
    assert control(pg, "GET", "responses", params={"test_id": "nul-entries"}).json()["data"] == []


@pytest.mark.parametrize("name, param", [("test_id", "test_id"), ("scenario", "scenario")])
def test_test_ids_and_scenarios_are_printable_ascii_in_the_control_api(pg, name, param):
    header = {"test_id": "X-Mock-Test-Id", "scenario": "X-Mock-Scenario"}[name]
    for value in ("café", "tab\there", "a\x00b"):
        refused(control(pg, "GET", "responses", params={name: value}), param)
        refused(control(pg, "POST", "responses", json={"match": "hi", "response": "x", name: value,
                                                           "test_id" if name == "scenario" else "scenario": "ok"}),
                param)
    # What a UTF-8 header arrives as (ASGI servers read header bytes as Latin-1): refused too.
    refused(control(pg, "GET", "responses", headers={header: "café".encode()}), header)
    refused(control(pg, "POST", "responses", json={"match": "hi", "response": "x", name: 42}), param)


def raw_request(server, path: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
    request = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (path.encode(), headers, len(body), body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


OPENAI_BODY = b'{"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]}'
ANTHROPIC_BODY = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "what is 2+2?"}]}'


@pytest.mark.parametrize("header", [b"X-Mock-Test-Id", b"X-Mock-Scenario"])
@pytest.mark.parametrize("value", ["caf\u00e9".encode(), b"caf\xe9", b"a\x01b"])
def test_test_ids_and_scenarios_are_printable_ascii_on_v1(pg, header, value):
    import json

    # (A NUL in a header never reaches the application: the HTTP server answers 400 itself.)
    assert raw_request(pg, "/v1/chat/completions", header + b": a\x00b\r\n", OPENAI_BODY)[0] == 400
    status, content = raw_request(pg, "/v1/chat/completions", header + b": " + value + b"\r\n", OPENAI_BODY)
    assert status == 400, content
    error = json.loads(content)["error"]
    assert error["type"] == "invalid_request_error" and header.decode() in error["message"]
    assert "printable ASCII" in error["message"]
    status, content = raw_request(pg, "/v1/messages", header + b": " + value + b"\r\nanthropic-version: 2023-06-01\r\n",
                                  ANTHROPIC_BODY)
    assert status == 400 and json.loads(content)["type"] == "error", content
    assert json.loads(content)["error"]["type"] == "invalid_request_error"


def test_an_ascii_test_id_names_the_same_run_everywhere(pg):
    run = "run 42/ascii:ok"
    added = control(pg, "POST", "responses", json={"match": "what is 2+2?", "response": "four", "test_id": run})
    assert added.status_code == 201, added.text
    answer = chat(pg, "what is 2+2?", headers={"X-Mock-Test-Id": run})
    assert answer.json()["choices"][0]["message"]["content"] == "four"
    assert control(pg, "GET", "journal", params={"test_id": run, "wait": 10}).json()["total"] == 1
    assert control(pg, "DELETE", "responses", headers={"X-Mock-Test-Id": run}).json() == {"deleted": 1}
