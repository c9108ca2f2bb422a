"""Every responses-file example in the README and docs/ loads, and behaves as the page says through the SDKs."""
from __future__ import annotations

import base64
import json
import os
import re
import struct
import subprocess

import httpx
import openai
import pydantic
import pytest

from responses_app.loading import parse_responses

from .conftest import ROOT, anthropic_client, openai_client

# The front page and the reference pages, by their path from the project root.
PAGES = {path.relative_to(ROOT).as_posix(): path.read_text()
         for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
BLOCKS = [(page, block) for page, text in PAGES.items() for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
NAMED = [(m.group(1), block) for _, block in BLOCKS if (m := re.match(r"# example: (\S+)", block))]
EXAMPLES = dict(NAMED)
CONTROL_TOKEN_FOR_EXAMPLES = "control-token-for-the-docs-0123456789"


def test_the_docs_have_an_example_per_feature():
    assert set(EXAMPLES) >= {"matching", "restrictions", "tools", "agent-loop", "details", "embeddings"}
    assert len(EXAMPLES) == len(NAMED), "two examples share a name"


@pytest.mark.parametrize("page, block", BLOCKS, ids=[f"{page}:{block.splitlines()[0][:40]}" for page, block in BLOCKS])
def test_every_yaml_example_in_the_docs_loads_cleanly(page, block):
    parsed = parse_responses(block, page)
    assert parsed.entries
    assert parsed.warnings == ()


def test_the_readme_is_a_front_page():
    assert len(PAGES["README.md"].splitlines()) <= 150, "the reference belongs in docs/"


def headings(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    prose = re.sub(r"^( *)```.*?^\1```", "", text, flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", prose, flags=re.M)}


def test_every_relative_link_points_to_an_existing_file_and_heading():
    broken = []
    for page, text in PAGES.items():
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^( *)```.*?^\1```", "", text, flags=re.S | re.M))
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if "://" in target or target.startswith("mailto:"):
                continue
            path, _, anchor = target.partition("#")
            linked = (ROOT / page).parent / path if path else ROOT / page
            if not linked.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in headings(linked.read_text()):
                broken.append(f"{page}: {target} (no such heading)")
    assert broken == []


@pytest.fixture(scope="module")
def examples_server(tmp_path_factory):
    from .conftest import make_server

    # Concatenated as text: a generic YAML library would read the key `on:` as the boolean true.
    items = [block.split("responses:\n", 1)[1] for block in EXAMPLES.values()]
    text = "responses:\n" + "".join(items) + 'defaults:\n  unknown_response: "no canned answer"\n'
    assert parse_responses(text).warnings == ()  # the examples do not shadow one another
    srv = make_server(tmp_path_factory.mktemp("examples"), responses=text,
                      MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN_FOR_EXAMPLES).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def oa(examples_server):
    return openai_client(examples_server)


@pytest.fixture(scope="module")
def an(examples_server):
    return anthropic_client(examples_server)


def chat(oa, text, **kw):
    return oa.chat.completions.create(model=kw.pop("model", "mock-llm"),
                                      messages=kw.pop("messages", [{"role": "user", "content": text}]), **kw)


def test_each_matching_rule(oa):
    assert chat(oa, "what is the capital of France?").choices[0].message.content == "Paris."
    assert chat(oa, "HELLO   there").choices[0].message.content == "General Kenobi."
    assert chat(oa, "Tell me a JOKE please").choices[0].message.content.startswith("Why did the mock cross")
    assert chat(oa, "Translate cheese to French").choices[0].message.content == "Voilà."
    reply = chat(oa, "", messages=[{"role": "system", "content": "You are a pirate."},
                                   {"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Arr, matey."


def test_restrictions_and_priority(oa, an):
    assert chat(oa, "which model are you?", model="gpt-4o").choices[0].message.content == "A GPT-4 class mock."
    reply = an.messages.create(model="claude-haiku-4-5", max_tokens=50,
                               messages=[{"role": "user", "content": "which model are you?"}])
    assert reply.content[0].text == "A Claude-shaped mock."
    assert chat(oa, "which model are you?", model="mistral").choices[0].message.content == "no canned answer"
    tool = {"type": "function", "function": {"name": "get_forecast", "parameters": {"type": "object"}}}
    assert chat(oa, "forecast?", tools=[tool]).choices[0].message.content == "Use the forecast tool for that."
    after = chat(oa, "", messages=[
        {"role": "user", "content": "forecast?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_forecast", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"}])
    assert after.choices[0].message.content == "The forecast says sunshine."
    assert chat(oa, "urgent: the weather!").choices[0].message.content == "Escalating."


def test_tool_calls_through_the_openai_sdk(oa):
    reply = chat(oa, "what is the weather in paris?")
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and reply.choices[0].message.content is None
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    with oa.chat.completions.stream(model="m", messages=[{"role": "user", "content": "compare paris and rome"}]) as s:
        final = s.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me look both up."
    assert [json.loads(c.function.arguments)["city"] for c in message.tool_calls] == ["Paris", "Rome"]
    assert message.tool_calls[1].id == "call_fixed_rome"
    chunks = list(chat(oa, "compare paris and rome", stream=True))
    fragments = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert fragments and all(f.index in (0, 1) for f in fragments)


def test_tool_calls_through_the_anthropic_sdk(an):
    reply = an.messages.create(model="claude-haiku-4-5", max_tokens=50,
                               messages=[{"role": "user", "content": "what is the weather in paris?"}])
    assert reply.stop_reason == "tool_use" and reply.content[0].input == {"city": "Paris", "unit": "celsius"}
    with an.messages.stream(model="claude-haiku-4-5", max_tokens=50,
                            messages=[{"role": "user", "content": "compare paris and rome"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[2].input == {"city": "Rome"} and final.content[2].id == "call_fixed_rome"


def run_openai_agent(oa, stream: bool) -> list[str]:
    """Drive the documented agent loop like an agent framework would; return what each turn did."""
    messages = [{"role": "user", "content": "book me a flight to lisbon"}]
    seen = []
    for _ in range(3):
        if stream:
            with oa.chat.completions.stream(model="m", messages=messages) as s:
                message = s.get_final_completion().choices[0].message
        else:
            message = chat(oa, "", messages=messages).choices[0].message
        if not message.tool_calls:
            seen.append(message.content)
            break
        call = message.tool_calls[0]
        seen.append(call.function.name)
        messages.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump()]})
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"ok": true}'})
    return seen


def run_anthropic_agent(an, stream: bool) -> list[str]:
    messages = [{"role": "user", "content": "book me a flight to lisbon"}]
    seen = []
    for _ in range(3):
        if stream:
            with an.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=messages) as s:
                reply = s.get_final_message()
        else:
            reply = an.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=messages)
        uses = [b for b in reply.content if b.type == "tool_use"]
        if not uses:
            seen.append(reply.content[0].text)
            break
        seen.append(uses[0].name)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "ok"}]})
    return seen


EXPECTED_LOOP = ["search_flights", "book_flight", "Booked: TP1234 to Lisbon, leaving 09:40."]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_three_step_agent_loop_through_the_openai_sdk(oa, stream):
    assert run_openai_agent(oa, stream) == EXPECTED_LOOP


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_three_step_agent_loop_through_the_anthropic_sdk(an, stream):
    assert run_anthropic_agent(an, stream) == EXPECTED_LOOP


def test_thinking_finish_reason_usage_and_fixed_ids(oa, an):
    reply = an.messages.create(model="claude-haiku-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "think hard"}])
    assert [b.type for b in reply.content] == ["thinking", "text"]
    assert reply.content[0].thinking == "Two and two make four." and reply.content[0].signature
    with an.messages.stream(model="claude-haiku-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                            messages=[{"role": "user", "content": "think hard"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == "Two and two make four." and final.content[1].text == "4"
    plain = an.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "think hard"}])
    assert [b.type for b in plain.content] == ["text"]
    cut = chat(oa, "cut me off")
    assert cut.choices[0].finish_reason == "length"
    assert an.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "cut me off"}]).stop_reason == "max_tokens"
    snap = chat(oa, "snapshot me")
    assert (snap.id, snap.created, snap.usage.prompt_tokens, snap.usage.completion_tokens) == (
        "chatcmpl-snapshot-0001", 1700000000, 10, 5)


def test_forced_tools_and_schemas_get_minimal_valid_instances(oa, an):
    weather = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
               "required": ["city", "days"]}
    reply = chat(oa, "anything at all", tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                 tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"city": "", "days": 1}
    message = an.messages.create(model="c", max_tokens=50, tools=[{"name": "get_weather", "input_schema": weather}],
                                 tool_choice={"type": "any"}, messages=[{"role": "user", "content": "anything"}])
    assert message.content[-1].input == {"city": "", "days": 1}

    class Plan(pydantic.BaseModel):
        title: str
        steps: list[str]
        priority: int

    parsed = oa.chat.completions.parse(model="m", messages=[{"role": "user", "content": "plan my day"}], response_format=Plan)
    assert parsed.choices[0].message.parsed == Plan(title="", steps=[], priority=0)


def test_embeddings_canned_derived_and_base64(oa, examples_server):
    canned = oa.embeddings.create(model="text-embedding-3-small", input="the quick brown fox", encoding_format="float")
    assert canned.data[0].embedding == [0.1, 0.2, 0.3, 0.4]
    derived = oa.embeddings.create(model="text-embedding-3-small", input=["a b c", "a b c", "x y z"],
                                   encoding_format="float", dimensions=64)
    first, same, other = (d.embedding for d in derived.data)
    assert first == same and len(first) == 64 and abs(sum(v * v for v in first) - 1) < 1e-9
    assert sum(a * b for a, b in zip(first, other)) < 0.9
    raw = httpx.post(f"{examples_server.url}/v1/embeddings",
                     json={"model": "m", "input": "a b c", "encoding_format": "base64", "dimensions": 64}).json()
    decoded = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
    assert all(abs(x - y) < 1e-6 for x, y in zip(decoded, first))


def test_models_in_both_shapes(oa, an):
    assert "mock-llm" in [m.id for m in oa.models.list()] and oa.models.retrieve("gpt-4o").owned_by == "mockllm"
    listed = list(an.models.list(limit=2))
    assert [m.id for m in listed][:2] == ["mock-llm", "gpt-4o"] and len(listed) == 6  # pages until has_more is false
    assert an.models.retrieve("claude-haiku-4-5").display_name == "Claude Haiku 4 5"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("no-such-model")


def test_count_tokens_matches_usage(an):
    messages = [{"role": "user", "content": "what is the capital of France?"}]
    counted = an.messages.count_tokens(model="c", messages=messages, system="Be terse.")
    used = an.messages.create(model="c", max_tokens=10, messages=messages, system="Be terse.")
    assert counted.input_tokens == used.usage.input_tokens == 13  # "Be terse." 4 + the question 9


def test_responses_api_json_stream_and_tools(oa):
    reply = oa.responses.create(model="m", input="what is the capital of France?", instructions="Be terse.")
    assert reply.output_text == "Paris." and reply.id.startswith("resp_")
    with oa.responses.stream(model="m", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "what is the capital of France?"}]}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        assert "".join(deltas) == stream.get_final_response().output_text == "Paris."
    calls = oa.responses.create(model="m", input="what is the weather in paris?")
    assert [o.type for o in calls.output] == ["function_call"] and calls.output[0].name == "get_weather"


def test_legacy_completions(oa, examples_server):
    reply = oa.completions.create(model="m", prompt="what is the capital of France?")
    assert reply.choices[0].text == "Paris." and reply.object == "text_completion"
    lenient = openai.OpenAI(base_url=f"{examples_server.url}/v1", api_key="k", max_retries=0)
    chunks = list(lenient.completions.create(model="m", prompt="what is the capital of France?", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "Paris."


def test_an_unmatched_request_says_which_entries_came_close(examples_server):
    response = httpx.post(f"{examples_server.url}/v1/chat/completions", json={
        "model": "claude-x", "messages": [{"role": "user", "content": "which model are you?"}]})
    assert response.json()["choices"][0]["message"]["content"] == "no canned answer"
    assert "model 'claude-x' does not match 'gpt-4*'" in response.headers["x-mockllm-near-miss"]
    assert response.headers["x-mockllm-match"] == "default"


def test_loadresponses_warns_about_entries_that_can_never_match(tmp_path):
    from .conftest import manage

    path = tmp_path / "shadow.yml"
    path.write_text('responses:\n  - match: {contains: weather}\n    response: "sunny"\n'
                    '  - match: "what is the weather?"\n    response: "never served"\n')
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PATH": "/usr/bin:/bin"}
    manage(env, "migrate", "--noinput")
    result = manage(env, "loadresponses", str(path))
    assert "line 4: entry 2 ('what is the weather?') can never match: entry 1 (line 2, contains 'weather')" in result.stderr


def run_shell_example(block: str, port: int, **env: str) -> list:
    """Run each command of a bash example (a line, or lines joined by a trailing backslash) against the
    server on `port`; return each command's output read as JSON."""
    block = re.sub(r"(127\.0\.0\.1|localhost):8000", f"127.0.0.1:{port}", block)
    commands = [line for line in re.split(r"(?<!\\)\n", block) if line.strip() and not line.startswith("#")]
    return [json.loads(subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                                      env={**os.environ, **env}).stdout) for command in commands]


def test_the_front_page_curl_example_works_as_written(server):
    block = re.search(r"```bash\n(curl http://127\.0\.0\.1:8000/v1/.*?)```", PAGES["README.md"], re.S).group(1)
    [reply] = run_shell_example(block, server.port)
    answer = reply["choices"][0]["message"]["content"]
    assert reply["object"] == "chat.completion" and f'"{answer}"' in PAGES["README.md"]


def test_the_test_run_example_works_as_written(examples_server):
    copies = {page: m.group(1) for page, text in PAGES.items() if (m := re.search(r"export TOKEN=[^\n]*\n(.*?)```", text, re.S))}
    assert "docs/team.md" in copies and len(set(copies.values())) == 1, "the copies of the example differ"
    outputs = run_shell_example(copies["docs/team.md"], examples_server.port, TOKEN=CONTROL_TOKEN_FOR_EXAMPLES)
    assert len(outputs) == 4
    added, answer, journal, deleted = outputs
    assert added["test_id"] == "run-42" and added["answer"] == "For how many people?"
    assert answer["choices"][0]["message"]["content"] == "For how many people?"
    assert journal["total"] == 1 and journal["data"][0]["test_id"] == "run-42"
    assert deleted == {"deleted": 1}
