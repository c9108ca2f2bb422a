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
