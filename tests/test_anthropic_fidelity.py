"""What the Anthropic SDK (and LangChain on it, and the OpenAI SDK where the rule is shared) sees of
structured outputs, streamed usage, server-held threads, forced tools and schemas, reason phrases and
near-miss hints."""
from __future__ import annotations

import http.client
import json

import anthropic
import httpx
import pydantic
import pytest

from .support import anthropic_client, make_server, openai_client, wait_for

SKY = "what colour is the sky?"
SKY_ANSWER = "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
UNKNOWN = "no canned answer"
RESPONSES = """\
responses:
  - match: "what colour is the sky?"
    response: "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
  - match: "give me json"
    response: '{"city": "Lisbon", "degrees": 21}'
  - match: "book me a flight to lisbon"
    turns:
      - tool_calls:
          - name: search_flights
            arguments: {destination: LIS}
      - tool_calls:
          - name: book_flight
            arguments: {flight: TP1234}
      - "Booked: TP1234 to Lisbon, leaving 09:40."
  - match: "check the weather"
    response:
      tool_calls:
        - name: get_weather
          arguments: {city: Paris, degrees: 18}
defaults:
  unknown_response: "no canned answer"
"""
MODEL = "claude-haiku-4-5"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                  "required": ["city", "degrees"]}
TOOLS = [
    {"name": "search_flights", "input_schema": {"type": "object", "properties": {"destination": {"type": "string"}}}},
    {"name": "book_flight", "input_schema": {"type": "object", "properties": {"flight": {"type": "string"}}}},
    {"name": "get_weather", "input_schema": WEATHER_SCHEMA},
]


class Weather(pydantic.BaseModel):
    city: str
    degrees: int


def user(text):
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("fidelity"), responses=RESPONSES).start()
    yield server
    server.stop(wait=False)


@pytest.fixture(scope="module")
def an(srv):
    return anthropic_client(srv)


@pytest.fixture(scope="module")
def oa(srv):
    return openai_client(srv)


def post_messages(srv, headers=None, **body):
    return httpx.post(f"{srv.url}/v1/messages", json={"model": MODEL, "max_tokens": 64, **body},
                      headers={"anthropic-version": "2023-06-01", **(headers or {})}, timeout=30)


# --- structured outputs (output_config.format) ---------------------------------------------------

def test_messages_parse_gets_an_instance_of_the_output_format(an):
    message = an.messages.parse(model=MODEL, max_tokens=64, messages=user("what is the weather?"),
                                output_format=Weather)
    assert message.parsed_output == Weather(city="", degrees=0)


def test_a_streamed_output_format_is_parsed_too(an):
    with an.messages.stream(model=MODEL, max_tokens=64, messages=user("what is the weather?"),
                            output_format=Weather) as stream:
        final = stream.get_final_message()
    assert final.parsed_output == Weather(city="", degrees=0)


def test_canned_json_text_is_kept_for_an_output_format(an):
    message = an.messages.parse(model=MODEL, max_tokens=64, messages=user("give me json"), output_format=Weather)
    assert message.parsed_output == Weather(city="Lisbon", degrees=21)


def test_the_output_schema_counts_as_input(an):
    plain = an.messages.count_tokens(model=MODEL, messages=user("what is the weather?")).input_tokens
    with_schema = an.messages.create(model=MODEL, max_tokens=64, messages=user("what is the weather?"),
                                     output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}})
    schema_tokens = an.messages.count_tokens(model=MODEL, messages=user("what is the weather?"),
                                             output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}})
    assert with_schema.usage.input_tokens == schema_tokens.input_tokens > plain


def test_the_older_top_level_output_format_is_read_as_well(srv):
    response = post_messages(srv, messages=user("what is the weather?"),
                             output_format={"type": "json_schema", "schema": WEATHER_SCHEMA})
    assert json.loads(response.json()["content"][0]["text"]) == {"city": "", "degrees": 0}


def test_langchain_json_schema_structured_output(srv):
    from langchain_anthropic import ChatAnthropic

    claude = ChatAnthropic(model=MODEL, base_url=srv.url, api_key="k", max_retries=0, max_tokens=64)
    assert claude.with_structured_output(Weather, method="json_schema").invoke("what is the weather?") == \
        Weather(city="", degrees=0)


# --- streamed usage --------------------------------------------------------------------------------

def test_message_delta_carries_the_cumulative_input_tokens(an):
    events = list(an.messages.create(model=MODEL, max_tokens=64, messages=user(SKY), stream=True))
    delta = events[-2]
    assert delta.type == "message_delta"
    assert (delta.usage.input_tokens, delta.usage.output_tokens) == (7, 24)
    assert (delta.usage.cache_creation_input_tokens, delta.usage.cache_read_input_tokens) == (0, 0)


def test_langchain_streaming_reports_input_tokens(srv):
    from langchain_anthropic import ChatAnthropic

    claude = ChatAnthropic(model=MODEL, base_url=srv.url, api_key="k", max_retries=0, max_tokens=64)
    streamed = None
    for chunk in claude.stream(SKY):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed.text == SKY_ANSWER
    assert streamed.usage_metadata["input_tokens"] == 7
    assert streamed.usage_metadata["output_tokens"] == 24
    assert streamed.usage_metadata["total_tokens"] == 31


# --- reason phrases ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def daphne_srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("daphne"), responses=RESPONSES).start(daphne=True)
    yield server
    server.stop(wait=False)


@pytest.mark.parametrize("status, reason", [(429, "Too Many Requests"), (529, "Site is overloaded"),
                                            (503, "Service Unavailable"), (200, "OK")])
def test_daphne_sends_standard_reason_phrases(daphne_srv, status, reason):
    connection = http.client.HTTPConnection("127.0.0.1", daphne_srv.port, timeout=30)
    try:
        body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": user(SKY)})
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if status != 200:
            headers["x-mock-status"] = str(status)
        connection.request("POST", "/v1/messages", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        assert (response.status, response.reason) == (status, reason)
    finally:
        connection.close()


def test_the_sdk_still_sees_an_overload_under_daphne(daphne_srv):
    client = anthropic_client(daphne_srv)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=8, messages=user(SKY), extra_headers={"x-mock-status": "529"})


# --- near-miss hints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, how", [
    ("What colour is the sky?\n\nAnswer in JSON with the keys city and degrees.", "starts with"),
    ("Context: a clear day. Question: what colour is the sky? Be brief.", "contains"),
])
def test_a_prompt_with_instructions_around_a_canned_prompt_gets_a_hint(an, oa, prompt, how):
    raw = an.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=user(prompt))
    assert raw.parse().content[0].text == UNKNOWN
    hint = raw.headers["x-mockllm-near-miss"]
    assert "'what colour is the sky?'" in hint and how in hint
    raw = oa.chat.completions.with_raw_response.create(model="m", messages=user(prompt))
    assert how in raw.headers["x-mockllm-near-miss"]


def test_a_word_inside_another_is_no_hint(an):
    raw = an.messages.with_raw_response.create(model=MODEL, max_tokens=64,
                                               messages=user("give me jsonl lines, what colour is the skyline?"))
    assert "x-mockllm-near-miss" not in raw.headers


# --- a forced tool or schema never gets plain text ------------------------------------------------------

OPENAI_WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}


def test_a_forced_tool_overrides_an_entrys_text_in_every_format(srv, an, oa):
    raw = an.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=user(SKY), tools=TOOLS,
                                               tool_choice={"type": "tool", "name": "get_weather"})
    message = raw.parse()
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", "get_weather", {"city": "", "degrees": 0})]
    assert message.stop_reason == "tool_use"
    assert "forces" in raw.headers["x-mockllm-warning"] and raw.headers["x-mockllm-match"] == "1"
    with an.messages.stream(model=MODEL, max_tokens=64, messages=user(SKY), tools=TOOLS,
                            tool_choice={"type": "any"}) as stream:
        assert [b.type for b in stream.get_final_message().content] == ["tool_use"]

    raw = oa.chat.completions.with_raw_response.create(model="m", messages=user(SKY), tools=[OPENAI_WEATHER],
                                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = raw.parse().choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "", "degrees": 0})
    assert "x-mockllm-warning" in raw.headers
    chunks = list(oa.chat.completions.create(model="m", messages=user(SKY), tools=[OPENAI_WEATHER],
                                             tool_choice="required", stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]

    response = oa.responses.create(model="m", input=SKY, tool_choice={"type": "function", "name": "get_weather"},
                                   tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}])
    assert [(item.type, item.name) for item in response.output] == [("function_call", "get_weather")]

    warnings = [line for line in srv.log_lines() if line.get("event") == "answer_overridden"]
    assert warnings and warnings[0]["level"] == "WARNING" and warnings[0]["entry"] == 1


def test_an_entry_that_calls_the_forced_tool_is_kept(an):
    raw = an.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=user("check the weather"),
                                               tools=TOOLS, tool_choice={"type": "tool", "name": "get_weather"})
    assert raw.parse().content[0].input == {"city": "Paris", "degrees": 18}
    assert "x-mockllm-warning" not in raw.headers
    scripted = an.messages.create(model=MODEL, max_tokens=64, messages=user("book me a flight to lisbon"), tools=TOOLS,
                                  tool_choice={"type": "any"})
    assert scripted.content[0].name == "search_flights"  # any tool will do


def test_langchain_structured_output_gets_an_instance_where_an_entry_has_text(srv):
    from langchain_anthropic import ChatAnthropic

    claude = ChatAnthropic(model=MODEL, base_url=srv.url, api_key="k", max_retries=0, max_tokens=64)
    assert claude.with_structured_output(Weather).invoke(SKY) == Weather(city="", degrees=0)


def test_an_entrys_json_record_answers_a_forced_tool_too(srv, oa):
    from langchain_anthropic import ChatAnthropic

    claude = ChatAnthropic(model=MODEL, base_url=srv.url, api_key="k", max_retries=0, max_tokens=64)
    assert claude.with_structured_output(Weather).invoke("give me json") == Weather(city="Lisbon", degrees=21)
    raw = oa.chat.completions.with_raw_response.create(model="m", messages=user("give me json"), tools=[OPENAI_WEATHER],
                                                       tool_choice="required")
    call = raw.parse().choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Lisbon", "degrees": 21})
    assert raw.parse().choices[0].finish_reason == "tool_calls" and "x-mockllm-warning" not in raw.headers


def test_a_forced_schema_overrides_an_entrys_plain_text_but_keeps_its_json(an, oa):
    assert an.messages.parse(model=MODEL, max_tokens=64, messages=user(SKY), output_format=Weather).parsed_output == \
        Weather(city="", degrees=0)
    raw = an.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=user(SKY), stream=True,
                                               output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}})
    assert "x-mockllm-warning" in raw.headers
    text = "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta")
    assert json.loads(text) == {"city": "", "degrees": 0}
    raw = oa.chat.completions.with_raw_response.parse(model="m", messages=user(SKY), response_format=Weather)
    assert raw.parse().choices[0].message.parsed == Weather(city="", degrees=0)
    assert "x-mockllm-warning" in raw.headers
    assert oa.responses.parse(model="m", input=SKY, text_format=Weather).output_parsed == Weather(city="", degrees=0)
    kept = oa.chat.completions.with_raw_response.parse(model="m", messages=user("give me json"), response_format=Weather)
    assert kept.parse().choices[0].message.parsed == Weather(city="Lisbon", degrees=21)
    assert "x-mockllm-warning" not in kept.headers


# --- server-held threads -------------------------------------------------------------------------------

def tool_result(message, content):
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": message.content[0].id, "content": content}]}


def thread_turns(srv, model, count=3):
    """(thread turn, status) of the requests for `model`, from the server's log, once it has `count` of them."""
    def turns():
        return [(line.get("thread_turn"), line["status"]) for line in srv.log_lines() if line.get("model") == model]

    wait_for(lambda: len(turns()) >= count, message=lambda: str(turns()))
    return turns()


@pytest.mark.parametrize("streamed", [False, True])
def test_a_thread_sends_only_the_new_turn_and_the_server_keeps_the_rest(srv, an, streamed):
    model = f"thread-model-{streamed}"
    thread = an.beta.messages.thread(model=model, max_tokens=64, tools=TOOLS, system="Be brief.")

    def send(message):
        if not streamed:
            return thread.send(message)
        with thread.stream(message) as stream:
            return stream.get_final_message()

    first = send({"role": "user", "content": "book me a flight to lisbon"})
    assert first.content[0].name == "search_flights"
    second = send(tool_result(first, "TP1234 at 09:40"))
    assert second.content[0].name == "book_flight"
    third = send(tool_result(second, "booked"))
    assert third.content[0].text == "Booked: TP1234 to Lisbon, leaving 09:40."
    assert thread_turns(srv, model) == [("create", 200), ("continue", 200), ("continue", 200)]  # no replay
    # The thread's whole history counts as input: system, tools, both earlier turns and the new one.
    assert third.usage.input_tokens == an.beta.messages.count_tokens(
        model=MODEL, system="Be brief.", tools=TOOLS, messages=list(thread.messages)[:-1]).input_tokens


def test_the_tool_runner_threads_its_turns(srv, an):
    from anthropic import beta_tool

    calls = []

    @beta_tool
    def search_flights(destination: str) -> str:
        """Search flights."""
        calls.append(("search_flights", destination))
        return "TP1234"

    @beta_tool
    def book_flight(flight: str) -> str:
        """Book a flight."""
        calls.append(("book_flight", flight))
        return "booked"

    runner = an.beta.messages.tool_runner(model="runner-model", max_tokens=64, tools=[search_flights, book_flight],
                                          messages=user("book me a flight to lisbon"))
    final = runner.until_done()
    assert calls == [("search_flights", "LIS"), ("book_flight", "TP1234")]
    assert final.content[0].text == "Booked: TP1234 to Lisbon, leaving 09:40."
    assert thread_turns(srv, "runner-model") == [("create", 200), ("continue", 200), ("continue", 200)]


def test_thread_errors_are_the_ones_the_sdk_recovers_from(srv):
    headers = {"x-mock-test-id": "threads-a"}
    created = post_messages(srv, headers, thread={"type": "create"}, messages=user("book me a flight to lisbon"),
                            tools=TOOLS)
    first = created.json()
    assert created.status_code == 200 and first["content"][0]["name"] == "search_flights"
    follow_up = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["content"][0]["id"],
                                                "content": "TP1234"}]}]
    resume = {"type": "continue", "previous_message_id": first["id"]}

    elsewhere = post_messages(srv, {"x-mock-test-id": "threads-b"}, thread=resume, messages=follow_up)
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["type"] == "not_found_error"
    assert elsewhere.json()["error"]["details"] == {"error_code": "thread_not_found"}
    repeated = post_messages(srv, headers, thread=resume, messages=follow_up, system="Be brief.")
    assert repeated.status_code == 400 and "`system`" in repeated.json()["error"]["message"]

    continued = post_messages(srv, headers, thread=resume, messages=follow_up)
    assert continued.status_code == 200 and continued.json()["content"][0]["name"] == "book_flight"
    again = post_messages(srv, headers, thread=resume, messages=follow_up)
    assert again.status_code == 400 and again.json()["error"]["details"] == {"error_code": "thread_already_continued"}

    bad = post_messages(srv, thread={"type": "resume"}, messages=user(SKY))
    assert bad.status_code == 400 and "thread.type" in bad.json()["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as lost:
        anthropic_client(srv).beta.messages.create(model=MODEL, max_tokens=8, messages=user(SKY),
                                                   thread={"type": "continue", "previous_message_id": "msg_01gone"})
    assert lost.value.error_code == "thread_not_found"


def test_the_thread_store_is_bounded_and_expires(monkeypatch):
    from responses_app.api import threads
    from responses_app.providers.common import APIError

    def error_code(store, key):
        with pytest.raises(APIError) as error:
            store.claim(key)
        return error.value.status_code, error.value.details["error_code"]

    now = [1000.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: now[0])
    store = threads.ThreadStore(ttl=60, max_threads=3, max_bytes=1000)
    conversation = {"messages": [{"role": "user", "content": "hi"}]}
    for name in ("a", "b", "c", "e"):
        store.keep(("", "", name), conversation)
    assert len(store) == 3 and error_code(store, ("", "", "a")) == (404, "thread_not_found")  # the oldest went
    assert store.claim(("", "", "b")) == conversation
    assert error_code(store, ("", "", "b")) == (400, "thread_continue_in_flight")
    store.release(("", "", "b"))
    assert store.claim(("", "", "b")) == conversation  # a failed continue may be tried again
    store.claim(("", "", "c"))
    store.keep(("", "", "d"), conversation, continued=("", "", "c"))
    assert error_code(store, ("", "", "c")) == (400, "thread_already_continued")
    assert error_code(store, ("", "", "b")) == (404, "thread_not_found")  # the oldest went to make room for d
    assert error_code(store, ("other-key", "", "d")) == (404, "thread_not_found")
    now[0] += 61
    assert error_code(store, ("", "", "d")) == (404, "thread_not_found")
    store.keep(("", "", "big"), {"messages": [{"role": "user", "content": "x" * 2000}]})
    assert len(store) == 0  # larger than the store may hold
