"""The provider modules without HTTP: what is matched, what is counted, and the exact bytes."""
import json

import pytest

from responses_app.canned.matching import SetIndex
from responses_app.providers import anthropic_messages as anthropic
from responses_app.providers import openai_chat as openai
from responses_app.providers.common import APIError, ResponseIds

IDS = ResponseIds("chatcmpl-fixed", 1700000000)
INDEX = SetIndex.build([(1, "hi", "Hé!")], version=1, unknown_response="?", settings={})


def events(raw: list[bytes]) -> list[str]:
    return [event.decode() for event in raw]


def test_openai_prompt_is_the_last_user_message_with_parts_joined():
    chat = openai.parse({"model": "m", "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "line one"}, {"type": "image_url", "image_url": {"url": "u"}},
                                     {"type": "text", "text": "line two"}]},
        {"role": "system", "content": "late system note"},
    ]})
    assert chat.prompt == "line one\nline two"


def test_openai_tokens_are_counted_over_the_real_text():
    chat = openai.parse({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "hi"},
    ]})
    # "Be brief." = Be, brie|f, .  -> 4; "f" -> 1; "{}" -> 2; "hi" -> 1
    assert chat.input_tokens == 8


def test_openai_stream_bytes_follow_the_wire_format():
    chat = openai.parse({"model": "m", "stream": True, "stream_options": {"include_usage": True},
                                 "messages": [{"role": "user", "content": "hi"}]})
    raw = events(list(openai.render_stream(chat, INDEX.find(chat), IDS)))
    assert all(e.startswith("data: ") and e.endswith("\n\n") and "\nevent:" not in e for e in raw)
    chunks = [json.loads(e[6:]) for e in raw[:-1]]
    assert raw[-1] == "data: [DONE]\n\n"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["H", "é", "!"]
    assert chunks[4]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["completion_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:5])
    assert {c["id"] for c in chunks} == {"chatcmpl-fixed"} and {c["created"] for c in chunks} == {1700000000}


def test_anthropic_prompt_and_system_are_read_from_blocks():
    request = anthropic.parse({"model": "c", "max_tokens": 5, "system": [{"type": "text", "text": "Be brief."}],
                                       "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert request.prompt == "hi" and request.input_tokens == 5


def test_anthropic_stream_bytes_name_every_event():
    request = anthropic.parse({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    raw = events(list(anthropic.render_stream(request, INDEX.find(request), ResponseIds("msg_01x", 1))))
    names = [e.split("\n")[0].removeprefix("event: ") for e in raw]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    for name, event in zip(names, raw):
        assert json.loads(event.split("\n")[1].removeprefix("data: "))["type"] == name
        assert event.endswith("\n\n")
    assert json.loads(raw[7].split("\n")[1][6:])["usage"] == {
        "input_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2}


@pytest.mark.parametrize("bad", [True, "1", 1.5])
def test_n_must_be_a_real_integer(bad):
    with pytest.raises(APIError) as error:
        openai.parse({"model": "m", "n": bad, "messages": [{"role": "user", "content": "x"}]})
    assert error.value.param == "n"


def test_error_bodies_have_each_providers_shape():
    assert openai.render_error(429, "slow down") == {
        "error": {"message": "slow down", "type": "rate_limit_exceeded", "param": None, "code": None}}
    assert anthropic.render_error(529, "busy", request_id="req_1") == {
        "type": "error", "error": {"type": "overloaded_error", "message": "busy"}, "request_id": "req_1"}
