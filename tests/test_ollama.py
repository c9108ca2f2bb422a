"""Ollama (/api/...) driven by the `ollama` Python client and LangChain's ChatOllama against a real server:
chat and generate, streamed (NDJSON, the default) and not, embeddings, tools, structured output, thinking,
the model endpoints, errors, faults, pacing, rate limits, test runs, API keys and the journal."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import ollama
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings
from pydantic import BaseModel

from responses_app.canned.conversation import Reply, ToolCall
from responses_app.canned.matching import Match
from responses_app.providers import ollama_chat, ollama_generate

from .support import CONTROL_TOKEN, control, create_api_key, make_server

SKY = "what colour is the sky?"
SKY_ANSWER = "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
RESPONSES = f"""
responses:
  - match: {json.dumps(SKY)}
    response: {json.dumps(SKY_ANSWER)}
  - match: "what is the weather in paris?"
    turns:
      - tool_calls:
          - {{name: get_weather, arguments: {{city: Paris, unit: celsius}}}}
      - "It is 21 degrees and sunny in Paris."
  - match: "think hard"
    response:
      thinking: "Two and two make four."
      text: "4"
  - match: "who answers?"
    provider: ollama
    response: "Ollama does."
  - match: "who answers?"
    response: "Someone else."
  - match: "cut me off"
    response:
      text: "This answer stops short"
      finish_reason: length
  - match: "the quick brown fox"
    embedding: [0.1, 0.2, 0.3, 0.4]
defaults:
  unknown_response: "I don't know the answer to that. This is a mock response."
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("ollama"), responses=RESPONSES,
                         MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN).start()
    yield server
    server.stop(wait=False)


@pytest.fixture(scope="module")
def client(srv):
    return ollama.Client(host=srv.url)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def ndjson(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


# --- chat ------------------------------------------------------------------------------------------

def test_every_streamed_line_is_one_json_object_and_the_last_is_done():
    reply = Reply(text="Hi there", thinking="Hmm", tool_calls=(ToolCall("f", '{"a": [1, "x"]}', id="call_1"),))
    match = Match(None, reply, "default")
    chat = ollama_chat.parse({"model": "m", "messages": user("q"), "think": True})
    generate = ollama_generate.parse({"model": "m", "prompt": "q", "think": True})
    for provider, request, text_of in ((ollama_chat, chat, lambda line: line["message"]["content"]),
                                       (ollama_generate, generate, lambda line: line["response"])):
        ids = provider.new_ids()  # the same time on both
        raw = list(provider.render_stream(request, match, ids, "word"))
        assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in raw)
        lines = [json.loads(line) for line in raw]
        assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
        assert "".join(text_of(line) for line in lines) == "Hi there"
        assert "".join(line.get("thinking") or line.get("message", {}).get("thinking", "") for line in lines) == "Hmm"
        whole = json.loads(provider.render_json(request, match, ids))
        assert {k: v for k, v in whole.items() if k not in ("message", "response", "thinking")} == \
            {k: v for k, v in lines[-1].items() if k not in ("message", "response")}
    calls = [call for line in (json.loads(raw) for raw in ollama_chat.render_stream(chat, match, ollama_chat.new_ids()))
             for call in line["message"].get("tool_calls", [])]
    assert calls == [{"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": [1, "x"]}}}]


def test_chat_answers_the_canned_message_with_counts_and_durations(client):
    reply = client.chat(model="llama3.2", messages=user(SKY), stream=False)
    assert reply.message.role == "assistant" and reply.message.content == SKY_ANSWER
    assert reply.done and reply.done_reason == "stop" and reply.model == "llama3.2"
    assert (reply.prompt_eval_count, reply.eval_count) == (7, 24)  # as /v1/chat/completions counts them
    assert 0 < reply.load_duration < reply.total_duration
    assert reply.total_duration == reply.load_duration + reply.prompt_eval_duration + reply.eval_duration
    assert reply.created_at.endswith("Z")


def test_chat_streams_by_default_one_json_object_per_line(srv):
    response = httpx.post(f"{srv.url}/api/chat", json={"model": "llama3.2", "messages": user(SKY)})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(response)
    assert [line["done"] for line in lines] == [False] * len(SKY_ANSWER) + [True]
    assert "".join(line["message"]["content"] for line in lines) == SKY_ANSWER
    assert "done_reason" not in lines[0] and "eval_count" not in lines[0]
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] == 24


def test_chat_streamed_by_the_client_adds_up_to_the_answer(client):
    parts = list(client.chat(model="llama3.2", messages=user(SKY), stream=True))
    assert "".join(part.message.content for part in parts) == SKY_ANSWER
    assert [part.done for part in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == 24


def test_the_async_client_streams_and_answers(srv):
    async def run():
        async_client = ollama.AsyncClient(host=srv.url)
        whole = await async_client.chat(model="llama3.2", messages=user(SKY))
        pieces = [part.message.content async for part in await async_client.chat(
            model="llama3.2", messages=user(SKY), stream=True)]
        return whole, pieces

    whole, pieces = asyncio.run(run())
    assert whole.message.content == SKY_ANSWER and "".join(pieces) == SKY_ANSWER


def test_a_body_sent_without_a_json_content_type_is_read_as_ollama_does(srv):
    body = json.dumps({"model": "m", "messages": user(SKY), "stream": False})
    response = httpx.post(f"{srv.url}/api/chat", content=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # what `curl -d` sends
    assert response.status_code == 200 and response.json()["message"]["content"] == SKY_ANSWER


def test_a_finish_reason_of_length_is_reported(client):
    assert client.chat(model="m", messages=user("cut me off")).done_reason == "length"


def test_an_entry_restricted_to_ollama_answers_only_ollama(srv, client):
    assert client.chat(model="m", messages=user("who answers?")).message.content == "Ollama does."
    openai_reply = httpx.post(f"{srv.url}/v1/chat/completions", json={"model": "m", "messages": user("who answers?")})
    assert openai_reply.json()["choices"][0]["message"]["content"] == "Someone else."


def test_thinking_is_sent_when_asked_for(client):
    reply = client.chat(model="qwen3", messages=user("think hard"), think=True)
    assert (reply.message.thinking, reply.message.content) == ("Two and two make four.", "4")
    parts = list(client.chat(model="qwen3", messages=user("think hard"), think="low", stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "Two and two make four."
    assert "".join(p.message.content for p in parts) == "4"
    assert client.chat(model="qwen3", messages=user("think hard")).message.thinking is None


def test_a_request_with_nothing_to_answer_loads_the_model(srv, client):
    loaded = client.chat(model="llama3.2")  # no messages: what clients send to load a model ahead of use
    assert (loaded.done, loaded.done_reason, loaded.message.content) == (True, "load", "")
    assert client.generate(model="llama3.2").done_reason == "load"
    streamed = ndjson(httpx.post(f"{srv.url}/api/chat", json={"model": "llama3.2", "messages": []}))
    assert [(line["done"], line["done_reason"]) for line in streamed] == [(True, "load")]


# --- tools and structured output -------------------------------------------------------------------

def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather in a city.

    Args:
      city: The city
      unit: celsius or fahrenheit

    Returns:
      str: the weather
    """
    return f"21 degrees {unit} in {city}"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip(client, stream):
    messages = user("what is the weather in paris?")
    first = client.chat(model="llama3.2", messages=messages, tools=[get_weather], stream=stream)
    if stream:
        parts = list(first)
        calls = [call for part in parts if part.message.tool_calls for call in part.message.tool_calls]
        assert parts[-1].done and parts[-1].done_reason == "stop"
        message = ollama.Message(role="assistant", content="", tool_calls=calls)
    else:
        message, calls = first.message, first.message.tool_calls
    assert [(call.function.name, dict(call.function.arguments)) for call in calls] == \
        [("get_weather", {"city": "Paris", "unit": "celsius"})]
    result = get_weather(**calls[0].function.arguments)
    messages += [message, {"role": "tool", "content": result, "tool_name": "get_weather"}]
    final = client.chat(model="llama3.2", messages=messages, tools=[get_weather])
    assert final.message.content == "It is 21 degrees and sunny in Paris." and not final.message.tool_calls


class Country(BaseModel):
    name: str
    capital: str
    languages: list[str]


def test_a_json_schema_format_gets_a_valid_instance(client):
    reply = client.chat(model="llama3.2", messages=user("Tell me about Canada."),
                        format=Country.model_json_schema())
    country = Country.model_validate_json(reply.message.content)
    assert country == Country(name="", capital="", languages=[])
    generated = client.generate(model="llama3.2", prompt="Tell me about Canada.", format=Country.model_json_schema())
    assert Country.model_validate_json(generated.response) == country


def test_json_mode_gets_json(client):
    assert json.loads(client.chat(model="m", messages=user("anything at all"), format="json").message.content) == {}


# --- generate, embeddings, models --------------------------------------------------------------------

def test_generate_answers_streamed_and_not(client):
    reply = client.generate(model="llama3.2", prompt=SKY)
    assert reply.response == SKY_ANSWER and reply.done and reply.done_reason == "stop"
    assert reply.prompt_eval_count > 0 and reply.eval_count == 24
    parts = list(client.generate(model="llama3.2", prompt=SKY, stream=True))
    assert "".join(part.response for part in parts) == SKY_ANSWER and parts[-1].done
    assert client.generate(model="llama3.2", prompt="think hard", think=True).thinking == "Two and two make four."


def test_embed_gives_the_same_vectors_as_v1_embeddings_and_canned_ones(srv, client):
    reply = client.embed(model="nomic-embed-text", input=["hello world", "the quick brown fox"])
    derived, canned = reply.embeddings
    assert canned == [0.1, 0.2, 0.3, 0.4]
    openai_vector = httpx.post(f"{srv.url}/v1/embeddings", json={"model": "m", "input": "hello world"}).json()
    assert derived == pytest.approx(openai_vector["data"][0]["embedding"])
    assert reply.prompt_eval_count > 0 and reply.model == "nomic-embed-text"
    assert len(client.embed(model="m", input="hello world", dimensions=8).embeddings[0]) == 8
    assert client.embeddings(model="m", prompt="hello world").embedding == pytest.approx(derived)
    assert client.embeddings(model="m", prompt="").embedding == []


def test_the_model_endpoints(srv, client):
    listed = [model.model for model in client.list().models]
    assert "mock-llm:latest" in listed and all(":" in name for name in listed)
    shown = client.show("mock-llm")
    assert shown.details.format == "gguf" and "tools" in shown.capabilities and shown.modelinfo
    assert client.show("mock-llm:latest").details == shown.details
    assert [model.model for model in client.ps().models] == listed
    assert httpx.get(f"{srv.url}/api/version").json()["version"].count(".") == 2


# --- errors, faults, pacing ---------------------------------------------------------------------------

def test_errors_are_raised_as_response_errors_with_their_status(client):
    with pytest.raises(ollama.ResponseError) as unknown:
        client.show("no-such-model")
    assert (unknown.value.status_code, unknown.value.error) == (404, "model 'no-such-model' not found")
    with pytest.raises(ollama.ResponseError) as bad:
        client.chat(model="m", messages=[{"role": "robot", "content": "x"}])
    assert bad.value.status_code == 400 and "messages[0].role" in bad.value.error
    with pytest.raises(ollama.ResponseError) as limited:
        list(client.chat(model="mock-error-429", messages=user(SKY), stream=True))
    assert limited.value.status_code == 429 and "Rate limit" in limited.value.error


def test_a_mid_stream_error_is_a_line_the_client_raises(srv):
    broken = ollama.Client(host=srv.url, headers={"X-Mock-Stream-Error": "error; after_chunks=3"})
    received = []
    with pytest.raises(ollama.ResponseError) as raised:
        for part in broken.chat(model="m", messages=user(SKY), stream=True):
            received.append(part.message.content)
    assert received == list(SKY_ANSWER[:3]) and "mid-stream error" in raised.value.error
    raw = httpx.post(f"{srv.url}/api/chat", json={"model": "m", "messages": user(SKY)},
                     headers={"X-Mock-Stream-Error": "malformed; after_chunks=2"})
    *good, bad = raw.text.splitlines()
    assert len(good) == 2 and all(json.loads(line) for line in good)
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad)


def test_a_paced_stream_sends_its_lines_at_the_pace_asked_for(srv):
    paced = ollama.Client(host=srv.url, headers={"X-Mock-Timing": "ttft_ms=200; chunks_per_second=20; chunk=word"})
    start = time.monotonic()
    arrivals = [(time.monotonic() - start, part.message.content)
                for part in paced.chat(model="m", messages=user(SKY), stream=True)]
    words = len(SKY_ANSWER.split())  # 14 lines of words, then the done line
    assert len(arrivals) == words + 1 and "".join(text for _, text in arrivals) == SKY_ANSWER
    assert arrivals[0][0] >= 0.15  # the time to first token
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread >= 0.5 * words / 20, arrivals  # loosely the pace: ~0.7 s, never all at once
    assert len({round(at, 2) for at, _ in arrivals}) > words // 2


def test_rate_limits_refuse_with_429(new_server):
    limited = new_server(responses="responses: {}\nsettings:\n  rate_limits: {requests_per_minute: 1}\n")
    limited_client = ollama.Client(host=limited.url)
    limited_client.chat(model="m", messages=user("hello"))
    with pytest.raises(ollama.ResponseError) as refused:
        limited_client.chat(model="m", messages=user("hello"))
    assert refused.value.status_code == 429


def test_required_api_keys_apply(tmp_path):
    keyed = make_server(tmp_path, MOCKLLM_REQUIRE_API_KEY="true")
    create_api_key(keyed, "ollama-user", "sk-ollama-0123456789abcdef")
    keyed.start()
    try:
        with pytest.raises(ollama.ResponseError) as refused:
            ollama.Client(host=keyed.url).chat(model="m", messages=user(SKY))
        assert refused.value.status_code == 401
        allowed = ollama.Client(host=keyed.url, headers={"Authorization": "Bearer sk-ollama-0123456789abcdef"})
        assert allowed.chat(model="m", messages=user(SKY)).message.content == SKY_ANSWER
    finally:
        keyed.stop(wait=False)


def test_a_test_run_scripts_its_answer_and_reads_the_journal(srv):
    run = {"X-Mock-Test-Id": "ollama-run"}
    added = control(srv, "POST", "responses", headers=run, json={"match": "ping", "response": "pong from the run"})
    assert added.status_code == 201, added.text
    run_client = ollama.Client(host=srv.url, headers=run)
    assert run_client.chat(model="llama3.2", messages=user("ping")).message.content == "pong from the run"
    list(run_client.generate(model="llama3.2", prompt="ping", stream=True))
    found = control(srv, "GET", "journal", params={"test_id": "ollama-run", "wait": 10, "min_count": 2}).json()
    assert found["total"] == 2, found
    generated, chatted = found["data"]  # newest first
    assert (chatted["provider"], chatted["endpoint"], chatted["path"], chatted["prompt"]) == \
        ("ollama", "chat", "/api/chat", "ping")
    assert (generated["endpoint"], generated["stream"], generated["stream_end"]) == ("generate", True, "completed")
    assert ollama.Client(host=srv.url).chat(model="m", messages=user("ping")).message.content != "pong from the run"


# --- LangChain ---------------------------------------------------------------------------------------

def test_langchain_chat_ollama_streams_the_answer(srv):
    model = ChatOllama(model="llama3.2", base_url=srv.url, validate_model_on_init=False)
    chunks = list(model.stream([HumanMessage(SKY)]))
    assert "".join(chunk.content for chunk in chunks) == SKY_ANSWER
    whole = model.invoke(SKY)
    assert whole.content == SKY_ANSWER
    assert (whole.usage_metadata["input_tokens"], whole.usage_metadata["output_tokens"]) == (7, 24)
    assert whole.response_metadata["done_reason"] == "stop"


@tool("get_weather")
def weather_tool(city: str, unit: str) -> str:
    """Get the current weather in a city."""
    return f"21 degrees {unit} in {city}"


def test_langchain_chat_ollama_calls_a_tool_and_reads_its_result(srv):
    model = ChatOllama(model="mock-llm", base_url=srv.url, validate_model_on_init=True).bind_tools([weather_tool])
    messages = [HumanMessage("what is the weather in paris?")]
    asked = model.invoke(messages)
    assert [(call["name"], call["args"]) for call in asked.tool_calls] == \
        [("get_weather", {"city": "Paris", "unit": "celsius"})]
    messages += [asked, weather_tool.invoke({**asked.tool_calls[0], "type": "tool_call"})]
    assert model.invoke(messages).content == "It is 21 degrees and sunny in Paris."


def test_langchain_structured_output_and_embeddings(srv):
    structured = ChatOllama(model="llama3.2", base_url=srv.url).with_structured_output(Country)
    assert structured.invoke("Tell me about Canada.") == Country(name="", capital="", languages=[])
    embeddings = OllamaEmbeddings(model="nomic-embed-text", base_url=srv.url)
    assert embeddings.embed_query("the quick brown fox") == [0.1, 0.2, 0.3, 0.4]
    assert len(embeddings.embed_documents(["a", "b c"])) == 2
