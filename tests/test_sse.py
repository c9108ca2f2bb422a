"""Delivering SSE events: batching, how a stream ended, and a client that goes away."""
import asyncio
import json
import socket

import orjson

from responses_app.api.record import RequestRecord
from responses_app.api.sse import BATCH_EVENTS, WHOLE_STREAM_CHARACTERS, deliver_events
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
            assert list(json_pieces(text, chunk)) == [orjson.dumps(piece) for piece in split_text(text, chunk)]
            assert b"".join(orjson.loads(piece).encode() for piece in json_pieces(text, chunk)) == text.encode()
    match = Match(entry=None, reply=Reply(text=texts[3]), rule="default")
    request = openai_chat.parse({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    events = list(openai_chat.render_stream(request, match, ResponseIds("chatcmpl-1", 1), "char"))
    deltas = [orjson.loads(event[6:])["choices"][0]["delta"].get("content") for event in events[1:-2]]
    assert "".join(deltas) == texts[3]


def test_a_long_texts_pieces_are_encoded_anew_and_a_short_ones_remembered():
    long_text = "a long answer, " * 300  # past CACHED_TEXT_CHARACTERS
    assert json_pieces("The sky is blue.") is json_pieces("The sky is blue.")
    assert json_pieces(long_text) is not json_pieces(long_text)
    assert list(json_pieces(long_text)) == [orjson.dumps(piece) for piece in long_text]


def stream_chunks(srv, prompt: str) -> list[bytes]:
    """The HTTP chunks of a streamed answer's body, as they came off the socket."""
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        data = b""
        while more := sock.recv(65536):
            data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"transfer-encoding: chunked" in head.lower()
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]


def test_a_short_unpaced_stream_is_one_chunk_and_a_long_one_comes_in_batches(new_server):
    long_answer = "y" * (WHOLE_STREAM_CHARACTERS + 1)
    srv = new_server(responses=f'responses:\n  - match: "short"\n    response: "The sky is blue."\n'
                               f'  - match: "long"\n    response: "{long_answer}"\n'
                               f'  - match: "paced"\n    response: "Paced."\n    timing: {{chunks_per_second: 200}}\n')
    short = stream_chunks(srv, "short")
    assert len(short) == 1 and short[0].endswith(b"data: [DONE]\n\n")
    assert short[0].count(b"data: ") == 1 + len("The sky is blue.") + 2  # role, characters, finish, [DONE]
    long = stream_chunks(srv, "long")
    events = b"".join(long).count(b"data: ")
    assert events == 1 + len(long_answer) + 2 and len(long) == -(-events // BATCH_EVENTS)
    paced = stream_chunks(srv, "paced")  # paced: an event per write (or what fell due together)
    assert len(paced) > 1 and b"".join(paced).count(b"data: ") == 1 + len("Paced.") + 2
