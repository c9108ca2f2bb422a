"""The request journal on PostgreSQL, whose text columns cannot hold a NUL character: one request can
no longer stop the journal, cost other runs' entries or hang the journal endpoints, and a writer that
stops is replaced without losing what was handed to it."""
from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import pytest

from .support import CONTROL_TOKEN, ROOT, make_server, scratch_database

AUTH = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


@pytest.fixture(scope="module")
def pg(tmp_path_factory, postgres_url):
    """A daphne process on a PostgreSQL database of its own."""
    with scratch_database(postgres_url) as database_url:
        server = make_server(tmp_path_factory.mktemp("journal-pg"), database_url=database_url,
                             MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
        server.start(daphne=True)
        yield server
        server.stop()


def journal(server, test_id: str, count: int, *, limit: int = 1000) -> dict:
    """The run's journal once `count` entries are in (at most 10 s); the journal must answer within 15 s."""
    found = httpx.get(f"{server.url}/control/journal", headers=AUTH, timeout=15,
                      params={"test_id": test_id, "wait": 10, "min_count": count, "limit": limit})
    assert found.status_code == 200, found.text
    return found.json()


def raw_post(server, body: bytes, test_id: str) -> int:
    """POST a body byte for byte (an HTTP client would refuse to send some of them)."""
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"X-Mock-Test-Id: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
               % (test_id.encode(), len(body), body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split()[1])


def test_a_raw_nul_byte_costs_no_other_entry_and_the_journal_keeps_answering(pg):
    assert raw_post(pg, b'{"model": "m", "messages": [{"role": "user", "content": "a\x00b"}]}', "nul-raw") == 400
    with httpx.Client(base_url=pg.url, headers={"X-Mock-Test-Id": "after-nul"}, timeout=10) as client:
        for _ in range(200):
            response = client.post("/v1/chat/completions",
                                   json={"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]})
            assert response.status_code == 200
    assert journal(pg, "after-nul", 200, limit=1)["total"] == 200
    refused = journal(pg, "nul-raw", 1)["data"][0]
    assert refused["status"] == 400 and "a\ufffdb" in refused["body"]  # stored, the NUL as U+FFFD


def test_a_json_escaped_nul_in_a_prompt_costs_other_runs_nothing(pg):
    def send(prompt: str, run: str) -> None:
        response = httpx.post(f"{pg.url}/v1/chat/completions", headers={"X-Mock-Test-Id": run}, timeout=10,
                              json={"model": "m\u0000", "messages": [{"role": "user", "content": prompt}]})
        assert response.status_code == 200

    threads = [threading.Thread(target=send, args=("nul \u0000 byte", "nul-json"))]
    threads += [threading.Thread(target=send, args=("what is 2+2?", "bystander")) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal(pg, "bystander", 5)["total"] == 5
    entry = journal(pg, "nul-json", 1)["data"][0]
    assert entry["prompt"] == "nul \ufffd byte" and entry["model"] == "m\ufffd"
    assert json.loads(entry["body"])["model"] == "m\u0000"  # the body as sent, its escape a text like any other


def _writer_of(server) -> int:
    def parent(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                return int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return -1

    def cmdline(pid: int) -> bytes:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                return file.read()
        except OSError:
            return b""

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        writers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and parent(int(pid)) == server.process.pid
                   and b"journalwriter" in cmdline(int(pid))]
        if len(writers) == 1:
            return writers[0]
        time.sleep(0.1)
    raise AssertionError("no journal writer found")


def test_a_stuck_writer_neither_hangs_the_journal_nor_loses_what_it_was_handed(pg):
    with httpx.Client(base_url=pg.url, headers={"X-Mock-Test-Id": "warm-up"}) as client:
        client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    journal(pg, "warm-up", 1)
    writer = _writer_of(pg)
    os.kill(writer, signal.SIGSTOP)  # a writer that stops reading: its pipe fills up
    try:
        padding = "x" * 2000
        with httpx.Client(base_url=pg.url, headers={"X-Mock-Test-Id": "stuck"}, timeout=10) as client:
            for i in range(150):  # some 300 KB of journal, several times what a pipe holds
                response = client.post("/v1/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": f"{i} {padding}"}]})
                assert response.status_code == 200
                if i % 50 == 49:
                    time.sleep(0.3)  # let the server hand over what it has queued
        started = time.monotonic()
        answered = httpx.get(f"{pg.url}/control/journal", headers=AUTH, params={"test_id": "stuck"}, timeout=15)
        assert answered.status_code == 200 and time.monotonic() - started < 5
    finally:
        os.kill(writer, signal.SIGKILL)  # replaced by the server; what it was handed is sent again
    assert journal(pg, "stuck", 150, limit=1)["total"] == 150
    assert "starting another" in pg.log()


def _row(request_id: str, **changes) -> dict:
    row = {
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(), "request_id": request_id,
        "test_id": "writer", "scenario": "", "api_key_name": "", "method": "POST", "path": "/v1/chat/completions",
        "provider": "openai", "endpoint": "chat", "model": "m", "stream": False, "status": 200, "matched": False,
        "entry_id": None, "match_rule": "default", "near_misses": [], "prompt": "hello", "stream_end": "",
        "duration_ms": 1.0, "input_tokens": 1, "output_tokens": 1, "headers": {"CONTENT_TYPE": "application/json"},
        "body": "{}",
    }
    row.update(changes)
    return row


def test_the_writer_stores_what_it_can_and_isolates_what_it_cannot(tmp_path, postgres_url):
    """`manage.py journalwriter` fed directly: NUL anywhere becomes U+FFFD; a row the database still
    refuses (a status out of the column's range) is logged and counted, and costs no other row, in a
    batch of 4 or of 200."""
    nul = "a\x00b"
    rows = [
        _row("good-1"),
        _row("nul-everywhere", test_id="writer", model=nul, path="/v1/" + nul, prompt=nul, body=nul,
             near_misses=[nul], headers={"HTTP_X_TEST": nul, "CONTENT_TYPE": nul}, stream_end=nul, match_rule=nul),
        _row("refused", status=70000),
        _row("good-2"),
    ]
    with scratch_database(postgres_url) as database_url:
        server = make_server(tmp_path, database_url=database_url)
        writer = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "journalwriter"], cwd=ROOT,
                                  env=server.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            many = [_row(f"many-{i}", status=70000 if i in (17, 150) else 200) for i in range(200)]
            lines = [json.dumps(rows), json.dumps([_row("good-3")]), json.dumps(many)]
            out, err = writer.communicate(("\n".join(lines) + "\n").encode(), timeout=60)
        finally:
            writer.kill()
        with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as connection:
            stored = {request_id: (model, prompt, body, headers, near_misses) for request_id, model, prompt, body,
                      headers, near_misses in connection.execute(
                          "SELECT request_id, model, prompt, body, headers, near_misses "
                          "FROM responses_app_journalentry")}
    assert set(stored) == {"good-1", "nul-everywhere", "good-2", "good-3"} | \
        {f"many-{i}" for i in range(200) if i not in (17, 150)}
    model, prompt, body, headers, near_misses = stored["nul-everywhere"]
    assert model == prompt == body == "a\ufffdb"
    assert headers == {"x-test": "a\ufffdb", "content-type": "a\ufffdb"} and near_misses == ["a\ufffdb"]
    logged = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    refusals = [line for line in logged if line.get("event") == "journal_row_refused"]
    assert [(line["request_id"], line["refused_total"]) for line in refusals] == \
        [("refused", 1), ("many-17", 2), ("many-150", 3)]
    assert out.split() == [b"1", b"2", b"3"]  # each line acknowledged once stored
