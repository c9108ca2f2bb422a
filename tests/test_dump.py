"""`dumpresponses`: the default set written back as a responses file that loads as the same set.

The property: for any valid responses file (and admin rows added to or edited in it), load -> dump ->
load into an empty database gives the same rows in the same order, the same default answer and
settings, and so the same answer to every request.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from io import StringIO
from itertools import product
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from responses_app.canned import dumping
from responses_app.canned.conversation import ChatRequest, Tool
from responses_app.canned.dumping import DumpError, dump_default_set, entry_document
from responses_app.canned.entries import FINISH_REASONS, MATCH_KINDS, PROVIDERS, STOP_REASONS, TARGETS, validate_row
from responses_app.canned.fault_schema import (
    CONTENT_FILTER_TARGETS,
    FILTER_SEVERITIES,
    SEVERITY_CATEGORIES,
    STREAM_FAULTS,
    TIMING_RATES,
)
from responses_app.canned.loading import write_responses
from responses_app.canned.matching import SetIndex
from responses_app.canned.responses_file import ResponsesFileError, parse_responses
from responses_app.models import ADMIN_POSITION, CannedResponse, ResponseSet, Source

from .test_docs import BLOCKS

ISSUE = """\
responses:
  - match: {regex: "(?i)^translate (.+) to french$"}
    response: "Voilà."
  - match: "which model are you?"
    model: "gpt-4*"
    response: "A GPT-4 class mock."
  - match: "which model are you?"
    provider: anthropic
    response: "A Claude-shaped mock."
  - match: "weather in paris?"
    response:
      tool_calls:
        - name: get_weather
          arguments: {city: Paris}
"""
FILE = "/project/responses.yml"
pytestmark = pytest.mark.django_db


# --- the two databases ---------------------------------------------------------------------------------

@dataclass
class State:
    """What a database serves from the default set: its rows in the order they are tried, the default
    answer, the settings, and the index built from them."""

    rows: list[tuple[str, str, dict]]
    unknown_response: str
    settings: dict
    index: SetIndex


def current_state() -> State:
    stored = list(CannedResponse.objects.filter(scenario="", test_id="").values_list(
        "id", "prompt", "answer", "options", "position"))
    stored.sort(key=lambda row: (-int(row[3].get("priority", 0)), row[4], row[0]))  # the order entries are tried in
    response_set = ResponseSet.get()
    index = SetIndex.build(stored, version=1, unknown_response=response_set.unknown_response,
                           settings=response_set.settings)
    return State([(p, a, o) for _, p, a, o, _ in stored], response_set.unknown_response, response_set.settings, index)


@contextlib.contextmanager
def empty_database():
    """The test's empty database; everything written inside is rolled back."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def load(text: str, path: str = FILE) -> None:
    write_responses(parse_responses(text, path), path)


def round_trip(text: str, edit=None) -> tuple[State, State, str]:
    """Load `text` (then `edit()`, as the admin would) and dump it; load the dump into an empty database."""
    with empty_database():
        load(text)
        if edit is not None:
            edit()
        before = current_state()
        dumped = dump_default_set().text
    with empty_database():
        load(dumped, "/elsewhere/dumped.yml")
        after = current_state()
    return before, after, dumped


def served(state: State, request: ChatRequest) -> tuple:
    """Everything a request gets from a set: the rule, the reply, the entry's faults and name, an embedding."""
    match = state.index.find(request)
    entry = match.entry
    about = None if entry is None else (entry.prompt, entry.kind, entry.target, entry.faults, entry.name, entry.rank[0])
    return match.rule, match.reply, about, state.index.embedding_for(request.prompt)


def request(prompt: str, *, model: str = "gpt-4o", provider: str = "openai", tools: tuple[str, ...] = (),
            has_tool_result: bool = False, turn: int = 1, system: str = "", other: str = "") -> ChatRequest:
    return ChatRequest(provider=provider, endpoint="chat", model=model, prompt=prompt, user_texts=(other, prompt),
                       system=system, conversation="\n".join((system, other, prompt)),
                       tools=tuple(Tool(name, {}) for name in tools), has_tool_result=has_tool_result, turn=turn)


def sweep(state: State) -> list[ChatRequest]:
    """Requests aimed at every entry: its text, in capitals, padded, as the system prompt; with each model,
    provider, tool offer, tool result and turn."""
    prompts = {p for p, _, _ in state.rows} | {"", "something nobody wrote"}
    texts = {t for p in prompts for t in (p, p.upper(), f"  {p} ")}
    tools = tuple(sorted({o["tool"] for _, _, o in state.rows if "tool" in o}))
    requests = [request(t) for t in texts] + [request("", system=t) for t in texts]
    for prompt, model, provider, offered, result, turn in product(
            sorted(prompts), ("gpt-4o", "claude-haiku-4-5"), PROVIDERS, ((), tools), (False, True), (1, 3)):
        requests.append(request(prompt, model=model, provider=provider, tools=offered, has_tool_result=result, turn=turn))
    return requests


def served_row(prompt: str, answer: str, options: dict) -> tuple[str, str | None, dict]:
    """A row as it is served: an entry with turns answers with them, never with its `answer` column (which
    the admin can still edit, and a file cannot hold: there it is the first turn's text)."""
    return prompt, None if "turns" in options else answer, options


def assert_same_set(before: State, after: State, extra_requests: list[ChatRequest] = ()) -> None:
    assert [served_row(*row) for row in after.rows] == [served_row(*row) for row in before.rows]
    assert (after.unknown_response, after.settings) == (before.unknown_response, before.settings)
    for each in [*sweep(before), *extra_requests]:
        assert served(after, each) == served(before, each), each


# --- the issue's file, and what the command says -----------------------------------------------------

def test_a_rich_file_comes_back_whole(tmp_path):
    before, after, dumped = round_trip(ISSUE)
    assert_same_set(before, after)
    assert len(after.rows) == 4
    assert after.rows[0] == ("(?i)^translate (.+) to french$", "Voilà.", {"match": "regex"})
    assert after.rows[3][2]["response"]["tool_calls"][0] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert served(after, request("Translate cheese to French"))[1].text == "Voilà."
    assert "- match: {regex: \"(?i)^translate (.+) to french$\"}" in dumped


def test_the_command_writes_the_file_and_says_what_it_wrote(tmp_path):
    load(ISSUE)
    target = tmp_path / "responses.yml"
    err = StringIO()
    call_command("dumpresponses", "--output", str(target), stderr=err)
    assert err.getvalue().strip() == f"Wrote 4 responses, the default answer to {target}"
    assert len(parse_responses(target.read_text()).entries) == 4


def test_admin_rows_are_dumped_where_they_are_tried(tmp_path):
    load(ISSUE + 'defaults:\n  unknown_response: "no idea"\nsettings:\n  lag_enabled: true\n  lag_factor: 5\n')
    edited = CannedResponse.objects.get(prompt="weather in paris?")
    edited.answer, edited.source = "Looking it up.", Source.ADMIN  # as the admin's save does
    edited.save()
    added = CannedResponse(prompt="typed in the admin", answer="kept", options={"match": "contains", "priority": 2})
    added.options = validate_row(added.prompt, added.answer, added.options)
    added.save()
    assert added.position == ADMIN_POSITION
    before = current_state()
    target = tmp_path / "responses.yml"
    err = StringIO()
    call_command("dumpresponses", "-o", str(target), stderr=err)
    assert "Wrote 5 responses (2 from the admin), the default answer and 2 settings" in err.getvalue()
    with empty_database():
        load(target.read_text())
        assert_same_set(before, current_state())
    entries = parse_responses(target.read_text()).entries
    assert [e.prompt for e in entries][-1] == "typed in the admin"  # after the file's entries, as it is tried
    assert entries[3].answer == "Looking it up."


def test_plain_sets_keep_the_original_format():
    text = 'responses:\n  "yes": "no"\n  "multi": "line one\\nline two"\n  " spaced ": "é"\n  "": ""\n'
    before, after, dumped = round_trip(text)
    assert_same_set(before, after)
    assert yaml.safe_load(dumped)["responses"] == {"yes": "no", "multi": "line one\nline two", " spaced ": "é", "": ""}
    assert "multi: |-\n    line one\n    line two\n" in dumped  # several lines stay readable


def test_one_rich_entry_makes_it_a_list():
    _, after, dumped = round_trip('responses:\n  - match: "a"\n    response: "b"\n  - match: "c"\n    priority: 1\n'
                                  '    response: "d"\n')
    assert yaml.safe_load(dumped)["responses"] == [{"match": "a", "response": "b"},
                                                   {"match": "c", "priority": 1, "response": "d"}]


def test_to_standard_output_without_output():
    load(ISSUE)
    out = StringIO()
    call_command("dumpresponses", stdout=out)
    assert len(parse_responses(out.getvalue()).entries) == 4


def test_a_set_that_cannot_be_written_back_is_refused_and_nothing_is_written(tmp_path):
    load(ISSUE)
    target = tmp_path / "responses.yml"
    target.write_text("the user's file\n")
    # A row no responses file can hold (written around the admin's checks): a pattern RE2 refuses.
    CannedResponse.objects.filter(prompt="weather in paris?").update(prompt="(unclosed", options={"match": "regex"})
    with pytest.raises(CommandError, match=r"Nothing was written: the entry '\(unclosed' has options no responses file "
                                           r"can hold: invalid regular expression"):
        call_command("dumpresponses", "-o", str(target), stderr=StringIO())
    assert target.read_text() == "the user's file\n"
    assert sorted(os.listdir(tmp_path)) == ["responses.yml"]  # no temporary file left behind
    with pytest.raises(DumpError):
        dump_default_set()


def test_the_file_is_replaced_atomically_and_keeps_its_permissions(tmp_path):
    load(ISSUE)
    target = tmp_path / "responses.yml"
    target.write_text("old\n")
    target.chmod(0o640)
    inode = target.stat().st_ino
    call_command("dumpresponses", "-o", str(target), stderr=StringIO())
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # a new file renamed over the old one, not the old one rewritten
    assert sorted(os.listdir(tmp_path)) == ["responses.yml"]


def test_an_unwritable_target_fails_cleanly(tmp_path):
    load(ISSUE)
    with pytest.raises(CommandError, match="Nothing was written: cannot write"):
        call_command("dumpresponses", "-o", str(tmp_path / "missing" / "responses.yml"), stderr=StringIO())


def test_strings_yaml_cannot_hold_in_a_block_come_back_exactly():
    odd = ["carriage\r\nreturn", "next\x85line", "tab\tand\nnew line", "trailing \nspace ", "\n leading break",
           "line\u2028separator", "bom\ufeff", "nul\x00", "  ", "yes", "null", "~", "- dash", "# hash", "a: b", "{x}"]
    text = yaml.safe_dump({"responses": [{"match": s, "response": s, "name": s} for s in odd]}, allow_unicode=True)
    before, after, _ = round_trip(text)
    assert_same_set(before, after)


def test_entries_are_written_as_people_write_them():
    document = entry_document("Hello there", "General Kenobi.", {"match": "normalized", "on": "any_user",
                                                                  "priority": 2, "timing": {"ttft_ms": 200.0}})
    assert list(document) == ["match", "priority", "response", "timing"]  # what it matches, then what it answers
    assert document["timing"] == {"ttft_ms": 200}  # a whole number without its `.0`
    _, _, dumped = round_trip('responses:\n  - match: {contains: "pirate", on: system}\n    response: "Arr."\n'
                              '    timing: {ttft_ms: 200}\n')
    assert '- match: {contains: pirate, on: system}\n    response: "Arr."\n    timing: {ttft_ms: 200}\n' in dumped


# --- every example in the docs ------------------------------------------------------------------------

@pytest.mark.parametrize("page, block", BLOCKS, ids=[f"{page}:{block.splitlines()[0][:40]}" for page, block in BLOCKS])
def test_every_docs_example_survives_a_dump(page, block):
    before, after, dumped = round_trip(block)
    assert_same_set(before, after)
    assert isinstance(yaml.safe_load(dumped)["responses"], dict) == isinstance(yaml.safe_load(block)["responses"], dict)


# --- any file ----------------------------------------------------------------------------------------

WORDS = ["hello", "Hello", " hello ", "what is the weather?", "weather", "joke", "on", "yes", "42", "",
         "line one\nline two", "é", "a: b", "- x", "\"quoted\"", "tab\there"]
REGEXES = ["(?i)^translate (.+) to french$", "^a", "b$", "", r"\d+", "(?s).*", "[é]", "hello|weather"]
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
names = st.sampled_from(["get_weather", "search", "book_flight"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
numbers = st.one_of(st.integers(0, 2000), st.floats(0, 2000, allow_nan=False))
tool_call = st.fixed_dictionaries({"name": names}, optional={
    "arguments": st.one_of(json_objects, json_objects.map(json.dumps)), "id": texts})
reply = st.one_of(texts, st.fixed_dictionaries({}, optional={
    "text": texts, "tool_calls": st.lists(tool_call, min_size=1, max_size=2), "thinking": texts,
    "finish_reason": st.sampled_from(FINISH_REASONS), "stop_reason": st.sampled_from(STOP_REASONS),
    "usage": st.fixed_dictionaries({}, optional={"input_tokens": st.integers(0, 99), "output_tokens": st.integers(0, 99),
                                                 "completion_tokens": st.integers(0, 99)}),
    "id": texts, "created": st.integers(0, 2**31)}))
timing = st.builds(
    lambda base, pace: {**base, **pace},
    st.fixed_dictionaries({}, optional={"ttft_ms": numbers, "chunk": st.sampled_from(["char", "word", "token", 1, 7]),
                                        "jitter": st.floats(0, 1), "seed": st.integers(0, 99)}),
    st.one_of(st.just({}), st.builds(lambda k, v: {k: v}, st.sampled_from(TIMING_RATES), st.floats(0.001, 500))))
error = st.fixed_dictionaries({"status": st.integers(400, 599)}, optional={
    "message": texts, "type": texts, "code": texts, "retry_after": numbers, "should_retry": st.booleans()})
stream_error = st.fixed_dictionaries({"mode": st.sampled_from(STREAM_FAULTS)}, optional={
    "after_chunks": st.integers(0, 20), "after_ms": numbers})
content_filter = st.one_of(st.sampled_from(CONTENT_FILTER_TARGETS), st.fixed_dictionaries(
    {"on": st.sampled_from(CONTENT_FILTER_TARGETS)},
    optional={"category": st.sampled_from(SEVERITY_CATEGORIES), "severity": st.sampled_from(FILTER_SEVERITIES)}))


def _match(kind: str, target: str | None, text: str) -> Any:
    if kind == "exact" and target is None:
        return text
    return {kind: text, **({"on": target} if target else {})}


match = st.one_of(
    texts,
    st.builds(_match, st.sampled_from([k for k in MATCH_KINDS if k != "regex"]), st.sampled_from([None, *TARGETS]), texts),
    st.builds(_match, st.just("regex"), st.sampled_from([None, *TARGETS]), st.sampled_from(REGEXES)),
)
entry_fields = st.fixed_dictionaries({"match": match}, optional={
    "model": st.sampled_from(["gpt-4*", "claude-*", "*", "m"]), "provider": st.sampled_from(PROVIDERS), "tool": names,
    "has_tool_result": st.booleans(), "priority": st.integers(-2, 2), "name": texts,
    "embedding": st.lists(st.floats(-1, 1), min_size=1, max_size=4), "error": error, "timing": timing,
    "stream_error": stream_error, "content_filter": content_filter})
reply_fields = st.one_of(st.just({}), reply.map(lambda r: {"response": r}),
                         st.lists(reply, min_size=1, max_size=3).map(lambda t: {"turns": t}))


def _entry(fields: dict, body: dict) -> dict:
    if not body and "embedding" not in fields and "error" not in fields:
        body = {"response": ""}
    return {**fields, **body}


def _distinct(entry: dict) -> str:
    """What makes two entries the same one in a file: their text, how and where they match, the restrictions."""
    spec = entry["match"] if isinstance(entry["match"], dict) else {"exact": entry["match"]}
    return json.dumps([spec, [entry.get(k) for k in ("model", "provider", "tool", "has_tool_result")]], sort_keys=True)


entries = st.lists(st.builds(_entry, entry_fields, reply_fields), max_size=8, unique_by=_distinct)
plain_entries = st.dictionaries(texts, texts, max_size=8)
settings_block = st.fixed_dictionaries({}, optional={
    "lag_enabled": st.booleans(), "lag_factor": numbers, "timing": timing,
    "failures": st.fixed_dictionaries({}, optional={
        "rate": st.floats(0, 1), "statuses": st.lists(st.integers(400, 599), min_size=1, max_size=3), "seed": st.integers(0, 99)}),
    "rate_limits": st.fixed_dictionaries({}, optional={"requests_per_minute": st.integers(1, 999),
                                                       "tokens_per_minute": st.floats(1, 1e6)}),
    "models": st.dictionaries(st.sampled_from(["flaky-*", "slow-*", "*"]), st.fixed_dictionaries({}, optional={
        "timing": timing, "error": error, "stream_error": stream_error, "content_filter": content_filter}), max_size=2),
    "note": st.one_of(texts, st.integers(), st.booleans(), st.none())})
files = st.fixed_dictionaries({"responses": st.one_of(entries, plain_entries)}, optional={
    "defaults": st.fixed_dictionaries({"unknown_response": texts}), "settings": settings_block})


def _edit_in_the_admin(edits: list[tuple[int, str]], additions: list[tuple[str, str, int]]):
    """Edit some of the loaded rows' answers and add rows, as the admin does."""
    def edit():
        rows = list(CannedResponse.objects.order_by("position", "id"))
        for number, answer in edits:
            if rows:
                row = rows[number % len(rows)]
                row.answer, row.source = answer, Source.ADMIN
                row.save()
        for prompt, answer, priority in additions:
            row = CannedResponse(prompt=prompt, answer=answer, options={"match": "contains", "priority": priority})
            row.options = validate_row(row.prompt, row.answer, row.options)
            with contextlib.suppress(Exception), transaction.atomic():  # the admin refuses a duplicate
                row.full_clean(exclude=["key_digest"])
                row.save()
    return edit


requests = st.builds(request, texts, model=st.sampled_from(["gpt-4o", "claude-x", "m"]), provider=st.sampled_from(PROVIDERS),
                     tools=st.lists(names, max_size=2).map(tuple), has_tool_result=st.booleans(), turn=st.integers(1, 4),
                     system=texts, other=texts)


@settings(max_examples=int(os.environ.get("MOCKLLM_FUZZ_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(files, st.lists(st.tuples(st.integers(0, 99), texts), max_size=2),
       st.lists(st.tuples(texts, texts, st.integers(-1, 1)), max_size=2), st.lists(requests, max_size=5))
def test_any_file_loads_dumps_and_loads_as_the_same_set(document, edits, additions, extra_requests):
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    try:
        parse_responses(text)
    except ResponsesFileError:
        assume(False)  # not a valid file (a prompt given twice in the plain form, say)
    before, after, _ = round_trip(text, _edit_in_the_admin(edits, additions))
    assert_same_set(before, after, extra_requests)


def test_an_entry_that_does_not_read_back_is_written_literally_or_refused(monkeypatch):
    load('responses:\n  - match: "think hard"\n    response: {thinking: "Two and two.", text: "4"}\n'
         '  - match: "plain"\n    response: "as ever"\n')
    before = current_state()
    written_as_people_do = dumping._reply

    def forgetful(reply, literal, turn=False):  # a bug that loses the thinking, except in the literal form
        shaped = written_as_people_do(reply, literal, turn)
        return shaped if literal or not isinstance(shaped, dict) else {k: v for k, v in shaped.items() if k != "thinking"}

    monkeypatch.setattr(dumping, "_reply", forgetful)
    text = dump_default_set().text
    assert '"think hard"\n    response:\n      text: "4"\n      thinking: "Two and two."' in text  # quoted throughout
    assert '- match: plain\n    response: "as ever"' in text  # the others as before
    with empty_database():
        load(text)
        assert_same_set(before, current_state())

    monkeypatch.setattr(dumping, "_reply", lambda reply, literal, turn=False: "forgotten")
    with pytest.raises(DumpError, match="the entry 'think hard' would not read back as itself"):
        dump_default_set()
