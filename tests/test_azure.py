"""Azure OpenAI, driven by the official openai SDK's `AzureOpenAI` client (and the plain `OpenAI` client on the
/openai/v1/ paths): deployments and api-version, Azure's content-filter annotations and refusals, its error
shapes, the `api-key` header, and the same canned set, faults, retries and journal as every provider."""
from __future__ import annotations

import http.client
import json

import httpx
import openai
import pydantic
import pytest
import yaml

from .support import QA_BOT_KEY, control, create_api_key, make_server, wait_for

API_VERSION = "2024-10-21"
WEATHER = {"city": "Paris", "degrees": 21, "sunny": True}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SAFE = {"filtered": False, "severity": "safe"}
NOT_DETECTED = {"filtered": False, "detected": False}
PROMPT_RESULTS = {"hate": SAFE, "jailbreak": NOT_DETECTED, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
COMPLETION_RESULTS = {"hate": SAFE, "protected_material_code": NOT_DETECTED, "protected_material_text": NOT_DETECTED,
                      "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
RESPONSES = yaml.safe_dump({
    "responses": [
        {"match": "hello azure", "response": "Hello from the deployment."},
        {"match": "which cloud?", "provider": "azure", "response": "Azure."},
        {"match": "which cloud?", "provider": "openai", "response": "OpenAI."},
        {"match": "weather in Paris?", "has_tool_result": True, "response": "It is sunny in Paris, 21 degrees."},
        {"match": "weather in Paris?", "response": {"tool_calls": [{"name": "get_weather",
                                                                    "arguments": {"city": "Paris"}}]}},
        {"match": "weather record", "response": json.dumps(WEATHER)},
        {"match": "a prompt the filter stops", "content_filter": {"on": "prompt", "category": "self_harm",
                                                                  "severity": "medium"}},
        {"match": "an answer the filter stops", "response": "Never sent.", "content_filter": "completion"},
    ],
    "settings": {"models": {"flaky-*": {"failures": {"rate": 0.5, "statuses": [429], "seed": 1}}}},
}, sort_keys=False)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("azure"), responses=RESPONSES).start(daphne=True)
    yield server
    server.stop(wait=False)


def azure(srv, **options) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=srv.url, api_version=API_VERSION,
                              api_key=options.pop("api_key", "azure-key-0123456789"),
                              max_retries=options.pop("max_retries", 0), **options)


def ask(client, prompt: str, model: str = "gpt-4o-deployment", **body):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], **body)


# --- the AzureOpenAI client --------------------------------------------------------------------------

def test_chat_answers_with_the_filter_results(srv):
    reply = ask(azure(srv, _strict_response_validation=True), "hello azure")
    assert reply.choices[0].message.content == "Hello from the deployment."
    assert reply.model == "gpt-4o-deployment" and reply.choices[0].finish_reason == "stop"
    assert reply.model_extra["prompt_filter_results"] == [{"prompt_index": 0, "content_filter_results": PROMPT_RESULTS}]
    assert reply.choices[0].model_extra["content_filter_results"] == COMPLETION_RESULTS
    [line] = wait_for_log(srv, "/openai/deployments/gpt-4o-deployment/chat/completions")
    assert (line["provider"], line["endpoint"], line["status"]) == ("azure", "chat", 200)


def wait_for_log(srv, path: str, count: int = 1) -> list[dict]:
    def lines() -> list[dict]:
        return [line for line in srv.log_events("request") if line["path"] == path]
    wait_for(lambda: len(lines()) >= count, message=lambda: f"{path} was logged {len(lines())} times")
    return lines()


def test_a_stream_starts_with_the_prompt_results_and_ends_with_usage(srv):
    client = azure(srv)
    chunks = list(ask(client, "hello azure", stream=True, stream_options={"include_usage": True}))
    first, *rest = chunks
    assert first.choices == [] and first.id == "" and first.created == 0
    assert first.model_extra["prompt_filter_results"][0]["content_filter_results"] == PROMPT_RESULTS
    text = "".join(chunk.choices[0].delta.content or "" for chunk in rest if chunk.choices)
    assert text == "Hello from the deployment."
    graded = {category: SAFE for category in ("hate", "self_harm", "sexual", "violence")}
    assert all(chunk.choices[0].model_extra["content_filter_results"] == graded
               for chunk in rest if chunk.choices and chunk.choices[0].delta.content)
    assert [c.choices[0].finish_reason for c in rest if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert rest[-1].choices == [] and rest[-1].usage.completion_tokens > 0
    # The SDK's stream helper copes with the choiceless first chunk too.
    with client.chat.completions.stream(model="gpt-4o-deployment", stream_options={"include_usage": True},
                                        messages=[{"role": "user", "content": "hello azure"}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == text and final.usage.total_tokens > 0


def test_a_tool_round_trip(srv):
    client = azure(srv, _strict_response_validation=True)
    messages = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o-deployment", messages=messages, tools=[WEATHER_TOOL])
    [call] = first.choices[0].message.tool_calls
    assert (first.choices[0].finish_reason, call.function.name, json.loads(call.function.arguments)) == \
        ("tool_calls", "get_weather", {"city": "Paris"})
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21"}]
    final = client.chat.completions.create(model="gpt-4o-deployment", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "It is sunny in Paris, 21 degrees."


def test_parse_with_a_pydantic_model(srv):
    class Weather(pydantic.BaseModel):
        city: str
        degrees: int
        sunny: bool

    reply = azure(srv).chat.completions.parse(model="gpt-4o-deployment", response_format=Weather,
                                              messages=[{"role": "user", "content": "weather record"}])
    assert reply.choices[0].message.parsed == Weather(**WEATHER)


def test_embeddings_are_the_openai_vectors(srv):
    found = azure(srv).embeddings.create(  # (strict validation refuses the base64 the SDK asks for and decodes)
        model="embedding-deployment", input=["red apples", "green pears"], dimensions=64)
    assert [len(item.embedding) for item in found.data] == [64, 64] and found.model == "embedding-deployment"
    same = httpx.post(f"{srv.url}/v1/embeddings", json={"model": "m", "input": "red apples", "dimensions": 64}).json()
    assert found.data[0].embedding == pytest.approx(same["data"][0]["embedding"], rel=1e-6)  # float32 on the wire


def test_a_429_with_retry_after_is_retried_by_the_sdk(srv):
    # flaky-*: the first request fails with a 429 (retry-after 1 s), the second answers (seeded draws).
    reply = ask(azure(srv, max_retries=2), "hello azure", model="flaky-deployment")
    assert reply.choices[0].message.content == "Hello from the deployment."
    attempts = wait_for_log(srv, "/openai/deployments/flaky-deployment/chat/completions", 2)
    assert [line["status"] for line in attempts] == [429, 200]


def test_responses_and_models_through_the_azure_client(srv):
    client = azure(srv, _strict_response_validation=True)
    answer = client.responses.create(model="gpt-4o-deployment", input="hello azure")
    assert answer.output_text == "Hello from the deployment."
    assert "gpt-4o" in [model.id for model in client.models.list()]


def test_entries_for_azure_answer_azure_and_openai_entries_answer_openai(srv):
    assert ask(azure(srv), "which cloud?").choices[0].message.content == "Azure."
    plain = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="sk-test", max_retries=0)
    assert ask(plain, "which cloud?").choices[0].message.content == "OpenAI."


def test_the_plain_openai_client_on_the_v1_paths(srv):
    client = openai.OpenAI(base_url=f"{srv.url}/openai/v1", api_key="azure-key", max_retries=0,
                           _strict_response_validation=True)
    reply = ask(client, "which cloud?", model="gpt-4o")
    assert reply.choices[0].message.content == "Azure."
    assert reply.model_extra["prompt_filter_results"][0]["content_filter_results"] == PROMPT_RESULTS
    assert client.responses.create(model="gpt-4o", input="hello azure").output_text == "Hello from the deployment."
    assert client.completions.create(model="gpt-4o", prompt="hello azure").choices[0].text == \
        "Hello from the deployment."
    assert len(client.embeddings.create(model="e", input="x", dimensions=8, encoding_format="float").data[0].embedding) == 8
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


# --- content filters on demand ------------------------------------------------------------------------

def test_a_filtered_prompt_is_a_400_content_filter(srv):
    with pytest.raises(openai.BadRequestError) as raised:
        ask(azure(srv), "a prompt the filter stops")
    error = raised.value
    assert error.status_code == 400 and error.code == "content_filter" and error.param == "prompt"
    assert error.body["innererror"] == {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        **PROMPT_RESULTS, "self_harm": {"filtered": True, "severity": "medium"}}}


def test_a_filtered_completion_finishes_with_content_filter(srv):
    client = azure(srv)
    reply = ask(client, "an answer the filter stops")
    choice = reply.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("content_filter", "")
    assert choice.model_extra["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}
    chunks = list(ask(client, "hello azure", stream=True,
                      extra_headers={"X-Mock-Content-Filter": "completion; category=protected_material_code"}))
    last = [chunk for chunk in chunks if chunk.choices][-1].choices[0]
    assert last.finish_reason == "content_filter"
    assert last.model_extra["content_filter_results"]["protected_material_code"] == {"filtered": True, "detected": True}
    cut = client.responses.create(model="gpt-4o-deployment", input="an answer the filter stops")
    assert (cut.status, cut.incomplete_details.reason, cut.output_text) == ("incomplete", "content_filter", "")
    events = [event.type for event in client.responses.create(model="gpt-4o-deployment", stream=True,
                                                              input="an answer the filter stops")]
    assert events[-1] == "response.incomplete"
    with pytest.raises(openai.ContentFilterFinishReasonError):
        client.chat.completions.parse(model="gpt-4o-deployment", messages=[
            {"role": "user", "content": "an answer the filter stops"}])


def test_legacy_completions_carry_the_filter_results(srv):
    client = azure(srv)
    reply = client.completions.create(model="instruct-deployment", prompt="hello azure")
    assert reply.choices[0].text == "Hello from the deployment."
    assert reply.choices[0].model_extra["content_filter_results"] == COMPLETION_RESULTS
    assert reply.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    chunks = list(client.completions.create(model="instruct-deployment", prompt="hello azure", stream=True))
    assert chunks[0].choices == [] and "prompt_filter_results" in chunks[0].model_extra
    assert "".join(chunk.choices[0].text for chunk in chunks[1:]) == "Hello from the deployment."


# --- raw HTTP: Azure's error shapes, and the connection survives each -------------------------------------

CHAT = "/openai/deployments/gpt-4o-deployment/chat/completions"
GOOD = json.dumps({"messages": [{"role": "user", "content": "hello azure"}]}).encode()
JSON = {"Content-Type": "application/json"}
FILTERED_PROMPT = {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                              "management policy. Please modify your prompt and retry. To learn more about our "
                              "content filtering policies please read our documentation: "
                              "https://go.microsoft.com/fwlink/?linkid=2198766",
                   "type": None, "param": "prompt", "code": "content_filter", "status": 400}
ERRORS = [
    # (name, method, path, headers, body, status, the expected `error` (or the keys it must have))
    ("no api-version", "POST", CHAT, JSON, GOOD, 404, {"code": "404", "message": "Resource not found"}),
    ("no api-version on a model list", "GET", "/openai/models", {}, None, 404,
     {"code": "404", "message": "Resource not found"}),
    ("filtered prompt by header", "POST", CHAT + "?api-version=1", {**JSON, "X-Mock-Content-Filter": "prompt"}, GOOD,
     400, {**FILTERED_PROMPT, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
         **PROMPT_RESULTS, "violence": {"filtered": True, "severity": "high"}}}}),
    ("jailbreak", "POST", CHAT + "?api-version=1", {**JSON, "X-Mock-Content-Filter": "prompt; category=jailbreak"},
     GOOD, 400, {**FILTERED_PROMPT, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
         **PROMPT_RESULTS, "jailbreak": {"filtered": True, "detected": True}}}}),
    ("bad filter header", "POST", CHAT + "?api-version=1", {**JSON, "X-Mock-Content-Filter": "prompt; category=x"},
     GOOD, 400, {"message", "type", "param", "code"}),
    ("bad body", "POST", CHAT + "?api-version=1", JSON, b'{"messages": []}', 400,
     {"message": "`messages` must be a non-empty array.", "type": "invalid_request_error", "param": "messages",
      "code": None}),
    ("malformed json", "POST", "/openai/v1/chat/completions", JSON, b"{nope", 400, {"message", "type", "param", "code"}),
    ("unknown route", "POST", "/openai/v1/nothing", JSON, GOOD, 404, {"code", "message"}),
    ("unknown deployment endpoint", "POST", "/openai/deployments/d/images?api-version=1", JSON, GOOD, 404,
     {"code", "message"}),
    ("wrong method", "GET", CHAT + "?api-version=1", {}, None, 405, {"code", "message"}),
    ("mock status 429", "POST", CHAT + "?api-version=1", {**JSON, "X-Mock-Status": "429"}, GOOD, 429,
     {"code", "message"}),
    ("mock status 503", "POST", "/openai/v1/chat/completions", {**JSON, "X-Mock-Status": "503"}, GOOD, 503,
     {"code", "message"}),
]


@pytest.fixture(scope="module")
def connection(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.connect()
    yield conn
    conn.close()


@pytest.mark.parametrize("name, method, path, headers, payload, status, expected", ERRORS, ids=[e[0] for e in ERRORS])
def test_azure_errors_keep_the_connection(connection, name, method, path, headers, payload, status, expected):
    sock = connection.sock
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == status, body
    assert response.getheader("Content-Type") == "application/json"
    if isinstance(expected, dict):
        assert body["error"] == expected
    else:
        assert set(body["error"]) == expected and body["error"]["message"]
    if status in (404, 405, 429, 503):
        assert body["error"]["code"] == str(status)
    if status == 429:
        assert response.getheader("retry-after") == "1" and response.getheader("retry-after-ms") == "1000"
    connection.request("POST", CHAT + "?api-version=" + API_VERSION, body=GOOD, headers=JSON)
    follow = connection.getresponse()
    assert json.loads(follow.read())["choices"][0]["message"]["content"] == "Hello from the deployment."
    assert connection.sock is sock, "the connection did not survive"


def test_the_deployment_is_the_model_when_the_body_names_none(srv):
    answer = httpx.post(f"{srv.url}/openai/deployments/my-gpt/chat/completions?api-version=1", json={
        "messages": [{"role": "user", "content": "hello azure"}]}).json()
    assert answer["model"] == "my-gpt"
    named = httpx.post(f"{srv.url}/openai/deployments/my-gpt/chat/completions?api-version=1", json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "hello azure"}]}).json()
    assert named["model"] == "gpt-4o"


# --- keys and the journal --------------------------------------------------------------------------------

def test_the_api_key_header_names_the_client_and_never_reaches_the_journal_or_the_log(control_server):
    run = {"X-Mock-Test-Id": "azure-key"}
    ask(azure(control_server, api_key=QA_BOT_KEY, default_headers=run), "hello")
    found = control(control_server, "GET", "journal", params={"test_id": "azure-key", "wait": 10, "min_count": 1})
    [entry] = found.json()["data"]
    assert (entry["provider"], entry["endpoint"], entry["model"], entry["api_key_name"]) == \
        ("azure", "chat", "gpt-4o-deployment", "qa-bot")
    assert entry["path"] == "/openai/deployments/gpt-4o-deployment/chat/completions"
    assert entry["headers"]["api-key"] == "[redacted]"
    assert QA_BOT_KEY not in json.dumps(entry) and QA_BOT_KEY not in control_server.log()


def test_a_required_key_is_read_from_api_key_or_a_bearer_token(new_server):
    srv = new_server(responses=RESPONSES, MOCKLLM_REQUIRE_API_KEY="1")
    create_api_key(srv, "azure-team", "azure-team-key-0123456789")
    assert ask(azure(srv, api_key="azure-team-key-0123456789"), "hello azure").choices[0].message.content == \
        "Hello from the deployment."
    token_client = openai.AzureOpenAI(azure_endpoint=srv.url, api_version=API_VERSION, max_retries=0,
                                      azure_ad_token="azure-team-key-0123456789")
    assert ask(token_client, "hello azure").choices[0].message.content == "Hello from the deployment."
    with pytest.raises(openai.AuthenticationError) as raised:
        ask(azure(srv, api_key="wrong-key-0123456789"), "hello azure")
    assert raised.value.body["code"] == "401" and "Incorrect API key" in raised.value.body["message"]
    missing = httpx.post(f"{srv.url}/openai/v1/chat/completions", json={"model": "m", "messages": []})
    assert missing.status_code == 401 and "api-key: KEY" in missing.json()["error"]["message"]
    assert "azure-team-key-0123456789" not in srv.log()


# --- in this process: the setting, and the content filter in the other formats -----------------------------

def post(client, path: str, body: dict, **headers):
    return client.post(path, body, content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_the_annotations_can_be_turned_off(client, settings):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert "prompt_filter_results" in post(client, "/openai/v1/chat/completions", body).json()
    settings.MOCKLLM_AZURE_CONTENT_FILTER_RESULTS = False
    plain = post(client, "/openai/v1/chat/completions", body).json()
    assert "prompt_filter_results" not in plain and "content_filter_results" not in plain["choices"][0]
    streamed = post(client, "/openai/v1/chat/completions", {**body, "stream": True})

    stream = b"".join(streamed)  # a short stream is made in full (api/sse.py, whole_stream)
    assert stream.startswith(b'data: {"id":')  # no choiceless first chunk either
    assert b"prompt_filter_results" not in stream and b"content_filter_results" not in stream


@pytest.mark.django_db
def test_the_content_filter_fault_in_the_openai_and_anthropic_formats(client):
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    refused = post(client, "/v1/chat/completions", chat, **{"X-Mock-Content-Filter": "prompt"})
    assert refused.status_code == 400
    assert refused.json()["error"] == {"message": refused.json()["error"]["message"], "type": "invalid_request_error",
                                       "param": "prompt", "code": "content_filter"}
    cut = post(client, "/v1/chat/completions", chat, **{"X-Mock-Content-Filter": "completion"}).json()
    assert cut["choices"][0]["finish_reason"] == "content_filter" and cut["choices"][0]["message"]["content"] == ""
    messages = {"model": "c", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    claude = post(client, "/v1/messages", messages, **{"X-Mock-Content-Filter": "completion"}).json()
    assert claude["stop_reason"] == "refusal"
    refused = post(client, "/v1/messages", messages, **{"X-Mock-Content-Filter": "prompt"})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
