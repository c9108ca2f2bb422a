"""The control API for test suites (/control/): token, canned responses, journal queries, OpenAPI."""
from __future__ import annotations

import pytest

from .support import CONTROL_TOKEN, DEFAULT_ANSWER, ROOT, ask, control


@pytest.fixture(scope="module")
def srv(control_server):
    return control_server


@pytest.mark.parametrize("token, status, code", [(None, 401, "missing_token"), ("wrong-token-0123456789", 401,
                                                                                 "invalid_token")])
def test_every_endpoint_needs_the_token(srv, token, status, code):
    for method, path in (("GET", "journal"), ("DELETE", "journal?all=true"), ("GET", "responses"),
                         ("POST", "responses"), ("DELETE", "responses?test_id=x"), ("GET", "responses/1"),
                         ("DELETE", "responses/1")):
        response = control(srv, method, path, token=token, json={"match": "x", "response": "y"})
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["error"]["code"] == code
    assert control(srv, "GET", "responses", token=None, headers={"X-Mock-Control-Token": CONTROL_TOKEN}).status_code == 200


def test_the_control_api_is_off_without_a_token_setting(server):
    response = control(server, "GET", "journal")
    assert response.status_code == 403
    assert "MOCKLLM_CONTROL_TOKEN" in response.json()["error"]["message"]


def test_add_list_get_and_delete_canned_responses(srv):
    added = control(srv, "POST", "responses", json={"match": {"contains": "largest planet"}, "response": "Jupiter."},
                    params={"default": "true"})  # the default set: said explicitly
    assert added.status_code == 201, added.text
    row = added.json()
    assert row["entry"] == {"match": {"contains": "largest planet"}, "response": {"text": "Jupiter."}}
    assert ask(srv, "Which is the largest planet?") == "Jupiter."  # served from the next request

    listed = control(srv, "GET", "responses", params={"limit": 1000}).json()
    assert row["id"] in [item["id"] for item in listed["data"]]
    assert control(srv, "GET", f"responses/{row['id']}").json()["answer"] == "Jupiter."
    assert control(srv, "DELETE", f"responses/{row['id']}", params={"default": "true"}).status_code == 204
    assert control(srv, "GET", f"responses/{row['id']}").status_code == 404
    assert ask(srv, "Which is the largest planet?") == DEFAULT_ANSWER


def test_bad_entries_are_refused_with_a_message(srv):
    missing = control(srv, "POST", "responses", json={"response": "no prompt"})
    assert missing.status_code == 400 and "`match` is required" in missing.json()["error"]["message"]
    regex = control(srv, "POST", "responses", json={"match": {"regex": "(unclosed"}, "response": "x"})
    assert regex.status_code == 400 and "regular expression" in regex.json()["error"]["message"]
    not_json = control(srv, "POST", "responses", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    first = control(srv, "POST", "responses", json={"match": "twice", "response": "1", "test_id": "dup"})
    again = control(srv, "POST", "responses", json={"match": "twice", "response": "2", "test_id": "dup"})
    assert first.status_code == 201 and again.status_code == 409
    assert control(srv, "DELETE", "responses", params={"test_id": "dup"}).json() == {"deleted": 1}
    assert control(srv, "DELETE", "responses").status_code == 400  # says whose


def test_a_test_runs_entries_are_its_own_and_go_with_it(srv):
    added = control(srv, "POST", "responses", json={"match": "what is 2+2?", "response": "four, for run 1"},
                    headers={"X-Mock-Test-Id": "run-1"})
    assert added.json()["test_id"] == "run-1"
    assert ask(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "run-1"}) == "four, for run 1"
    assert ask(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "run-2"}) == "2+2 equals 9."
    assert ask(srv, "what is 2+2?") == "2+2 equals 9."
    assert [r["id"] for r in control(srv, "GET", "responses", params={"test_id": "run-1"}).json()["data"]] == \
        [added.json()["id"]]
    assert control(srv, "DELETE", "responses", headers={"X-Mock-Test-Id": "run-1"}).json() == {"deleted": 1}
    assert ask(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "run-1"}) == "2+2 equals 9."


def test_journal_queries_filter_wait_and_clear(srv):
    run = {"X-Mock-Test-Id": "journal-run"}
    ask(srv, "what is 2+2?", headers=run)
    ask(srv, "never canned", headers=run)
    ask(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "other-run"})
    found = control(srv, "GET", "journal", params={"test_id": "journal-run", "wait": 10, "min_count": 2}).json()
    assert found["total"] == 2 and [e["prompt"] for e in found["data"]] == ["never canned", "what is 2+2?"]
    assert {e["test_id"] for e in found["data"]} == {"journal-run"}
    unmatched = control(srv, "GET", "journal", params={"test_id": "journal-run", "matched": "false"}).json()
    assert [e["prompt"] for e in unmatched["data"]] == ["never canned"]
    one = control(srv, "GET", "journal", params={"test_id": "journal-run", "limit": 1}).json()
    assert len(one["data"]) == 1 and one["has_more"] is True
    assert control(srv, "GET", "journal", params={"status": "abc"}).status_code == 400
    assert control(srv, "GET", "journal", params={"since": "yesterday"}).status_code == 400
    assert control(srv, "DELETE", "journal").status_code == 400  # says which
    assert control(srv, "DELETE", "journal", params={"test_id": "journal-run"}).json() == {"deleted": 2}
    assert control(srv, "GET", "journal", params={"test_id": "journal-run"}).json()["total"] == 0
    assert control(srv, "GET", "journal", params={"test_id": "other-run"}).json()["total"] == 1


def test_unknown_urls_get_json_and_the_openapi_description_lists_every_endpoint(srv):
    missing = control(srv, "GET", "nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    spec = control(srv, "GET", "openapi.json", token=None).json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/control/journal", "/control/responses", "/control/responses/{id}",
                                  "/control/record"}
    assert set(spec["paths"]["/control/journal"]) == {"get", "delete"}
    assert set(spec["paths"]["/control/responses"]) == {"get", "post", "delete"}


def test_the_readme_test_run_example_works_as_written(srv):
    import json
    import os
    import re
    import subprocess

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"export TOKEN=[^\n]*\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in re.split(r"(?<!\\)\n", block.replace("localhost:8000", f"127.0.0.1:{srv.port}"))
                if line.strip()]
    assert len(commands) == 4
    outputs = [json.loads(subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                                         env={**os.environ, "TOKEN": CONTROL_TOKEN}).stdout) for command in commands]
    added, answer, journal, deleted = outputs
    assert added["test_id"] == "run-42" and added["answer"] == "For how many people?"
    assert answer["choices"][0]["message"]["content"] == "For how many people?"
    assert journal["total"] == 1 and journal["data"][0]["test_id"] == "run-42"
    assert deleted == {"deleted": 1}
