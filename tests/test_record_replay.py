"""Record and replay: a second mockllm server stands in for the real APIs (the upstream); the recording
server forwards what it cannot answer, records it, and replays it with the upstream gone. Driven with
the official SDKs; the upstream's requests are counted through its journal."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from .support import CONTROL_TOKEN, DEFAULT_ANSWER, anthropic_client, make_server, openai_client, wait_for

UPSTREAM_KEY = "sk-upstream-secret-4f1c9a7e2b6d8h3j5k"
CLIENT_KEY = "sk-client-secret-9z8y7x6w5v4u3t2s1r"

UPSTREAM_RESPONSES = """
responses:
  - match: "what is the capital of france?"
    response: "The capital of France is Paris."
  - match: "hello"
    response: "Hello from upstream."
  - match: "book me a flight to lisbon"
    turns:
      - tool_calls: [{name: search_flights, arguments: {destination: LIS}}]
      - tool_calls: [{name: book_flight, arguments: {flight: TP1234}}]
      - "Booked: TP1234 to Lisbon, leaving 09:40."
  - match: {contains: "pirate", on: system}
    priority: 5
    response: "Arr, carry on."
  - match: "carry on"
    response: "Carrying on, plainly."
  - match: "slow down please"
    error: {status: 429, retry_after: 7, message: "Slow down."}
  - match: "think about it"
    response:
      text: "Thought it through."
      thinking: "Let me consider the question carefully."
  - match: "tell me a story"
    response:
      text: "Once upon a time there was a mock."
      usage: {input_tokens: 11, output_tokens: 9}
  - match: "what's the weather?"
    response:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
  - match: "embed me"
    embedding: [0.25, -0.5, 0.75]
"""

LOCAL_RESPONSES = """
responses:
  - match: "hello"
    response: "Hello from a hand-written entry."
"""

FLIGHT_TOOLS = [
    {"type": "function", "function": {"name": "search_flights", "parameters": {
        "type": "object", "properties": {"destination": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "book_flight", "parameters": {
        "type": "object", "properties": {"flight": {"type": "string"}}}}},
]


def upstream_journal(upstream) -> dict:
    found = httpx.get(f"{upstream.url}/control/journal", params={"limit": 100},
                      headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=15)
    assert found.status_code == 200, found.text
    return found.json()


def upstream_requests(upstream) -> int:
    return upstream_journal(upstream)["total"]


def settled_count(upstream, at_least: int) -> int:
    """The upstream's request count once it has journaled at least `at_least` (journaling lags a little)."""
    wait_for(lambda: upstream_requests(upstream) >= at_least, message=lambda: "upstream journal: " + ", ".join(
        f"{e['path']} {e['prompt'][:30]!r}" for e in upstream_journal(upstream)["data"]))
    return upstream_requests(upstream)


@pytest.fixture
def pair(tmp_path: Path):
    """(upstream, recorder, start_recorder): the upstream running; the recorder started by the test."""
    upstream = make_server(tmp_path / "upstream", responses=UPSTREAM_RESPONSES,
                           MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN).start()
    recorder = make_server(tmp_path / "recorder", responses=LOCAL_RESPONSES, MOCKLLM_RECORD="miss",
                           MOCKLLM_UPSTREAM_OPENAI=upstream.url, MOCKLLM_UPSTREAM_ANTHROPIC=upstream.url,
                           MOCKLLM_UPSTREAM_OPENAI_KEY=UPSTREAM_KEY, MOCKLLM_UPSTREAM_ANTHROPIC_KEY=UPSTREAM_KEY,
                           MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    recorder.start()
    yield upstream, recorder
    recorder.stop(wait=False)
    upstream.stop(wait=False)


def ask_everything(recorder) -> dict[str, object]:
    """The same questions through every SDK path; what each answered."""
    oai = openai_client(recorder, api_key=CLIENT_KEY)
    claude = anthropic_client(recorder, api_key=CLIENT_KEY)
    answers: dict[str, object] = {}
    answers["chat"] = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "What is the capital of France?"}]
    ).choices[0].message.content
    stream = oai.chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "tell me a story"}])
    chunks = list(stream)
    answers["chat_stream"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answers["chat_stream_usage"] = chunks[-1].usage.completion_tokens
    weather = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "what's the weather?"}],
                                          tools=[{"type": "function", "function": {"name": "get_weather"}}])
    call = weather.choices[0].message.tool_calls[0]
    answers["tool_call"] = (call.function.name, json.loads(call.function.arguments), weather.choices[0].finish_reason)
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=100,
                                     messages=[{"role": "user", "content": "What is the capital of France?"}])
    answers["messages"] = message.content[0].text
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=2000,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "think about it"}]) as events:
        final = events.get_final_message()
    answers["messages_stream"] = [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None),
                                   getattr(b, "signature", None)) for b in final.content]
    answers["responses"] = oai.responses.create(model="gpt-4o", input="tell me a story").output_text
    with oai.responses.stream(model="gpt-4o", input="What is the capital of France?") as events:
        answers["responses_stream"] = events.get_final_response().output_text
    answers["completions"] = oai.completions.create(model="gpt-3.5-turbo-instruct",
                                                    prompt="What is the capital of France?").choices[0].text
    answers["embeddings"] = oai.embeddings.create(model="text-embedding-3-small", input=["embed me"],
                                            encoding_format="float").data[0].embedding
    base64_vector = httpx.post(f"{recorder.url}/v1/embeddings", timeout=15, json={
        "model": "text-embedding-3-small", "input": ["embed me", "another text"], "encoding_format": "base64"})
    assert base64_vector.status_code == 200, base64_vector.text
    answers["embeddings_base64"] = [item["embedding"] for item in base64_vector.json()["data"]]
    answers["count_tokens"] = claude.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "tell me a story"}]).input_tokens
    answers["hand_written"] = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
    return answers


@pytest.mark.slow
def test_every_endpoint_records_once_and_replays_with_the_upstream_gone_after_a_restart(pair):
    upstream, recorder = pair
    first = ask_everything(recorder)
    assert first["chat"] == "The capital of France is Paris."
    assert first["chat_stream"] == "Once upon a time there was a mock."
    assert first["chat_stream_usage"] == 9
    assert first["tool_call"] == ("get_weather", {"city": "Paris"}, "tool_calls")
    assert first["messages"] == "The capital of France is Paris."
    assert first["messages_stream"][0][:2] == ("thinking", "Let me consider the question carefully.")
    assert first["messages_stream"][1][:2] == ("text", "Thought it through.")
    assert first["responses"] == "Once upon a time there was a mock."
    assert first["responses_stream"] == "The capital of France is Paris."
    assert first["completions"] == "The capital of France is Paris."
    assert first["embeddings"] == [0.25, -0.5, 0.75]
    assert first["hand_written"] == "Hello from a hand-written entry."  # never forwarded
    forwarded = settled_count(upstream, 11)
    assert forwarded == 11  # every request but the hand-written one, once (the second batch: for its new text)

    upstream.stop()
    recorder.stop()
    recorder.start()
    second = ask_everything(recorder)
    assert second == first
    assert "could not be reached" not in recorder.log()

    rows = sqlite3.connect(recorder.sqlite_path).execute(
        "select count(*) from responses_app_cannedresponse where source = 'recorded' and reviewed = 0").fetchone()[0]
    assert rows == 11  # one per request, and one per text of an embeddings batch


@pytest.mark.slow
def test_a_three_step_agent_loop_replays_step_by_step_and_conversations_do_not_collide(pair):
    upstream, recorder = pair
    oai = openai_client(recorder)

    def run_loop() -> list:
        messages = [{"role": "user", "content": "Book me a flight to Lisbon"}]
        steps = []
        for _ in range(3):
            reply = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=FLIGHT_TOOLS).choices[0]
            if reply.message.tool_calls:
                call = reply.message.tool_calls[0]
                steps.append(call.function.name)
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": call.id, "type": "function",
                     "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
                messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"ok": true}'})
            else:
                steps.append(reply.message.content)
        return steps

    def carry_on(system: str) -> str:
        return oai.chat.completions.create(model="gpt-4o", messages=[
            {"role": "system", "content": system}, {"role": "user", "content": "carry on"}]).choices[0].message.content

    recorded = run_loop()
    assert recorded == ["search_flights", "book_flight", "Booked: TP1234 to Lisbon, leaving 09:40."]
    assert carry_on("You are a pirate.") == "Arr, carry on."
    assert carry_on("You are an accountant.") == "Carrying on, plainly."
    assert settled_count(upstream, 5) == 5
    upstream.stop()
    assert run_loop() == recorded  # new tool-call ids each time: they do not break the match
    assert carry_on("You are an accountant.") == "Carrying on, plainly."
    assert carry_on("You are a pirate.") == "Arr, carry on."


def test_an_upstream_error_passes_through_unchanged_and_is_not_recorded(pair):
    upstream, recorder = pair
    for attempt in (1, 2):
        answer = httpx.post(f"{recorder.url}/v1/chat/completions", timeout=15,
                            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "slow down please"}]})
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "7"
        assert any(name.startswith("x-ratelimit-") for name in answer.headers)
        assert answer.json()["error"]["message"] == "Slow down."
        assert settled_count(upstream, attempt) == attempt  # not recorded: asked upstream again
    rows = sqlite3.connect(recorder.sqlite_path).execute(
        "select count(*) from responses_app_cannedresponse where source = 'recorded'").fetchone()[0]
    assert rows == 0
    import openai

    with pytest.raises(openai.RateLimitError):
        openai_client(recorder).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "slow down please"}])


def test_an_unreachable_upstream_is_a_502_in_the_providers_shape_naming_it(tmp_path):
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    recorder = make_server(tmp_path / "recorder", responses=LOCAL_RESPONSES, MOCKLLM_RECORD="miss",
                           MOCKLLM_UPSTREAM_OPENAI=dead, MOCKLLM_UPSTREAM_ANTHROPIC=dead).start()
    try:
        chat = httpx.post(f"{recorder.url}/v1/chat/completions", timeout=30,
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "anything"}]})
        assert chat.status_code == 502
        assert "127.0.0.1:9" in chat.json()["error"]["message"]
        messages = httpx.post(f"{recorder.url}/v1/messages", timeout=30, headers={"anthropic-version": "2023-06-01"},
                              json={"model": "claude-haiku-4-5", "max_tokens": 10,
                                    "messages": [{"role": "user", "content": "anything"}]})
        assert messages.status_code == 502
        assert messages.json()["type"] == "error" and "127.0.0.1:9" in messages.json()["error"]["message"]
        assert httpx.post(f"{recorder.url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}).status_code == 200
        # The wire formats that are not recorded are answered as canned, never sent to OpenAI's upstream.
        embeddings = httpx.post(f"{recorder.url}/v1/embeddings", timeout=30,
                                json={"model": "text-embedding-3-small", "input": "anything"})
        assert embeddings.status_code == 502
        for path, body in (("/api/embed", {"model": "llama3.2", "input": "anything"}),
                           ("/api/chat", {"model": "llama3.2", "stream": False,
                                          "messages": [{"role": "user", "content": "anything"}]}),
                           ("/openai/v1/embeddings", {"model": "text-embedding-3-small", "input": "anything"}),
                           ("/openai/v1/chat/completions", {"model": "gpt-4o",
                                                            "messages": [{"role": "user", "content": "anything"}]}),
                           ("/v1beta/models/gemini-2.5-flash:generateContent",
                            {"contents": [{"role": "user", "parts": [{"text": "anything"}]}]})):
            answer = httpx.post(f"{recorder.url}{path}", timeout=30, json=body)
            assert answer.status_code == 200, (path, answer.text)
    finally:
        recorder.stop(wait=False)


@pytest.mark.slow
def test_the_key_is_in_no_table_of_the_database_and_in_no_log_line(pair):
    upstream, recorder = pair
    oai = openai_client(recorder, api_key=CLIENT_KEY)
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "What is the capital of France?"}])
    list(oai.chat.completions.create(model="gpt-4o", stream=True,
                                     messages=[{"role": "user", "content": "tell me a story"}]))
    anthropic_client(recorder, api_key=CLIENT_KEY).messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello there"}])
    settled_count(upstream, 3)
    journal = httpx.get(f"{recorder.url}/control/journal", params={"wait": 10, "min_count": 3},
                        headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=15)
    assert journal.json()["total"] >= 3
    with sqlite3.connect(recorder.sqlite_path) as db:
        tables = [name for (name,) in db.execute("select name from sqlite_master where type = 'table'")]
        assert "responses_app_recordedexchange" in tables
        exchanges = db.execute("select count(*) from responses_app_recordedexchange").fetchone()[0]
        assert exchanges == 3
        for table in tables:
            columns = [row[1] for row in db.execute(f'pragma table_info("{table}")')]
            for row in db.execute(f'select * from "{table}"'):
                text = " ".join(str(value) for value in row)
                for secret in (UPSTREAM_KEY, CLIENT_KEY, UPSTREAM_KEY[10:], CLIENT_KEY[10:]):
                    assert secret not in text, (table, columns)
    for secret in (UPSTREAM_KEY, CLIENT_KEY):
        assert secret not in recorder.log()


@pytest.mark.slow
def test_twenty_identical_misses_at_once_make_one_upstream_call(pair):
    upstream, recorder = pair
    answers: list[httpx.Response] = []
    start = threading.Barrier(20)

    def one(streamed: bool) -> None:
        start.wait()
        answers.append(httpx.post(f"{recorder.url}/v1/chat/completions", timeout=60, json={
            "model": "gpt-4o", "stream": streamed, "messages": [{"role": "user", "content": "tell me a story"}]}))

    threads = [threading.Thread(target=one, args=(i % 2 == 0,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 20
    for answer in answers:
        if answer.headers["content-type"].startswith("application/json"):
            assert answer.json()["choices"][0]["message"]["content"] == "Once upon a time there was a mock."
        else:
            chunks = [json.loads(line[6:]) for line in answer.text.splitlines()
                      if line.startswith("data: {")]
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            assert text == "Once upon a time there was a mock." and answer.text.endswith("data: [DONE]\n\n")
    assert settled_count(upstream, 1) == 1


# ---- behaviour the project cannot produce as an upstream: a small upstream of the test's own -------

def _sse(data: dict | str) -> bytes:
    return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return _sse({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


class HandMadeUpstream:
    """An upstream whose answer depends on the prompt: `break` (a stream cut short), `slow` (a pause
    between events), `linger` (complete, then the connection held open), `gzip` (a compressed body
    whatever was asked). It notes the Accept-Encoding of each request."""

    def __init__(self) -> None:
        import http.server

        self.accept_encodings: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def send_chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_POST(self) -> None:
                import gzip

                owner.accept_encodings.append(self.headers.get("accept-encoding", ""))
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                prompt = body["messages"][-1]["content"]
                if prompt == "gzip":
                    payload = gzip.compress(json.dumps({
                        "id": "chatcmpl-g", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Unzipped."},
                                     "finish_reason": "stop", "logprobs": None}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode())
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-encoding", "gzip")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self.send_chunk(_chunk("First words"))
                if prompt == "break":
                    self.send_chunk(_chunk(", then"))
                    self.close_connection = True
                    self.connection.shutdown(2)  # no last chunk: the stream is cut
                    return
                if prompt == "slow":
                    time.sleep(2.0)
                self.send_chunk(_chunk(", last words."))
                self.send_chunk(_chunk(finish="stop"))
                self.send_chunk(_sse("[DONE]"))
                if prompt == "linger":
                    time.sleep(3.0)  # complete, but the connection is not ended yet
                self.wfile.write(b"0\r\n\r\n")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hand_made(tmp_path: Path):
    upstream = HandMadeUpstream()
    recorder = make_server(tmp_path / "recorder", responses=LOCAL_RESPONSES, MOCKLLM_RECORD="miss",
                           MOCKLLM_UPSTREAM_OPENAI=upstream.url).start()
    yield upstream, recorder
    recorder.stop(wait=False)
    upstream.close()


def recorded_rows(recorder) -> list[tuple]:
    with sqlite3.connect(recorder.sqlite_path) as db:
        return db.execute("select prompt, answer from responses_app_cannedresponse where source = 'recorded'"
                          ).fetchall()


def stream_chat(recorder, prompt: str, *, stop_at_done: bool = False) -> tuple[list[float], str]:
    """When each piece of a streamed answer arrived (monotonic seconds), and its text."""
    arrivals, text = [], []
    with httpx.stream("POST", f"{recorder.url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]}) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
                text.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
            if stop_at_done and line == "data: [DONE]":
                break
    return arrivals, "".join(text)


@pytest.mark.slow
def test_a_stream_the_upstream_breaks_reaches_the_client_broken_and_records_nothing(hand_made):
    upstream, recorder = hand_made
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # a cut chunked body, or a reset
        stream_chat(recorder, "break")
    assert recorded_rows(recorder) == []
    arrivals, text = stream_chat(recorder, "slow")  # events pass through as they come, not buffered
    assert text == "First words, last words."
    assert arrivals[-1] - arrivals[0] > 1.0
    wait_for(lambda: recorded_rows(recorder) == [("slow", "First words, last words.")])
    with sqlite3.connect(recorder.sqlite_path) as db:
        [options] = db.execute("select options from responses_app_cannedresponse where source = 'recorded'"
                               ).fetchone()
    timing = json.loads(options)["recorded_timing"]
    assert 0 < timing["characters_per_second"] < 24 / 1.5  # 24 characters over the 2 s the stream took
    _, text = stream_chat(recorder, "slow")  # a replay, at the canned pace: none asked for
    assert text == "First words, last words."
    started = time.monotonic()
    with httpx.stream("POST", f"{recorder.url}/v1/chat/completions", timeout=30,
                      headers={"X-Mock-Timing": "recorded"}, json={
                          "model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
                      ) as paced:
        assert paced.status_code == 200 and paced.headers["x-mockllm-match"].isdigit()
        body = "".join(paced.iter_text())
    assert time.monotonic() - started > 1.2  # at the recorded pace
    assert "data: [DONE]" in body


@pytest.mark.slow
def test_a_stream_is_recorded_when_the_client_leaves_right_after_its_last_event(hand_made):
    upstream, recorder = hand_made
    _, text = stream_chat(recorder, "linger", stop_at_done=True)
    assert text == "First words, last words."
    wait_for(lambda: recorded_rows(recorder) == [("linger", "First words, last words.")])


def test_identity_is_asked_for_and_a_compressed_answer_is_recorded_decoded(hand_made):
    upstream, recorder = hand_made
    answer = httpx.post(f"{recorder.url}/v1/chat/completions", timeout=30, headers={"accept-encoding": "gzip"},
                        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "gzip"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Unzipped."
    assert upstream.accept_encodings == ["identity"]
    wait_for(lambda: recorded_rows(recorder) == [("gzip", "Unzipped.")])


@pytest.mark.slow
def test_a_test_run_put_into_record_mode_records_into_its_own_set_only(tmp_path):
    upstream = make_server(tmp_path / "upstream", responses=UPSTREAM_RESPONSES,
                           MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN).start()
    recorder = make_server(tmp_path / "recorder", responses=LOCAL_RESPONSES, MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN,
                           MOCKLLM_UPSTREAM_OPENAI=upstream.url).start()  # MOCKLLM_RECORD stays off
    auth = {"Authorization": f"Bearer {CONTROL_TOKEN}"}

    def ask(test_id: str = "", **headers: str) -> str:
        if test_id:
            headers["X-Mock-Test-Id"] = test_id
        answer = httpx.post(f"{recorder.url}/v1/chat/completions", headers=headers, timeout=30, json={
            "model": "gpt-4o", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        assert answer.status_code == 200, answer.text
        return answer.json()["choices"][0]["message"]["content"]

    try:
        # No header turns recording on or chooses the upstream.
        assert ask(**{"X-Mock-Record": "all", "X-Mock-Upstream": upstream.url}) == DEFAULT_ANSWER
        mode = httpx.put(f"{recorder.url}/control/record", headers={**auth, "X-Mock-Test-Id": "run-a"},
                         json={"mode": "miss"}, timeout=15)
        assert mode.status_code == 200 and mode.json() == {"test_id": "run-a", "mode": "miss"}
        assert httpx.get(f"{recorder.url}/control/record", params={"test_id": "run-b"}, headers=auth,
                         timeout=15).json()["mode"] == "off"
        assert ask("run-a") == "The capital of France is Paris."
        assert ask("run-b") == DEFAULT_ANSWER
        assert ask() == DEFAULT_ANSWER
        assert settled_count(upstream, 1) == 1
        with sqlite3.connect(recorder.sqlite_path) as db:
            assert db.execute("select test_id from responses_app_cannedresponse where source = 'recorded'"
                              ).fetchall() == [("run-a",)]
        upstream.stop()
        assert ask("run-a") == "The capital of France is Paris."  # replayed
        assert ask("run-b") == DEFAULT_ANSWER
        ended = httpx.delete(f"{recorder.url}/control/record", headers={**auth, "X-Mock-Test-Id": "run-a"}, timeout=15)
        assert ended.json()["mode"] == "off"
        assert ask("run-a") == "The capital of France is Paris."  # recordings replay with recording off
        bad = httpx.put(f"{recorder.url}/control/record", headers=auth, json={"mode": "miss"}, timeout=15)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "test_id"
    finally:
        recorder.stop(wait=False)
        upstream.stop(wait=False)


@pytest.mark.slow
def test_recordings_exported_as_a_responses_file_replay_elsewhere_and_driftcheck_reports_shape_changes(pair, tmp_path):
    upstream, recorder = pair
    oai = openai_client(recorder)
    weather = [{"role": "user", "content": "what's the weather?"}]
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    oai.chat.completions.create(model="gpt-4o", messages=weather, tools=tools)
    capital = oai.chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content
    with anthropic_client(recorder).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=[
            {"role": "user", "content": "tell me a story"}]) as events:
        story = events.get_final_text()
    settled_count(upstream, 3)

    unchanged = recorder.manage("driftcheck", check=False)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "3 recordings checked, 0 drifted" in unchanged.stdout

    exported = recorder.manage("dumpresponses", "--recordings").stdout
    assert exported.count("recorded: ") == 3 and "get_weather" in exported
    replayer = make_server(tmp_path / "ci", responses=exported).start()  # recording off, no upstream
    try:
        oai_ci = openai_client(replayer)
        call = oai_ci.chat.completions.create(model="gpt-4o", messages=weather, tools=tools).choices[0]
        assert call.message.tool_calls[0].function.name == "get_weather"
        assert oai_ci.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content == capital
        assert anthropic_client(replayer).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[
            {"role": "user", "content": "tell me a story"}]).content[0].text == story
    finally:
        replayer.stop(wait=False)

    upstream.responses_file.write_text(UPSTREAM_RESPONSES.replace(
        "tool_calls: [{name: get_weather, arguments: {city: Paris}}]",
        "tool_calls: [{name: get_forecast, arguments: {city: Paris}}]").replace(
        '"The capital of France is Paris."', '"Paris, of course."'))  # a new text is not drift
    upstream.manage("loadresponses", str(upstream.responses_file))
    wait_for(lambda: "get_forecast" in httpx.post(f"{upstream.url}/v1/chat/completions", timeout=15, json={
        "model": "gpt-4o", "messages": weather}).text)
    drifted = recorder.manage("driftcheck", check=False)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "tools called: get_weather -> get_forecast" in drifted.stdout
    assert "3 recordings checked, 1 drifted" in drifted.stdout


def test_record_all_forwards_every_request_and_replaces_its_recording(tmp_path):
    upstream = make_server(tmp_path / "upstream", responses=UPSTREAM_RESPONSES,
                           MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN).start()
    recorder = make_server(tmp_path / "recorder", responses=LOCAL_RESPONSES, MOCKLLM_RECORD="all",
                           MOCKLLM_UPSTREAM_OPENAI=upstream.url).start()
    try:
        for attempt in (1, 2):
            answer = httpx.post(f"{recorder.url}/v1/chat/completions", timeout=30, json={
                "model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
            assert answer.json()["choices"][0]["message"]["content"] == "Hello from upstream."  # not hand-written
            assert settled_count(upstream, attempt) == attempt
        wait_for(lambda: recorded_rows(recorder) == [("hello", "Hello from upstream.")])
    finally:
        recorder.stop(wait=False)
        upstream.stop(wait=False)
