"""One run's heavy use does not slow the others: open journal long-polls hold no thread or database
connection while they wait, and many entries go in as one change."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from .support import CONTROL_TOKEN, chat, control, make_server, scratch_database

AUTH = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


@pytest.fixture(scope="module")
def pg(tmp_path_factory, postgres_url):
    """A daphne process on PostgreSQL, with the default pool of 8 connections."""
    with scratch_database(postgres_url) as database_url:
        server = make_server(tmp_path_factory.mktemp("load"), database_url=database_url,
                             MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
        server.start(daphne=True)
        yield server
        server.stop()


def test_open_journal_long_polls_do_not_hold_up_another_runs_requests(pg):
    """12 long-polls (more than the 8 pooled connections) wait on one process; another run's control POST,
    control GET and API request are answered while they are all still open."""
    polls_done: list[float] = []

    def long_poll(i: int) -> None:
        found = httpx.get(f"{pg.url}/control/journal", headers=AUTH, timeout=30,
                          params={"test_id": f"nothing-comes-{i}", "wait": 8, "min_count": 1})
        assert found.status_code == 200 and found.json()["total"] == 0
        polls_done.append(time.monotonic())

    polls = [threading.Thread(target=long_poll, args=(i,)) for i in range(12)]
    for poll in polls:
        poll.start()
    time.sleep(1.5)  # all of them waiting
    run = {"X-Mock-Test-Id": f"busy-neighbour-{uuid.uuid4().hex[:6]}"}
    started = time.monotonic()
    added = control(pg, "POST", "responses", headers=run, json={"match": "hello", "response": "still quick"})
    listed = control(pg, "GET", "responses", headers=run)
    answered = chat(pg, "hello", headers=run)
    took = time.monotonic() - started
    assert added.status_code == 201 and listed.json()["data"][0]["answer"] == "still quick"
    assert answered.json()["choices"][0]["message"]["content"] == "still quick"
    assert not polls_done, "the long-polls ended before the other run was answered"
    assert took < 5, f"the other run waited {took:.1f} s"
    for poll in polls:
        poll.join()
    assert len(polls_done) == 12
    # A long-poll still sees what arrives while it waits.
    waiting = threading.Thread(target=lambda: polls_done.append(control(
        pg, "GET", "journal", headers=run, params={"wait": 10, "min_count": 2}).json()["total"]))
    waiting.start()
    time.sleep(0.5)
    chat(pg, "hello", headers=run)
    waiting.join()
    assert polls_done[-1] == 2


def test_a_list_of_entries_goes_in_as_one_change_and_is_served(pg):
    run = {"X-Mock-Test-Id": f"bulk-{uuid.uuid4().hex[:6]}"}
    entries = [{"match": f"bulk prompt {i}", "response": f"bulk answer {i}"} for i in range(1000)]
    added = control(pg, "POST", "responses", headers=run, json=entries)
    assert added.status_code == 201, added.text
    assert [row["answer"] for row in added.json()] == [f"bulk answer {i}" for i in range(1000)]
    assert chat(pg, "bulk prompt 999", headers=run).json()["choices"][0]["message"]["content"] == "bulk answer 999"
    refused = control(pg, "POST", "responses", headers=run,
                      json=[{"match": "one more", "response": "x"}, {"match": {"regex": "("}, "response": "y"}])
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "[1].match.regex"
    after_the_list = control(pg, "GET", "responses", headers=run, params={"after_id": added.json()[-1]["id"]})
    assert after_the_list.json()["data"] == []  # nothing of the refused list was stored
    assert control(pg, "DELETE", "responses", headers=run).json() == {"deleted": 1000}
