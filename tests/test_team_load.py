"""The team-shared environment under load and abuse: two server processes on PostgreSQL and Redis, API keys
required, 30 test runs at once, each scripting the same prompt with its own answer through the control API
and asking right after each change returns, streamed and not, in both providers' formats, while hostile
requests (NUL characters in bodies, prompts, headers and filters) go to the same processes.

What must hold: no stale answer, no answer from another run, and each run's journal exactly its own
requests.
"""
from __future__ import annotations

import http.client
import json
import threading
import uuid

import httpx
import pytest

from .support import CONTROL_TOKEN, create_api_key, make_server, scratch_database

pytestmark = pytest.mark.slow

RUNS = 30
STEPS = 3
PROMPT = "where is my order?"
KEY = "mk-team-load-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, postgres_url, redis_url):
    env = dict(MOCKLLM_REDIS_URL=redis_url, MOCKLLM_REDIS_PREFIX=f"mockllm-load-{uuid.uuid4().hex[:8]}",
               MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN, MOCKLLM_INDEX_POLL_SECONDS="30", MOCKLLM_REQUIRE_API_KEY="1")
    tmp_path = tmp_path_factory.mktemp("load")
    with scratch_database(postgres_url) as database_url:
        servers = [make_server(tmp_path / name, database_url=database_url, **env) for name in ("a", "b")]
        create_api_key(servers[0], "team-load", KEY)
        servers[0].start(uvicorn_workers=1)
        servers[1].start(daphne=True)
        yield servers
        for server in servers:
            server.stop()


def control(client: httpx.Client, method: str, path: str, run: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {CONTROL_TOKEN}", **({"X-Mock-Test-Id": run} if run else {})}
    return client.request(method, f"/control/{path}", headers=headers, **kwargs)


def ask(client: httpx.Client, run: str, provider: str, stream: bool) -> str:
    """The answer text, as the SDKs would assemble it, to PROMPT from this run."""
    headers = {"X-Mock-Test-Id": run, "Authorization": f"Bearer {KEY}"}
    message = [{"role": "user", "content": PROMPT}]
    if provider == "openai":
        body = {"model": "gpt-4o", "messages": message, "stream": stream}
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        if not stream:
            return response.json()["choices"][0]["message"]["content"]
        chunks = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": message, "stream": stream}
    response = client.post("/v1/messages", json=body, headers={**headers, "anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["content"][0]["text"]
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


def hostile(servers, stop: threading.Event, answers: list[int]) -> None:
    """Careless and hostile requests, mixed into the runs' traffic."""
    clients = [httpx.Client(base_url=server.url, timeout=30) for server in servers]
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    n = 0
    while not stop.is_set():
        client = clients[n % 2]
        n += 1
        raw = b'{"model": "m", "messages": [{"role": "user", "content": "a\x00b"}]}'
        answers.append(client.post("/v1/chat/completions", content=raw, headers=auth).status_code)
        escaped = {"model": "m\\u0000", "messages": [{"role": "user", "content": "nul \u0000 inside"}]}
        answers.append(client.post("/v1/chat/completions", json=escaped,
                                   headers={**auth, "X-Mock-Test-Id": f"hostile-{n}"}).status_code)
        answers.append(client.post("/v1/messages", json={"model": "c", "max_tokens": 5, "messages": [
            {"role": "user", "content": "\u0000"}]}, headers={**auth, "anthropic-version": "2023-06-01"}).status_code)
        for query in ("test_id=a%00b", "model=%00", "request_id=x%00"):
            answers.append(client.get(f"/control/journal?{query}",
                                      headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}).status_code)
        answers.append(control(client, "POST", "responses", json={"match": "nul\u0000", "response": "x"},
                               run=f"hostile-{n}").status_code)
        connection = http.client.HTTPConnection("127.0.0.1", servers[n % 2].port, timeout=30)
        connection.putrequest("POST", "/v1/chat/completions")
        connection.putheader("X-Mock-Test-Id", "bad\x00id")
        connection.putheader("Authorization", f"Bearer {KEY}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "2")
        try:
            connection.endheaders(b"{}")
            answers.append(connection.getresponse().status)
        except (http.client.HTTPException, ValueError, OSError):
            answers.append(0)  # refused before it reached the application
        finally:
            connection.close()


def test_thirty_runs_at_once_see_only_their_own_answers_at_once_and_journal_exactly_their_requests(two_processes):
    runs = [f"load-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(RUNS)]
    start = threading.Barrier(RUNS + 1)
    problems: list[str] = []
    asked: dict[str, int] = {}
    hostile_answers: list[int] = []
    stop = threading.Event()

    def test_run(number: int, run: str) -> None:
        clients = [httpx.Client(base_url=server.url, timeout=30) for server in two_processes]
        asked[run] = 0
        try:
            start.wait(timeout=60)
            previous = None
            for step in range(STEPS):
                writer = clients[(number + step) % 2]
                if previous is not None:
                    assert control(writer, "DELETE", f"responses/{previous}", run=run).status_code == 204
                added = control(writer, "POST", "responses", run=run,
                                json={"match": PROMPT, "response": f"{run} step {step}"})
                assert added.status_code == 201, added.text
                previous = added.json()["id"]
                for i, (provider, stream) in enumerate(
                        [("openai", False), ("anthropic", True), ("openai", True), ("anthropic", False)]):
                    answer = ask(clients[(number + step + i) % 2], run, provider, stream)
                    asked[run] += 1
                    if answer != f"{run} step {step}":
                        problems.append(f"{run} step {step} {provider} stream={stream}: {answer!r}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            problems.append(f"{run}: {exc!r}")

    threads = [threading.Thread(target=test_run, args=(n, run)) for n, run in enumerate(runs)]
    abuse = threading.Thread(target=hostile, args=(two_processes, stop, hostile_answers))
    for thread in threads:
        thread.start()
    start.wait(timeout=60)
    abuse.start()
    for thread in threads:
        thread.join(timeout=300)
    stop.set()
    abuse.join(timeout=60)
    assert problems == [], f"{len(problems)} wrong answers or failures, the first: {problems[:5]}"
    assert hostile_answers and 500 not in hostile_answers and all(
        status in (0, 200, 400) for status in hostile_answers), sorted(set(hostile_answers))

    with httpx.Client(base_url=two_processes[0].url, timeout=60) as client:
        for run in runs:
            journal = control(client, "GET", "journal", run=run,
                              params={"wait": 10, "min_count": asked[run], "limit": 1000}).json()
            assert journal["total"] == asked[run] == STEPS * 4, (run, journal["total"])
            assert {entry["test_id"] for entry in journal["data"]} == {run}
            assert all(entry["status"] == 200 and entry["matched"] for entry in journal["data"])
