"""The official SDKs against a real server process: the answers users see, streamed and not."""
import json

import openai
import pytest

from .support import anthropic_client, openai_client, wait_for

SKY = "what colour is the sky?"
SKY_ANSWER = "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
UNKNOWN = "I don't know the answer to that. This is a mock response."


@pytest.fixture(scope="module")
def oa(server):
    return openai_client(server)


@pytest.fixture(scope="module")
def an(server):
    return anthropic_client(server)


def user(text):
    return [{"role": "user", "content": text}]


# --- OpenAI --------------------------------------------------------------------------------

def test_openai_answers_the_canned_text(oa):
    reply = oa.chat.completions.create(model="mock-llm", messages=user(SKY))
    assert reply.choices[0].message.content == SKY_ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.id.startswith("chatcmpl-") and reply.model == "mock-llm"
    assert reply._request_id.startswith("req_")
    assert reply.usage.prompt_tokens == 7 and reply.usage.completion_tokens == 24
    assert reply.usage.total_tokens == 31


def test_openai_stream_adds_up_to_the_same_answer(oa):
    chunks = list(oa.chat.completions.create(model="mock-llm", messages=user(SKY), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == list(SKY_ANSWER)  # character by character
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)


def test_openai_stream_with_include_usage_ends_with_a_usage_chunk(oa):
    chunks = list(oa.chat.completions.create(model="mock-llm", messages=user(SKY), stream=True,
                                             stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 24)
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_helper_gives_the_final_completion(oa):
    with oa.chat.completions.stream(model="mock-llm", messages=user(SKY),
                                    stream_options={"include_usage": True}) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == SKY_ANSWER == final.choices[0].message.content
    assert final.usage.total_tokens == 31


def test_openai_n_gives_n_choices_streamed_and_not(oa):
    reply = oa.chat.completions.create(model="mock-llm", messages=user(SKY), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {SKY_ANSWER}
    assert reply.usage.completion_tokens == 72
    chunks = list(oa.chat.completions.create(model="mock-llm", messages=user(SKY), n=2, stream=True))
    for index in (0, 1):
        text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices if ch.index == index)
        assert text == SKY_ANSWER


def test_openai_matches_the_last_user_message_whatever_its_shape(oa):
    reply = oa.chat.completions.create(model="gpt-4o", messages=[
        {"role": "developer", "content": "Be terse."},
        {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "tool output"},
        {"role": "user", "content": [
            {"type": "text", "text": SKY},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
    ], temperature=0.2, seed=1, extra_body={"some_future_field": {"x": 1}})
    assert reply.choices[0].message.content == SKY_ANSWER


def test_openai_unknown_prompt_gets_the_default_answer(oa):
    reply = oa.chat.completions.create(model="mock-llm", messages=user("something nobody canned"))
    assert reply.choices[0].message.content == UNKNOWN


def test_openai_prompt_matching_ignores_case_and_surrounding_space(oa):
    reply = oa.chat.completions.create(model="mock-llm", messages=user("  What Colour is the sky?\n"))
    assert reply.choices[0].message.content == SKY_ANSWER


# --- Anthropic -----------------------------------------------------------------------------

def test_anthropic_answers_the_canned_text(an):
    reply = an.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=user(SKY))
    assert [block.text for block in reply.content] == [SKY_ANSWER]
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.id.startswith("msg_") and reply._request_id.startswith("req_")
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (7, 24)


def test_anthropic_raw_stream_events_come_in_order(an):
    events = list(an.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=user(SKY), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert deltas == list(SKY_ANSWER)
    assert events[-2].usage.output_tokens == 24


def test_anthropic_stream_helper_gives_the_final_message(an):
    with an.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=user(SKY)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == SKY_ANSWER == final.content[0].text
    assert final.usage.output_tokens == 24 and final.usage.input_tokens == 7
    assert final.stop_reason == "end_turn"


def test_anthropic_system_blocks_and_history_are_accepted(an):
    reply = an.messages.create(
        model="claude-haiku-4-5", max_tokens=64,
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "result"},
                {"type": "text", "text": SKY},
            ]},
        ],
    )
    assert reply.content[0].text == SKY_ANSWER
    assert reply.usage.input_tokens == 22  # system, history and tool traffic are all counted


def test_anthropic_accepts_both_auth_styles_any_version_and_beta_query(server):
    import httpx

    body = {"model": "claude", "max_tokens": 8, "messages": user(SKY), "temperature": 0.1, "top_k": 3}
    variants = [
        ({"x-api-key": "k", "anthropic-version": "2023-06-01"}, ""),
        ({"authorization": "Bearer k", "anthropic-version": "2026-10-21"}, ""),
        ({"x-api-key": "k", "anthropic-version": "2099-01-01", "anthropic-beta": "x-2024"}, "?beta=true"),
    ]
    for headers, query in variants:
        response = httpx.post(f"{server.url}/v1/messages{query}", json=body, headers=headers)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["content"][0]["text"] == SKY_ANSWER


# --- LangChain -----------------------------------------------------------------------------

def test_langchain_clients_get_the_answer_and_usage(server):
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="mock-llm", base_url=f"{server.url}/v1", api_key="k", max_retries=0, stream_usage=True)
    assert chat.invoke(SKY).content == SKY_ANSWER
    streamed = None
    for chunk in chat.stream(SKY):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed.content == SKY_ANSWER and streamed.usage_metadata["total_tokens"] == 31

    claude = ChatAnthropic(model="claude-haiku-4-5", base_url=server.url, api_key="k", max_retries=0, max_tokens=64)
    assert claude.invoke(SKY).text == SKY_ANSWER
    streamed = None
    for chunk in claude.stream(SKY):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed.text == SKY_ANSWER and streamed.usage_metadata["output_tokens"] == 24


# --- logging -------------------------------------------------------------------------------

def test_each_request_is_one_json_log_line_without_the_prompt(oa, server):
    reply = oa.chat.completions.create(model="log-check-model", messages=user(SKY), stream=True)
    list(reply)

    def mine() -> list[dict]:
        return [line for line in server.log_lines() if line.get("model") == "log-check-model"]

    wait_for(mine, message="the request was not logged")
    assert len(mine()) == 1
    entry = mine()[0]
    assert entry["event"] == "request" and entry["status"] == 200 and entry["provider"] == "openai"
    assert entry["stream"] is True and entry["stream_end"] == "completed" and entry["match_rule"] == "exact"
    assert entry["request_id"].startswith("req_") and isinstance(entry["duration_ms"], float)
    assert SKY not in json.dumps(entry)


def test_the_production_command_serves_the_same_answers(control_server):
    client = openai.OpenAI(base_url=f"{control_server.url}/v1", api_key="k", max_retries=0)  # daphne
    with client.chat.completions.stream(model="m", messages=user(SKY)) as stream:
        assert stream.get_final_completion().choices[0].message.content == SKY_ANSWER
