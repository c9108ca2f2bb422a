"""A test run reaches its own data only: a request scoped to a run (X-Mock-Test-Id or ?test_id=) reads and
changes that run's canned responses and journal only; changing a scenario's or the default set's entries
needs that scope said explicitly; a journal DELETE that does not really narrow deletes nothing."""
from __future__ import annotations

import uuid

import pytest

from .support import CONTROL_TOKEN, chat, control, make_server, scratch_database


@pytest.fixture(scope="module")
def pg(tmp_path_factory, postgres_url):
    with scratch_database(postgres_url) as database_url:
        server = make_server(tmp_path_factory.mktemp("isolation"), database_url=database_url,
                             MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
        server.start(daphne=True)
        yield server
        server.stop()


def add(server, entry: dict, **kwargs) -> int:
    added = control(server, "POST", "responses", json=entry, **kwargs)
    assert added.status_code == 201, added.text
    return added.json()["id"]


def run_id() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


def test_a_run_reads_and_deletes_its_own_entries_only(pg):
    a, b = run_id(), run_id()
    own = add(pg, {"match": "mine", "response": "a's"}, headers={"X-Mock-Test-Id": a})
    theirs = add(pg, {"match": "mine", "response": "b's"}, headers={"X-Mock-Test-Id": b})
    shared = add(pg, {"match": f"shared {a}", "response": "everyone's"}, params={"default": "true"})
    scenario = add(pg, {"match": f"scenario {a}", "response": "team's", "scenario": "team"})
    as_a = {"X-Mock-Test-Id": a}
    for other in (theirs, shared, scenario):
        assert control(pg, "GET", f"responses/{other}", headers=as_a).status_code == 404
        assert control(pg, "GET", f"responses/{other}", params={"test_id": a}).status_code == 404
        assert control(pg, "DELETE", f"responses/{other}", headers=as_a).status_code == 404
    assert control(pg, "GET", f"responses/{own}", headers=as_a).json()["answer"] == "a's"
    assert control(pg, "DELETE", f"responses/{own}", headers=as_a).status_code == 204
    # Everything else is still there and still served.
    for other in (theirs, shared, scenario):
        assert control(pg, "GET", f"responses/{other}").status_code == 200
    assert chat(pg, "mine", headers={"X-Mock-Test-Id": b}).json()["choices"][0]["message"]["content"] == "b's"
    # A query naming another run than the header is refused, not obeyed.
    conflict = control(pg, "GET", "responses", headers=as_a, params={"test_id": b})
    assert conflict.status_code == 400 and conflict.json()["error"]["param"] == "test_id"
    clash = control(pg, "POST", "responses", headers=as_a, json={"match": "x", "response": "y", "test_id": b})
    assert clash.status_code == 400 and clash.json()["error"]["param"] == "test_id"


def test_changing_shared_entries_needs_their_scope_said(pg):
    tag = uuid.uuid4().hex[:8]
    unsaid = control(pg, "POST", "responses", json={"match": f"no scope {tag}", "response": "x"})
    assert unsaid.status_code == 400 and "default=true" in unsaid.json()["error"]["message"]
    header_only = control(pg, "POST", "responses", json={"match": f"header {tag}", "response": "x"},
                          headers={"X-Mock-Scenario": "team"})
    assert header_only.status_code == 400 and "scenario" in header_only.json()["error"]["message"]

    shared = add(pg, {"match": f"shared {tag}", "response": "x"}, params={"default": "true"})
    deleted = control(pg, "DELETE", f"responses/{shared}")
    assert deleted.status_code == 400 and "default=true" in deleted.json()["error"]["message"]
    assert control(pg, "DELETE", f"responses/{shared}", params={"scenario": "team"}).status_code == 404
    assert control(pg, "DELETE", f"responses/{shared}", params={"default": "true"}).status_code == 204

    team = add(pg, {"match": f"team {tag}", "response": "x"}, params={"scenario": "team"})
    assert control(pg, "DELETE", f"responses/{team}", params={"default": "true"}).status_code == 404
    assert control(pg, "DELETE", f"responses/{team}", headers={"X-Mock-Scenario": "team"}).status_code == 400
    assert control(pg, "DELETE", f"responses/{team}", params={"scenario": "team"}).status_code == 204


def test_a_scenario_delete_leaves_runs_entries_in_that_scenario_alone(pg):
    run, scenario = run_id(), f"team-{uuid.uuid4().hex[:6]}"
    add(pg, {"match": "hello", "response": "the team's"}, params={"scenario": scenario})
    runs = add(pg, {"match": "hello", "response": "the run's", "scenario": scenario}, headers={"X-Mock-Test-Id": run})
    assert control(pg, "DELETE", "responses", params={"scenario": scenario}).json() == {"deleted": 1}
    assert control(pg, "GET", f"responses/{runs}", headers={"X-Mock-Test-Id": run}).status_code == 200
    assert control(pg, "DELETE", "responses", headers={"X-Mock-Test-Id": run}).json() == {"deleted": 1}


def test_a_journal_delete_that_does_not_narrow_deletes_nothing(pg):
    a, b = run_id(), run_id()
    for run in (a, b):
        assert chat(pg, "what is 2+2?", headers={"X-Mock-Test-Id": run}).status_code == 200
        assert control(pg, "GET", "journal", params={"test_id": run, "wait": 10}).json()["total"] == 1
    for loose in ({"after_id": "0"}, {"model": "m"}, {"status": "200"}, {"matched": "true"}, {"provider": "openai"},
                  {"since": "2000-01-01T00:00:00Z"}, {"endpoint": "chat"}):
        refusal = control(pg, "DELETE", "journal", params=loose)
        assert refusal.status_code == 400, (loose, refusal.text)
        message = refusal.json()["error"]["message"]
        assert "test_id" in message and "all=true" in message
    for run in (a, b):
        assert control(pg, "GET", "journal", params={"test_id": run}).json()["total"] == 1
    # A closed time window narrows; so does a run.
    window = {"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}
    assert control(pg, "DELETE", "journal", params=window).json() == {"deleted": 0}
    assert control(pg, "DELETE", "journal", headers={"X-Mock-Test-Id": a}, params={"after_id": "0"}).json() == \
        {"deleted": 1}
    assert control(pg, "GET", "journal", params={"test_id": b}).json()["total"] == 1
    # And a journal query naming another run than the header is refused.
    conflict = control(pg, "GET", "journal", headers={"X-Mock-Test-Id": a}, params={"test_id": b})
    assert conflict.status_code == 400 and conflict.json()["error"]["param"] == "test_id"
