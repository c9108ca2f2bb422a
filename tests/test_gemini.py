"""The Gemini API as google-genai speaks it, against a real server: plain, async and streamed answers,
function calling, structured output, token counts, embeddings, models, errors, faults and keys."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import pydantic
import pytest
import yaml
from google import genai
from google.genai import errors, types

from responses_app.providers.openai_embeddings import vector_for

from .support import QA_BOT_KEY, control, create_api_key, make_server, wait_for

MODEL = "gemini-2.5-flash"
PLAIN = ("what colour is the sky?", "The sky is blue on a clear day.")
WEATHER_PROMPT, WEATHER_ANSWER = "what is the weather in lisbon?", "It is 21 degrees and sunny in Lisbon."
RECORD_PROMPT = "describe the weather in lisbon as a record"
RECORD = {"city": "Lisbon", "degrees": 21, "sunny": True}
FIXED_VECTOR = [0.25, 0.5, 0.75]
RESPONSES = yaml.safe_dump({"responses": [
    {"match": PLAIN[0], "response": PLAIN[1]},
    {"match": WEATHER_PROMPT, "has_tool_result": True, "response": WEATHER_ANSWER},
    {"match": WEATHER_PROMPT, "response": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Lisbon"}}]}},
    {"match": RECORD_PROMPT, "response": json.dumps(RECORD)},
    {"match": "which api is this?", "provider": "gemini", "response": "Gemini's own answer."},
    {"match": "which api is this?", "response": "Any other API's answer."},
    {"match": "a fixed vector", "embedding": FIXED_VECTOR},
], "defaults": {"unknown_response": "no canned answer"}}, sort_keys=False)


class Weather(pydantic.BaseModel):
    city: str
    degrees: int
    sunny: bool


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("gemini"), responses=RESPONSES).start()
    yield server
    server.stop(wait=False)


def client(srv, *, api_version: str | None = None, headers: dict | None = None, api_key: str = "gemini-key"):
    options: dict = {"base_url": srv.url, "headers": headers or {}}
    if api_version:
        options["api_version"] = api_version
    return genai.Client(api_key=api_key, http_options=options)


@pytest.mark.parametrize("api_version", [None, "v1beta"])  # google-genai's default is v1
def test_generate_content(srv, api_version):
    gemini = client(srv, api_version=api_version)  # held: a collected genai.Client closes its connections
    response = gemini.models.generate_content(model=MODEL, contents=PLAIN[0])
    assert response.text == PLAIN[1]
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == MODEL and response.response_id


def test_generate_content_async_and_streamed(srv):
    async def run():
        gemini = client(srv)
        models = gemini.aio.models
        answer = await models.generate_content(model=MODEL, contents=PLAIN[0])
        chunks = [chunk async for chunk in await models.generate_content_stream(model=MODEL, contents=PLAIN[0])]
        return answer, chunks

    answer, chunks = asyncio.run(run())
    assert answer.text == PLAIN[1]
    assert len(chunks) > 1 and "".join(chunk.text or "" for chunk in chunks) == PLAIN[1]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count > 0
    assert all(chunk.candidates[0].finish_reason is None for chunk in chunks[:-1])
    assert len({chunk.response_id for chunk in chunks}) == 1


def test_stream_is_sse_without_done(srv):
    gemini = client(srv)
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents=PLAIN[0]))
    assert "".join(chunk.text for chunk in chunks) == PLAIN[1] and len(chunks) == len(PLAIN[1])
    raw = httpx.post(f"{srv.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                     json={"contents": [{"parts": [{"text": PLAIN[0]}]}]})
    assert raw.headers["content-type"].startswith("text/event-stream")
    records = [line[len("data: "):] for line in raw.text.split("\r\n\r\n") if line]
    assert all(json.loads(record)["candidates"] for record in records) and "[DONE]" not in raw.text


def test_stream_without_alt_sse_is_one_json_array(srv):
    raw = httpx.post(f"{srv.url}/v1beta/models/{MODEL}:streamGenerateContent",
                     json={"contents": [{"role": "user", "parts": [{"text": PLAIN[0]}]}]})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/json")
    chunks = raw.json()
    assert isinstance(chunks, list) and len(chunks) == len(PLAIN[1])
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == PLAIN[1]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and "usageMetadata" in chunks[-1]


def test_function_calling_round_trip(srv):
    gemini = client(srv)
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="The current weather in a city",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])
    config = types.GenerateContentConfig(tools=[tool])
    question = types.Content(role="user", parts=[types.Part.from_text(text=WEATHER_PROMPT)])
    first = gemini.models.generate_content(model=MODEL, contents=[question], config=config)
    [call] = first.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Lisbon"}) and call.id
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    result = types.Part(function_response=types.FunctionResponse(id=call.id, name=call.name,
                                                                  response={"output": "21 degrees, sunny"}))
    second = gemini.models.generate_content(
        model=MODEL, contents=[question, first.candidates[0].content, types.Content(role="user", parts=[result])],
        config=config)
    assert second.text == WEATHER_ANSWER and not second.function_calls


def test_automatic_function_calling_runs_the_python_function(srv):
    called = []

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        called.append(city)
        return "21 degrees, sunny"

    gemini = client(srv)
    response = gemini.models.generate_content(
        model=MODEL, contents=WEATHER_PROMPT, config=types.GenerateContentConfig(tools=[get_weather]))
    assert called == ["Lisbon"] and response.text == WEATHER_ANSWER


def test_forced_function_call_without_an_entry(srv):
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="lookup", parameters=types.Schema(type="OBJECT", properties={"id": types.Schema(type="INTEGER")},
                                               required=["id"]))])
    config = types.GenerateContentConfig(tools=[tool], tool_config=types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["lookup"])),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    gemini = client(srv)
    response = gemini.models.generate_content(model=MODEL, contents="nothing canned", config=config)
    [call] = response.function_calls
    assert (call.name, call.args) == ("lookup", {"id": 0})


def test_structured_output_with_a_pydantic_schema(srv):
    gemini = client(srv)
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Weather)
    canned = gemini.models.generate_content(model=MODEL, contents=RECORD_PROMPT, config=config)
    assert canned.parsed == Weather(**RECORD)
    minimal = gemini.models.generate_content(model=MODEL, contents="no entry for this", config=config)
    assert minimal.parsed == Weather(city="", degrees=0, sunny=False)
    json_schema = types.GenerateContentConfig(response_mime_type="application/json",
                                              response_json_schema=Weather.model_json_schema())
    assert json.loads(gemini.models.generate_content(model=MODEL, contents=RECORD_PROMPT, config=json_schema).text) == RECORD


def test_count_tokens_agrees_with_usage(srv):
    gemini = client(srv)
    counted = gemini.models.count_tokens(model=MODEL, contents=PLAIN[0])
    answered = gemini.models.generate_content(model=MODEL, contents=PLAIN[0])
    assert counted.total_tokens == answered.usage_metadata.prompt_token_count > 0


def test_embed_content(srv):
    gemini = client(srv)
    result = gemini.models.embed_content(model="gemini-embedding-001", contents=["red apples", "a fixed vector"],
                                         config=types.EmbedContentConfig(output_dimensionality=8))
    derived, fixed = (embedding.values for embedding in result.embeddings)
    assert derived == pytest.approx(vector_for("red apples", 8)) and fixed == FIXED_VECTOR
    single = httpx.post(f"{srv.url}/v1beta/models/gemini-embedding-001:embedContent",
                        json={"content": {"parts": [{"text": "red apples"}]}, "outputDimensionality": 8}).json()
    assert single["embedding"]["values"] == pytest.approx(derived)


def test_models_list_and_get(srv):
    gemini = client(srv, api_version="v1beta")
    names = [model.name for model in gemini.models.list()]
    assert f"models/{MODEL}" in names
    assert gemini.models.get(model=MODEL).supported_actions == ["generateContent", "countTokens"]
    on_v1 = client(srv)  # GET /v1/models: Gemini's list for a request with x-goog-api-key, OpenAI's otherwise
    assert [model.name for model in on_v1.models.list()] == names
    assert httpx.get(f"{srv.url}/v1/models").json()["object"] == "list"
    with pytest.raises(errors.ClientError) as raised:
        gemini.models.get(model="no-such-model")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")


def test_an_entry_restricted_to_gemini(srv):
    gemini = client(srv)
    assert gemini.models.generate_content(model=MODEL, contents="which api is this?").text == "Gemini's own answer."
    openai_answer = httpx.post(f"{srv.url}/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "which api is this?"}]}).json()
    assert openai_answer["choices"][0]["message"]["content"] == "Any other API's answer."


def test_429_is_a_client_error_with_the_status(srv):
    gemini = client(srv, headers={"X-Mock-Status": "429"})
    with pytest.raises(errors.ClientError) as raised:
        gemini.models.generate_content(model=MODEL, contents=PLAIN[0])
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.response.headers["retry-after"] == "1"
    plain = client(srv)
    with pytest.raises(errors.ServerError) as server_error:
        plain.models.generate_content(model="mock-error-503", contents=PLAIN[0])
    assert (server_error.value.code, server_error.value.status) == (503, "UNAVAILABLE")


def test_a_mid_stream_error_is_raised_by_the_sdk(srv):
    gemini = client(srv, headers={"X-Mock-Stream-Error": "error; after_chunks=3"})
    received = []
    with pytest.raises(errors.ServerError) as raised:
        for chunk in gemini.models.generate_content_stream(model=MODEL, contents=PLAIN[0]):
            received.append(chunk.text)
    assert received == list(PLAIN[1][:3]) and raised.value.code == 500 and raised.value.status == "INTERNAL"


def test_bad_requests_are_invalid_argument(srv):
    gemini = client(srv)
    with pytest.raises(errors.ClientError) as raised:
        gemini.models.generate_content(model=MODEL, contents=PLAIN[0],
                                       config=types.GenerateContentConfig(candidate_count=99))
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert "candidateCount" in raised.value.message


def test_keys_in_the_header_or_the_query_are_known_and_never_kept(control_server):
    run = {"X-Mock-Test-Id": "gemini-keys"}
    gemini = client(control_server, headers=run, api_key=QA_BOT_KEY)
    gemini.models.generate_content(model=MODEL, contents="hello")
    httpx.post(f"{control_server.url}/v1beta/models/{MODEL}:generateContent?key={QA_BOT_KEY}", headers=run,
               json={"contents": [{"parts": [{"text": "hello"}]}]}).raise_for_status()
    found = control(control_server, "GET", "journal", params={"test_id": "gemini-keys", "wait": 10, "min_count": 2}).json()
    assert found["total"] == 2
    assert [(row["api_key_name"], row["provider"], row["model"]) for row in found["data"]] == [("qa-bot", "gemini", MODEL)] * 2
    assert QA_BOT_KEY not in json.dumps(found) and QA_BOT_KEY not in control_server.log()


def test_required_keys_refuse_a_wrong_gemini_key(tmp_path):
    server = make_server(tmp_path, MOCKLLM_REQUIRE_API_KEY="1")
    create_api_key(server, "gemini-bot", "AIzaSyA-gemini-key-0123456789")
    server.start()
    try:
        known, unknown = client(server, api_key="AIzaSyA-gemini-key-0123456789"), client(server, api_key="AIzaSyA-wrong-0123456789")
        assert known.models.generate_content(model=MODEL, contents="hello").text
        with pytest.raises(errors.ClientError) as raised:
            unknown.models.generate_content(model=MODEL, contents="hello")
        assert (raised.value.code, raised.value.status) == (401, "UNAUTHENTICATED")
        by_query = httpx.post(f"{server.url}/v1beta/models/{MODEL}:generateContent?key=AIzaSyA-gemini-key-0123456789",
                              json={"contents": [{"parts": [{"text": "hello"}]}]})
        assert by_query.status_code == 200
        assert "gemini-key-0123456789" not in server.log() and "wrong-0123456789" not in server.log()
    finally:
        server.stop()


def test_uvicorn_access_log_redacts_a_key_in_the_query(tmp_path):
    server = make_server(tmp_path).start(argv=[
        sys.executable, "-m", "uvicorn", "mockllm_site.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
        "--lifespan", "off"])  # with uvicorn's own access log on
    try:
        answered = httpx.post(f"{server.url}/v1beta/models/{MODEL}:generateContent?key=AIzaSyA-uvicorn-key-0123456789",
                              json={"contents": [{"parts": [{"text": "hello"}]}]})
        assert answered.status_code == 200
        wait_for(lambda: "generateContent?key=[redacted]" in server.log(), message=server.log)
        assert "uvicorn-key-0123456789" not in server.log()
    finally:
        server.stop()


DETAILS = yaml.safe_dump({"responses": [
    {"match": "think hard", "response": {"thinking": "Two and two make four.", "text": "4"}},
    {"match": "cut me off", "response": {"text": "This answer stops short", "finish_reason": "length",
                                         "id": "fixed-response-id"}},
    {"match": "slowly", "response": "one two three", "timing": {"ttft_ms": 300}},
], "settings": {"rate_limits": {"requests_per_minute": 2}}}, sort_keys=False)


def test_thinking_finish_reasons_fixed_ids_pacing_and_rate_limits(tmp_path):
    server = make_server(tmp_path, responses=DETAILS).start()
    try:
        gemini = client(server, headers={"X-Mock-Test-Id": "details-1"})
        thought = gemini.models.generate_content(model=MODEL, contents="think hard", config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)))
        parts = thought.candidates[0].content.parts
        assert [(p.thought, p.text) for p in parts] == [(True, "Two and two make four."), (None, "4")]
        assert thought.text == "4"
        cut = gemini.models.generate_content(model=MODEL, contents="cut me off")
        assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS and cut.response_id == "fixed-response-id"
        with pytest.raises(errors.ClientError) as limited:  # the third request within the minute
            gemini.models.generate_content(model=MODEL, contents="think hard")
        assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
        assert int(limited.value.response.headers["retry-after"]) >= 1
        # Another test run has a budget of its own; the entry's time to first token holds the stream back.
        paced = client(server, headers={"X-Mock-Test-Id": "details-2"})
        started = time.monotonic()
        chunks = paced.models.generate_content_stream(model=MODEL, contents="slowly")
        first = next(iter(chunks))
        assert time.monotonic() - started >= 0.3 and first.text == "o"
    finally:
        server.stop()


def test_a_test_run_sees_its_own_gemini_entries(control_server):
    run = "gemini-run-7"
    added = control(control_server, "POST", "responses", headers={"X-Mock-Test-Id": run},
                    json={"match": "who answers?", "provider": "gemini", "response": "this run's Gemini entry"})
    assert added.status_code == 201, added.text
    inside, outside = client(control_server, headers={"X-Mock-Test-Id": run}), client(control_server)
    assert inside.models.generate_content(model=MODEL, contents="who answers?").text == "this run's Gemini entry"
    assert outside.models.generate_content(model=MODEL, contents="who answers?").text != "this run's Gemini entry"
