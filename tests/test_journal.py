"""The request journal: what each /v1/ request leaves behind, under load, bounded, and without secrets."""
from __future__ import annotations

import asyncio
import json
import os
import signal

import httpx
import pytest

from .support import CONTROL_TOKEN, QA_BOT_KEY, anthropic_client, chat, control, make_server, openai_client

SECRET_KEY = QA_BOT_KEY  # the key of control_server's "qa-bot"


@pytest.fixture(scope="module")
def srv(control_server):
    return control_server


def journal(srv, test_id: str, count: int) -> list[dict]:
    found = control(srv, "GET", "journal", params={"test_id": test_id, "wait": 10, "min_count": count,
                                                    "limit": 1000}).json()
    assert found["total"] == count, found
    return list(reversed(found["data"]))  # oldest first


def test_each_request_is_recorded_with_what_answered_it(srv):
    run = {"X-Mock-Test-Id": "fields"}
    client = openai_client(srv, api_key=SECRET_KEY, default_headers=run)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "what is 2+2?"}])
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "WHAT  is 2+2?"}])
    list(client.chat.completions.create(model="gpt-4o", stream=True,
                                        messages=[{"role": "user", "content": "tell me a joke"}]))
    anthropic_client(srv, api_key=SECRET_KEY, default_headers=run).messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    chat(srv, "x", headers={**run, "X-Mock-Status": "503"})

    matched, unmatched, streamed, anthropic, failed = journal(srv, "fields", 5)
    assert matched["matched"] and matched["entry_id"] and matched["match_rule"] == "exact"
    assert (matched["provider"], matched["endpoint"], matched["model"], matched["status"]) == \
        ("openai", "chat", "gpt-4o", 200)
    assert matched["api_key_name"] == "qa-bot" and matched["prompt"] == "what is 2+2?"
    assert matched["input_tokens"] > 0 and matched["output_tokens"] > 0 and matched["duration_ms"] >= 0
    assert json.loads(matched["body"])["model"] == "gpt-4o"
    assert matched["request_id"].startswith("req_")
    assert not unmatched["matched"] and unmatched["entry_id"] is None
    assert any("differs only in case" in hint for hint in unmatched["near_misses"])
    assert streamed["stream"] and streamed["stream_end"] == "completed"
    assert (anthropic["provider"], anthropic["path"], anthropic["model"]) == ("anthropic", "/v1/messages",
                                                                              "claude-haiku-4-5")
    assert failed["status"] == 503


def test_secrets_are_redacted_in_the_journal_and_the_log(srv):
    chat(srv, "my key is sk-inline-secret-999999", headers={"X-Mock-Test-Id": "secrets",
                                                             "Authorization": f"Bearer {SECRET_KEY}"})
    httpx.post(f"{srv.url}/v1/messages", headers={"x-api-key": SECRET_KEY, "X-Mock-Test-Id": "secrets",
                                                  "anthropic-version": "2023-06-01"},
               json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]})
    bearer, anthropic = journal(srv, "secrets", 2)
    assert bearer["headers"]["authorization"] == "Bearer [redacted]"
    assert anthropic["headers"]["x-api-key"] == "[redacted]"
    everything = json.dumps([bearer, anthropic])
    assert SECRET_KEY not in everything and "sk-inline-secret-999999" not in everything
    assert anthropic["api_key_name"] == "qa-bot"  # the key's name, never the key
    log = srv.log()
    assert "secrets" in log  # the requests were logged...
    assert SECRET_KEY not in log and "sk-inline-secret" not in log  # ...without the secrets


def test_a_burst_of_2000_requests_is_journaled_completely(srv):
    """64 keep-alive connections send 2,000 requests as fast as the server answers (one in four streamed).
    The client speaks HTTP/1.1 on raw sockets: an SDK would take most of the CPU the server needs."""
    payloads = [json.dumps({"model": "m", "stream": i % 4 == 0,
                            "messages": [{"role": "user", "content": "what is 2+2?"}]}).encode() for i in range(2000)]

    async def connection(queue: list[bytes], statuses: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        while queue:
            body = queue.pop()
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mock-Test-Id: burst\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            statuses.append(int(head.split()[1]))
            if b"content-length:" in head:
                await reader.readexactly(int(head.split(b"content-length:")[1].split(b"\r\n")[0]))
            else:  # chunked: read to the last chunk
                await reader.readuntil(b"\r\n0\r\n\r\n")
        writer.close()

    async def burst() -> list[int]:
        queue, statuses = list(payloads), []
        await asyncio.wait_for(asyncio.gather(*(connection(queue, statuses) for _ in range(64))), timeout=120)
        return statuses

    statuses = asyncio.run(burst())
    assert statuses == [200] * 2000
    found = control(srv, "GET", "journal", params={"test_id": "burst", "wait": 20, "min_count": 2000,
                                                    "limit": 1000}).json()
    assert found.get("total") == 2000, found
    assert all(e["status"] == 200 and e["matched"] for e in found["data"])
    assert 150 < sum(1 for e in found["data"] if e["stream"]) < 350  # one in four was streamed


def test_the_journal_is_bounded_and_pruned(tmp_path):
    server = make_server(tmp_path, MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            for i in range(45):
                client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": f"{i}"}]})
        assert control(server, "GET", "journal", params={"wait": 10, "min_count": 45}).json()["total"] == 45
    finally:
        server.stop()
    output = server.manage("prunejournal", env={"MOCKLLM_JOURNAL_MAX_ROWS": "30"}).stdout
    assert "Deleted 15 of 45 journal entries; 30 are kept" in output
    days = server.manage("prunejournal", "--days", "0.00001", "--keep", "0").stdout
    assert "Deleted 30 of 30" in days


def test_the_journal_can_be_turned_off(new_server):
    server = new_server(MOCKLLM_JOURNAL="0", MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    assert chat(server, "what is 2+2?").status_code == 200
    assert control(server, "GET", "journal", params={"wait": 1}).json()["total"] == 0


def test_old_test_runs_expire(tmp_path):
    server = make_server(tmp_path, MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    server.manage("shell", "-c", (  # two test runs' entries; the crashed run's untouched for 30 hours
        "import datetime\nfrom django.utils import timezone\nfrom responses_app.models import CannedResponse\n"
        + "".join(f"CannedResponse(prompt='hello', answer='for {run}', test_id={run!r}).save()\n"
                  for run in ("crashed-run", "live-run"))
        + "CannedResponse.objects.filter(test_id='crashed-run').update("
        "updated_at=timezone.now() - datetime.timedelta(hours=30))\n"))
    output = server.manage("prunejournal").stdout
    assert "Deleted 1 canned responses of test runs untouched for 24 hours (1 of 2 test runs left)" in output
    left = server.manage("shell", "-c", "from responses_app.models import CannedResponse, SetVersion\n"
                                        "print(sorted(CannedResponse.objects.exclude(test_id='')"
                                        ".values_list('test_id', flat=True)), "
                                        "SetVersion.objects.filter(test_id='crashed-run').count())").stdout
    assert left.strip().splitlines()[-1] == "['live-run'] 0"


def test_a_journal_writer_that_dies_is_replaced_and_nothing_queued_is_lost(srv):
    chat(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "before-crash"})
    journal(srv, "before-crash", 1)
    writers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent_of(int(pid)) == srv.process.pid
               and b"journalwriter" in _cmdline(int(pid))]
    assert len(writers) == 1
    os.kill(writers[0], signal.SIGKILL)
    for _ in range(5):
        assert chat(srv, "what is 2+2?", headers={"X-Mock-Test-Id": "after-crash"}).status_code == 200
    journal(srv, "after-crash", 5)
    assert "starting another" in srv.log()


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""
