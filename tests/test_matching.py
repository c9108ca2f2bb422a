"""Choosing the reply: each matching rule, restrictions, priority, turns, defaults and near misses."""
import json

import pytest

from responses_app.canned.conversation import ChatRequest, Tool
from responses_app.canned.matching import Entry, SetIndex
from responses_app.canned.shadowing import find_shadowed


def build(*rows, unknown: str = "no idea") -> SetIndex:
    """rows: (prompt, answer) or (prompt, answer, options); ids and file order follow the arguments."""
    full = [(i + 1, row[0], row[1], row[2] if len(row) > 2 else {}, i) for i, row in enumerate(rows)]
    return SetIndex.build(full, version=1, unknown_response=unknown, settings={})


def ask(prompt: str = "", **fields) -> ChatRequest:
    return ChatRequest(provider=fields.pop("provider", "openai"), endpoint="chat", model=fields.pop("model", "mock-llm"),
                       prompt=prompt, **fields)


def answer(index: SetIndex, request: ChatRequest) -> str | None:
    return index.find(request).reply.text


def test_exact_prompt_gets_its_answer():
    match = build(("what is 2+2?", "4")).find(ask("what is 2+2?"))
    assert (match.reply.text, match.entry.id, match.rule) == ("4", 1, "exact")


def test_exact_ignores_surrounding_white_space():
    assert answer(build(("hello", "hi")), ask("  hello\n")) == "hi"


def test_a_lower_case_key_answers_any_capitalisation_as_in_the_original_server():
    assert answer(build(("what colour is the sky?", "blue")), ask("What Colour is the sky?")) == "blue"


def test_a_key_with_capitals_is_exact_about_case():
    index = build(("Hello World", "hi"))
    assert answer(index, ask("Hello World")) == "hi"
    assert answer(index, ask("hello world")) == "no idea"


def test_normalized_ignores_case_and_inner_white_space():
    index = build(("Hello   World", "hi", {"match": "normalized"}))
    assert answer(index, ask("hello world")) == "hi"
    assert answer(index, ask(" HELLO\tWORLD ")) == "hi"
    assert answer(index, ask("hello worlds")) == "no idea"


def test_contains_finds_the_text_anywhere_ignoring_case():
    index = build(("weather", "always sunny", {"match": "contains"}))
    assert answer(index, ask("What is the WEATHER like in Paris?")) == "always sunny"
    assert answer(index, ask("Is it raining?")) == "no idea"


def test_regex_searches_the_prompt():
    index = build((r"(?i)^book a flight to \w+$", "booked", {"match": "regex"}))
    assert answer(index, ask("Book a flight to Paris")) == "booked"
    assert answer(index, ask("please book a flight to Paris")) == "no idea"


def test_a_catastrophic_pattern_answers_at_once_on_re2():
    import time

    index = build((r"(a+)+$", "matched", {"match": "regex"}))
    started = time.monotonic()
    assert answer(index, ask("a" * 50_000 + "b")) == "no idea"  # a backtracking engine would take ages here
    assert answer(index, ask("a" * 50_000)) == "matched"
    assert time.monotonic() - started < 2  # typically 10 ms; backtracking would take longer than the universe


def test_targets_any_user_message_the_system_prompt_or_the_whole_conversation():
    index = build(
        ("pirate", "Arr!", {"match": "contains", "on": "system"}),
        ("first question", "seen earlier", {"match": "exact", "on": "any_user"}),
        ("tool output 42", "from the conversation", {"match": "contains", "on": "conversation"}),
    )
    assert answer(index, ask("hi", system="Talk like a pirate.")) == "Arr!"
    assert answer(index, ask("second", user_texts=("first question", "second"))) == "seen earlier"
    assert answer(index, ask("next", conversation="q\ntool output 42\nnext")) == "from the conversation"


def test_model_glob_provider_tool_and_tool_result_restrict_an_entry():
    index = build(
        ("q", "gpt answer", {"model": "gpt-4*"}),
        ("q", "claude answer", {"provider": "anthropic"}),
        ("q", "tool answer", {"tool": "get_weather", "model": "other*"}),
        ("q", "after the tool", {"has_tool_result": True, "model": "x"}),
    )
    assert answer(index, ask("q", model="gpt-4o")) == "gpt answer"
    assert answer(index, ask("q", model="claude-x", provider="anthropic")) == "claude answer"
    assert answer(index, ask("q", model="other-1", tools=(Tool("get_weather", {}),))) == "tool answer"
    assert answer(index, ask("q", model="x", has_tool_result=True)) == "after the tool"
    assert answer(index, ask("q", model="mistral")) == "no idea"


def test_priority_wins_then_file_order():
    index = build(
        ("weather", "first in file", {"match": "contains"}),
        ("weather", "higher priority", {"match": "regex", "priority": 5}),
        ("what is the weather?", "exact but later"),
    )
    assert answer(index, ask("what is the weather?")) == "higher priority"


def test_turns_answer_by_the_number_of_assistant_messages():
    index = build(("book a flight", "", {"turns": [
        {"tool_calls": [{"name": "search", "arguments": '{"to": "Paris"}'}]},
        {"text": "Found 3 flights."},
    ]}))
    first = index.find(ask("book a flight", turn=1)).reply
    assert first.text is None and first.tool_calls[0].name == "search" and first.openai_finish() == "tool_calls"
    assert answer(index, ask("book a flight", turn=2)) == "Found 3 flights."
    assert answer(index, ask("book a flight", turn=7)) == "Found 3 flights."  # the last turn repeats


def test_unknown_prompt_gets_default_answer_and_near_misses():
    index = build(("Hello World", "hi"), ("q", "x", {"model": "gpt-4*"}))
    match = index.find(ask("hello world"))
    assert (match.reply.text, match.entry, match.rule) == ("no idea", None, "default")
    assert "differs only in case or white space" in match.near_misses[0]
    restricted = index.find(ask("q", model="claude"))
    assert "model 'claude' does not match 'gpt-4*'" in restricted.near_misses[0]
    similar = index.find(ask("Hello Wurld"))
    assert "similar text" in similar.near_misses[0]


def test_a_prompt_that_starts_with_or_contains_a_canned_one_gets_a_hint():
    index = build(("Hello", "hi"), ("what colour is the sky?", "blue"), ("Good   Morning", "gm", {"match": "normalized"}))
    starts = index.find(ask("What colour is the sky?\nAnswer in one word."))
    assert starts.entry is None and len(starts.near_misses) == 1
    assert "entry 2 ('what colour is the sky?'): the prompt starts with" in starts.near_misses[0]
    inside = index.find(ask("Be polite. good morning to you; and then say hello"))
    assert [hint.split(":")[0] for hint in inside.near_misses] == ["entry 3 ('Good   Morning')", "entry 1 ('Hello')"]
    assert all("contains" in hint for hint in inside.near_misses)
    assert index.find(ask("Othello and the hellos")).near_misses == ()  # whole words only


def test_a_forced_tool_gets_a_minimal_instance_of_its_schema_when_nothing_matches():
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
              "required": ["city", "days"]}
    match = build().find(ask("weather?", tools=(Tool("get_weather", schema),), forced_tool="get_weather"))
    assert match.rule == "forced_tool"
    assert json.loads(match.reply.tool_calls[0].arguments) == {"city": "", "days": 1}


def test_a_json_schema_gets_valid_json_text_when_nothing_matches():
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
    assert json.loads(answer(build(), ask("?", json_schema=schema))) == {"answer": "yes"}


def test_a_forced_tool_or_schema_overrides_an_entry_that_does_not_give_it():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = (Tool("get_weather", schema), Tool("search", {}))
    index = build(("sky", "blue"), ("call", "", {"response": {"tool_calls": [{"name": "search"}]}}), ("json", '{"a": 1}'))
    named = index.find(ask("sky", tools=tools, forced_tool="get_weather"))
    assert (named.entry.id, named.reply.text, named.reply.tool_calls[0].name) == (1, None, "get_weather")
    assert json.loads(named.reply.tool_calls[0].arguments) == {"city": ""} and "forces" in named.warning
    other = index.find(ask("call", tools=tools, forced_tool="get_weather"))
    assert other.reply.tool_calls[0].name == "get_weather" and other.warning
    any_tool = index.find(ask("call", tools=tools, forced_tool="get_weather", any_tool=True))
    assert any_tool.reply.tool_calls[0].name == "search" and any_tool.warning is None
    prose = index.find(ask("sky", json_schema=schema))
    assert (json.loads(prose.reply.text), prose.rule) == ({"city": ""}, "exact") and "JSON" in prose.warning
    assert index.find(ask("sky", json_mode=True)).reply.text == "{}"
    kept = index.find(ask("json", json_schema=schema))
    assert (kept.reply.text, kept.warning) == ('{"a": 1}', None)
    assert index.find(ask("sky")).warning is None


def test_an_entrys_json_object_becomes_the_forced_tools_arguments_when_it_fits():
    weather = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
               "required": ["city"]}
    tools = (Tool("search", {"type": "object", "properties": {"q": {"type": "string"}}}), Tool("final_result", weather))
    index = build(("record", '{"city": "Lisbon", "degrees": 21}'), ("other", '{"status": "ok"}'), ("list", "[1, 2]"))
    named = index.find(ask("record", tools=tools, forced_tool="final_result"))
    assert (named.reply.text, named.warning, named.rule) == (None, None, "exact")
    assert [(c.name, json.loads(c.arguments)) for c in named.reply.tool_calls] == [("final_result", {"city": "Lisbon", "degrees": 21})]
    # tool_choice "required" / "any": the first of the request's tools whose schema the object fits
    any_tool = index.find(ask("record", tools=tools, forced_tool="search", any_tool=True))
    assert any_tool.reply.tool_calls[0].name == "final_result" and any_tool.warning is None
    for prompt in ("other", "list"):  # no fit, or not an object: the schema's minimal instance, with a warning
        fallback = index.find(ask(prompt, tools=tools, forced_tool="final_result"))
        assert json.loads(fallback.reply.tool_calls[0].arguments) == {"city": ""} and "forces" in fallback.warning


def test_embeddings_can_be_canned():
    index = build(("hello", "", {"embedding": [0.5, 0.5]}))
    assert index.embedding_for(" hello ") == (0.5, 0.5) and index.embedding_for("other") is None


def test_shadowed_entries_are_found():
    entries = [Entry.build(1, "weather", "", {"match": "contains"}, 0),
               Entry.build(2, "what is the weather?", "x", {}, 1),
               Entry.build(3, "what is the weather?", "y", {"model": "gpt*"}, 2),
               Entry.build(4, "rain", "z", {}, 3)]
    assert [(later.id, earlier.id) for later, earlier in find_shadowed(entries)] == [(2, 1), (3, 1)]


@pytest.mark.parametrize("set_size", [1000, 7])
def test_regex_and_contains_entries_found_in_one_pass_answer_as_trying_each_in_turn(monkeypatch, set_size):
    """The RE2 sets (matching.ScanSets) pick the entry that trying every entry in rank order picks, near
    misses included, whatever the kinds, targets, priorities and restrictions; in one set or many, and
    in an index built at once or grown."""
    import random

    from responses_app.canned import matching

    monkeypatch.setattr(matching, "SET_SIZE", set_size)

    rng = random.Random(7)
    words = ["sky", "blue", "Sky", "weather", "a+b", "(x)", "é", "flight", "to", "Paris", "42", "."]
    rows = []
    for _ in range(300):
        kind = rng.choice(["regex", "contains", "contains", "exact", "normalized"])
        text = " ".join(rng.sample(words, rng.randint(1, 3)))
        if kind == "regex":
            text = rng.choice([r"(?i)\bsky\b", r"^\d+$", r"blue.*day", r"fl(i|y)ght to \w+", r"é", r"\.$", r"a\+b"])
        options = {"match": kind, "priority": rng.randint(0, 2), "on": rng.choice(["last_user", "any_user", "system"])}
        if rng.random() < 0.2:
            options["model"] = rng.choice(["gpt-*", "claude-*"])
        rows.append((text, f"answer {len(rows)}", options))
    index = build(*rows)
    grown = build(*rows[:150]).extended([(i + 1, *row, i) for i, row in enumerate(rows) if i >= 150], version=2)

    def one_by_one(request: ChatRequest) -> tuple[str | None, tuple[str, ...]]:
        refused = []
        for entry in index.entries:
            if any(entry.matches_text(text) for text in entry.texts(request)):
                reason = entry.refusal(request)
                if reason is None:
                    return entry.reply_for(request).text, ()
                refused.append(f"{entry.label()}: {reason}")
        return "no idea", tuple(refused[:3])

    for _ in range(400):
        prompt = " ".join(rng.choices(words, k=rng.randint(0, 6)))
        request = ask(prompt, model=rng.choice(["gpt-4o", "claude-3", "mock"]),
                      system=" ".join(rng.choices(words, k=2)), user_texts=(prompt, rng.choice(words)))
        found = index.find(request)
        expected_text, expected_refusals = one_by_one(request)
        assert found.reply.text == expected_text, prompt
        assert grown.find(request).reply.text == expected_text, prompt
        if expected_text == "no idea":
            assert found.near_misses[:len(expected_refusals)] == expected_refusals
