"""The team-shared mode for real: PostgreSQL, Redis (change announcements) and several server processes:
`uvicorn --workers 2` as the README's shared deployment runs it, and a daphne process beside it.

Two test runs script the same conversation at the same time, each with its own X-Mock-Test-Id,
spreading their requests over the processes: each sees only its own turns and journal entries.
"""
from __future__ import annotations

import threading
import uuid

import pytest

from .support import CONTROL_TOKEN, DEFAULT_ANSWER, ask, chat, control, make_server, scratch_database, wait_for

pytestmark = pytest.mark.slow  # PostgreSQL, Redis and three server processes
POLLING_SECONDS = 30


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, postgres_url, redis_url):
    """uvicorn with two workers and a daphne process on one PostgreSQL database, told of changes by Redis
    only: their polling interval is 30 s, so anything seen sooner came over the channel layer."""
    env = dict(MOCKLLM_REDIS_URL=redis_url, MOCKLLM_REDIS_PREFIX=f"mockllm-test-{uuid.uuid4().hex[:8]}",
               MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN, MOCKLLM_INDEX_POLL_SECONDS=str(POLLING_SECONDS))
    tmp_path = tmp_path_factory.mktemp("shared")
    with scratch_database(postgres_url) as database_url:
        servers = [make_server(tmp_path / name, database_url=database_url, **env) for name in ("a", "b")]
        servers[0].start(uvicorn_workers=2)
        servers[1].start(daphne=True)
        yield servers
        for server in servers:
            server.stop()


def test_two_test_runs_see_only_their_own_turns_and_journal(two_processes):
    first, second = two_processes
    runs = [f"run-{letter}-{uuid.uuid4().hex[:6]}" for letter in "xy"]
    start = threading.Barrier(len(runs))
    seen: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def test_run(run: str, writer, reader) -> None:
        try:
            own = {"X-Mock-Test-Id": run}
            added = control(writer, "POST", "responses", headers=own, json={
                "match": "book a table", "turns": [f"{run}: for how many people?", f"{run}: booked for four."]})
            assert added.status_code == 201, added.text
            start.wait(timeout=30)
            replies = []
            for _ in range(3):  # the same conversation, three times, alternating between the processes
                history = [{"role": "user", "content": "book a table"}]
                replies.append(ask(reader, history, headers=own))
                history += [{"role": "assistant", "content": replies[-1]}, {"role": "user", "content": "book a table"}]
                replies.append(ask(writer, history, headers=own))
            seen[run] = replies
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=test_run, args=(runs[0], first, second)),
               threading.Thread(target=test_run, args=(runs[1], second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    for run in runs:
        assert seen[run] == [f"{run}: for how many people?", f"{run}: booked for four."] * 3
        # Both processes journaled this run's six requests, and nothing of the other run.
        journal = control(first, "GET", "journal", params={"test_id": run, "wait": 10, "min_count": 6}).json()
        assert journal["total"] == 6
        assert {entry["test_id"] for entry in journal["data"]} == {run}
        assert all(entry["matched"] and entry["prompt"] == "book a table" for entry in journal["data"])
    # Without a test id, the conversation gets the default set.
    assert ask(first, "book a table") == DEFAULT_ANSWER
    # A run cleans up after itself; the other run's entries stay.
    assert control(second, "DELETE", "responses", params={"test_id": runs[0]}).json() == {"deleted": 1}
    assert ask(first, "book a table", headers={"X-Mock-Test-Id": runs[0]}) == DEFAULT_ANSWER
    assert ask(first, "book a table", headers={"X-Mock-Test-Id": runs[1]}) == f"{runs[1]}: for how many people?"


def test_a_change_in_one_process_is_served_by_the_other_at_once(two_processes):
    first, second = two_processes
    assert ask(second, "what is 2+2?") == "2+2 equals 9."  # the second process's index is built
    added = control(first, "POST", "responses", json={"match": {"contains": "weather"}, "response": "Sunny."},
                    params={"default": "true"})
    assert added.status_code == 201
    # Its polling interval is 30 s: served within a third of that (typically a few milliseconds), only
    # Redis can have told it.
    wait_for(lambda: ask(second, "what is the weather like?") == "Sunny.", timeout=POLLING_SECONDS / 3,
             message="the daphne process did not hear of the change")
    # Both uvicorn workers answer on one port, whichever takes the connection; each must know.
    assert {ask(first, "what is the weather like?") for _ in range(20)} == {"Sunny."}


def test_every_process_serves_a_change_as_soon_as_the_control_api_answers(two_processes):
    """Read-your-writes: a request sent after the control API's 201 gets the new answer from any
    process, also while other runs keep changing their sets."""
    first, second = two_processes
    run = f"ryw-{uuid.uuid4().hex[:6]}"
    busy = threading.Event()

    def other_run(number: int) -> None:
        n = 0
        while not busy.is_set():
            n += 1
            server = first if n % 2 else second
            other = {"X-Mock-Test-Id": f"noise-{number}-{run}"}
            control(server, "POST", "responses", headers=other, json={"match": f"noise {n}", "response": "noise"})
            ask(server, f"noise {n}", headers=other)

    noise = [threading.Thread(target=other_run, args=(number,)) for number in range(8)]
    for thread in noise:
        thread.start()
    stale = []
    try:
        for step in range(20):
            writer, reader = (first, second) if step % 2 else (second, first)
            added = control(writer, "POST", "responses", headers={"X-Mock-Test-Id": run},
                            json={"match": f"step {step}", "response": f"answer {step}"})
            assert added.status_code == 201, added.text
            for server in (reader, writer):
                answer = ask(server, f"step {step}", headers={"X-Mock-Test-Id": run})
                if answer != f"answer {step}":
                    stale.append((step, server.url, answer))
    finally:
        busy.set()
        for thread in noise:
            thread.join(timeout=30)
    assert stale == [], f"{len(stale)} stale answers: {stale}"


def test_rate_limits_are_shared_by_every_process(two_processes):
    """A limit of 3 requests a minute means 3 across all processes, not 3 in each (the buckets are in Redis)."""
    first, second = two_processes
    first.responses_file.write_text('responses:\n  hello: "Hi."\nsettings:\n  rate_limits: {requests_per_minute: 3}\n')
    first.manage("loadresponses", str(first.responses_file))
    run = {"X-Mock-Test-Id": f"limits-{uuid.uuid4().hex[:6]}"}
    wait_for(lambda: "x-ratelimit-limit-requests" in chat(second, "hello", headers={"X-Mock-Test-Id": "probe"}).headers,
             timeout=POLLING_SECONDS / 3, message="the processes did not hear of the new settings")
    statuses = [chat(server, "hello", headers=run).status_code for server in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    refused = chat(first, "hello", headers=run)
    assert refused.status_code == 429 and float(refused.headers["retry-after-ms"]) > 0
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"

