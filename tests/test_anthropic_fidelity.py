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

from .support import anthropic_client, make_server, openai_client

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
