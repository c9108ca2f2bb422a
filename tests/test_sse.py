"""Delivering SSE events: batching, how a stream ended, and a client that goes away."""
import asyncio
import json
import socket

import orjson

from responses_app.api.record import RequestRecord
from responses_app.api.sse import BATCH_EVENTS, deliver_events
from responses_app.canned.conversation import Reply
from responses_app.canned.matching import Match
from responses_app.providers import openai_chat
from responses_app.providers.chunking import json_pieces, split_text
from responses_app.providers.common import ResponseIds

from .support import wait_for


def collect(events, record):
    async def run():
        return [part async for part in deliver_events(events, record=record, error_event=lambda m: b"ERR " + m.encode())]

    return asyncio.run(run())


def test_events_are_batched_and_the_end_is_recorded():
    events = [b"data: %d\n\n" % i for i in range(10_000)]
    log = RequestRecord()
    parts = collect(iter(events), log)
    assert b"".join(parts) == b"".join(events)
    assert len(parts) == -(-len(events) // BATCH_EVENTS)  # whole batches, and the rest in one
    assert log.stream_end == "completed"


def test_an_error_mid_stream_ends_with_the_providers_error_event():
    def events():
        yield b"data: 1\n\n"
        raise RuntimeError("boom")

    log = RequestRecord()
    parts = collect(events(), log)
    assert b"".join(parts).startswith(b"data: 1\n\nERR ")
    assert log.stream_end == "error"


def test_a_client_that_disconnects_stops_the_stream(new_server):
    long_answer = "x" * 400_000
    srv = new_server(responses=f'responses:\n  "long": "{long_answer}"\n')
    request = json.dumps({"model": "disconnect-check", "stream": True,
                          "messages": [{"role": "user", "content": "long"}]}).encode()
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(request) + request)
        assert b"200 OK" in sock.recv(4096)
    def logged() -> list[dict]:
        return [line for line in srv.log_lines() if line.get("model") == "disconnect-check"]

    wait_for(logged, message=srv.log)
    entry = logged()[-1]
    assert entry["stream_end"] == "client_disconnected"
    assert "Task was destroyed" not in srv.log()
    # and the server goes on answering
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        ok = json.dumps({"model": "m", "messages": [{"role": "user", "content": "long"}]}).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ok) + ok)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b"200 OK" in data and long_answer.encode() in data


def test_stream_events_splice_in_exactly_the_json_of_each_piece():
    """A stream's events are templates with each piece's JSON spliced in; the spliced bytes are what
    orjson makes of the piece, for every kind of character and every way of chunking."""
    texts = ["The sky is blue.", 'quotes " and \\ backslashes', "tab\tnew\nline\r\x00\x1f\x7f", "é ß 中文 😀 \u2028\u2029",
             "</script> & <b>", ""]
    for text in texts:
        for chunk in ("char", "word", "token", 3):
            assert json_pieces(text, chunk) == [orjson.dumps(piece) for piece in split_text(text, chunk)]
            assert b"".join(orjson.loads(piece).encode() for piece in json_pieces(text, chunk)) == text.encode()
    match = Match(entry=None, reply=Reply(text=texts[3]), rule="default")
    request = openai_chat.parse({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    events = list(openai_chat.render_stream(request, match, ResponseIds("chatcmpl-1", 1), "char"))
    deltas = [orjson.loads(event[6:])["choices"][0]["delta"].get("content") for event in events[1:-2]]
    assert "".join(deltas) == texts[3]
