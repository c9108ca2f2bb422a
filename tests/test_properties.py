"""Property tests: the request parsers, the responses-file loader and the matcher hold up for any input."""
from __future__ import annotations

import os
import unicodedata

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import SetIndex
from responses_app.canned.responses_file import ResponsesFileError, parse_responses
from responses_app.providers import anthropic_messages as anthropic
from responses_app.providers import openai_chat as openai
from responses_app.providers import openai_completions as completions
from responses_app.providers import openai_embeddings as embeddings
from responses_app.providers import openai_responses as responses
from responses_app.providers.chunking import split_text
from responses_app.providers.common import APIError

FAST = settings(max_examples=int(os.environ.get("MOCKLLM_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
role = st.sampled_from(["user", "assistant", "system", "developer", "tool", "robot", None])
message = st.fixed_dictionaries({"role": role}, optional={"content": json_values, "tool_calls": json_values})
bodies = st.one_of(
    st.dictionaries(st.sampled_from(["model", "messages", "stream", "n", "max_tokens", "system", "tools", "tool_choice",
                                     "input", "prompt", "encoding_format", "dimensions", "stream_options"]),
                    json_values, max_size=8),
    st.fixed_dictionaries({"model": st.text(), "max_tokens": st.integers(), "messages": st.lists(message, max_size=4)},
                          optional={"stream": json_values, "system": json_values, "tools": json_values}),
)


@FAST
@given(bodies)
def test_request_parsing_only_ever_refuses_with_a_400(body):
    for parse in (openai.parse, anthropic.parse, responses.parse, completions.parse,
                  embeddings.parse):
        try:
            parse(body)
        except APIError as exc:
            assert exc.status_code == 400 and exc.message


@FAST
@given(st.text(max_size=400))
def test_any_text_as_a_responses_file_loads_or_says_where_it_is_wrong(text):
    try:
        parse_responses(text, "r.yml")
    except ResponsesFileError as exc:
        assert exc.problems and str(exc).startswith("r.yml")


yaml_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["match", "response", "turns", "model", "text", "tool_calls", "name", "arguments",
                         "timing", "error", "status", "priority", "on", "regex", "contains", "x"]), children, max_size=4),
    max_leaves=15,
)


@FAST
@given(st.lists(yaml_data, max_size=4))
def test_any_list_of_entries_loads_or_says_where_it_is_wrong(entries):
    text = yaml.safe_dump({"responses": entries})
    try:
        parse_responses(text, "r.yml")
    except ResponsesFileError as exc:
        assert exc.problems


prompt = st.text(min_size=1, max_size=30).filter(lambda t: t.strip())


@FAST
@given(st.lists(prompt, min_size=1, max_size=20, unique_by=lambda t: t.strip()))
def test_every_exact_entry_answers_its_own_prompt(prompts):
    index = SetIndex.build([(i + 1, p, f"answer {i}", {}, i) for i, p in enumerate(prompts)],
                                version=1, unknown_response="?", settings={})
    for p in prompts:
        request = ChatRequest(provider="openai", endpoint="chat", model="m", prompt=p)
        match = index.find(request)
        assert match.entry is not None
        # the entry found answers this text; an earlier lower-case key may answer it first, as documented
        assert match.entry.matches_text(p)


def folded(text: str) -> str:
    """What `normalized` compares: NFC, case folded, runs of white space as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


@FAST
@given(st.text(max_size=40), st.text(max_size=40))
def test_normalized_entries_ignore_case_white_space_and_unicode_forms(key, noise):
    if not key.strip():
        return
    index = SetIndex.build([(1, key, "yes", {"match": "normalized"}, 0)], version=1, unknown_response="no",
                                settings={})

    def answer(prompt: str) -> str:
        return index.find(ChatRequest(provider="openai", endpoint="chat", model="m", prompt=prompt)).reply.text

    variant = " " + unicodedata.normalize("NFD", key.upper()) + "  "
    assert answer(variant) == ("yes" if folded(variant) == folded(key) else "no")
    assert answer(noise) == ("yes" if folded(noise) == folded(key) else "no")
    assert answer(key) == "yes"


@FAST
@given(st.text(), st.sampled_from(["char", "word", "token", 1, 2, 7]))
def test_stream_pieces_always_join_into_the_answer(text, chunk):
    assert "".join(split_text(text, chunk)) == text
