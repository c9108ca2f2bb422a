"""Every example in the README and docs/ is run: the responses-file examples load and behave as the page
says through the SDKs; the shell and Python examples run as written against a test server."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import openai
import pydantic
import pytest
import yaml

from responses_app.canned.responses_file import parse_responses

from .support import FIXTURES, ROOT, anthropic_client, control, copy_migrated_sqlite, make_server, manage, openai_client

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
    assert [m.id for m in listed][:2] == ["mock-llm", "gpt-4o"] and len(listed) == 8  # pages until has_more is false
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
    path = tmp_path / "shadow.yml"
    path.write_text('responses:\n  - match: {contains: weather}\n    response: "sunny"\n'
                    '  - match: "what is the weather?"\n    response: "never served"\n')
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PATH": "/usr/bin:/bin"}
    manage(env, "migrate", "--noinput")
    result = manage(env, "loadresponses", str(path))
    assert "line 4: entry 2 ('what is the weather?') can never match: entry 1 (line 2, contains 'weather')" in result.stderr


# ---- Every other code block: shell sessions and Python ---------------------------------------------
# Each fenced block of README.md and docs/*.md that is not a responses file is run by a test below, as
# written, against a server started here (127.0.0.1:8000 and localhost:8000 become its address), or is
# listed in NOT_RUNNABLE with the reason. A block is known by its page and its first line, without a
# trailing comment or backslash.

def code_blocks(text: str) -> list[str]:
    """A page's fenced blocks other than responses files, without the indentation of a list item."""
    return [textwrap.dedent(m.group(3)) for m in re.finditer(r"^( *)```(\S*)\n(.*?)^\1```", text, flags=re.S | re.M)
            if m.group(2) not in ("yaml", "yml")]


def first_line(block: str) -> str:
    return re.sub(r"\s+(#.*|\\)$", "", block.splitlines()[0])


CODE_BLOCKS = [(page, first_line(block), block) for page, text in PAGES.items() for block in code_blocks(text)]
CODE = {(page, line): block for page, line, block in CODE_BLOCKS}

NOT_RUNNABLE = {
    ("README.md", "make run"): "sets up .venv and serves until stopped; the tests start the same runserver themselves",
    ("README.md", "make test"): "runs the whole suite, this file included",
    ("docs/admin.md", "python manage.py createsuperuser"):
        "asks for a name and a password at a terminal; its unattended form in docs/team.md is run",
    ("docs/deployment.md", "pip install -r requirements.txt"): "installs packages, then serves until stopped (make run)",
    ("docs/deployment.md", "export MOCKLLM_PRODUCTION=1 SECRET_KEY=\"$(python -c 'import secrets; "
                           "print(secrets.token_urlsafe(60))')\""):
        "needs PostgreSQL and Redis hosts and serves in the background; test_security.py runs its check --deploy "
        "and test_shared_deployment.py its uvicorn command",
    ("docs/record-and-replay.md", "export MOCKLLM_RECORD=miss"):
        "forwards to the real provider APIs, which tests cannot reach, and serves until stopped; "
        "tests/test_record_replay.py records the same way with a second server as the upstream",
    ("docs/record-and-replay.md", "python manage.py driftcheck"):
        "needs an upstream API; tests/test_record_replay.py runs driftcheck against a second server before and "
        "after its answers change shape",
}
RUN: set[tuple[str, str]] = set()


def runs(*examples: tuple[str, str]):
    """Give a test, as its `block` argument, each code block it runs (a page and the block's first line)."""
    RUN.update(examples)
    return pytest.mark.parametrize("block", [CODE.get(name, "") for name in examples], ids=[page for page, _ in examples])


def test_every_code_block_in_the_docs_is_run_or_listed():
    names = [(page, line) for page, line, _ in CODE_BLOCKS]
    assert len(set(names)) == len(names), "two blocks of a page start with the same line"
    assert not RUN & set(NOT_RUNNABLE)
    assert set(names) - RUN - set(NOT_RUNNABLE) == set(), \
        "run each in a test of this module (@runs(page, first line)), or list it in NOT_RUNNABLE with the reason"
    assert (RUN | set(NOT_RUNNABLE)) - set(names) == set(), "named here, but no longer in the docs"


BIN = Path(sys.executable).parent  # `python` in the examples is this environment's
SEPARATE_CURLS = 'curl() { command curl "$@" && printf "\\036"; }\n'  # each curl's output ends with a \x1e


def at_server(block: str, port: int) -> str:
    return re.sub(r"\b(?:127\.0\.0\.1|localhost):8000\b", f"127.0.0.1:{port}", block)


def run_bash(block: str, *, cwd: Path, port: int | None = None, fill: dict[str, str] | None = None,
             **env: str) -> subprocess.CompletedProcess:
    """Run a shell example with bash in `cwd`, stopping at its first failing command: pointed at the server
    on `port`, at this checkout's manage.py, and with the placeholders in `fill` filled in."""
    script = at_server(block, port) if port else block
    script = script.replace("python manage.py", f"python {ROOT / 'manage.py'}")
    for placeholder, value in (fill or {}).items():
        assert placeholder in script, f"the example no longer has {placeholder!r}"
        script = script.replace(placeholder, value)
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(["bash", "-e", "-c", SEPARATE_CURLS + script], cwd=cwd, env=full_env, text=True,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def curl_outputs(result: subprocess.CompletedProcess) -> list[str]:
    return result.stdout.split("\x1e")[:-1]


def sse_events(stream: str) -> list[tuple[str, str]]:
    """(event name, data) of each event of a Server-Sent Events stream."""
    events = []
    for chunk in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((fields.get("event", ""), fields["data"]))
    return events


SKY = yaml.safe_load((FIXTURES / "responses.yml").read_text())["responses"]["what colour is the sky?"]


@runs(("README.md", "curl http://127.0.0.1:8000/v1/chat/completions"))
def test_the_front_page_curl_example(server, tmp_path, block):
    [output] = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    reply = json.loads(output)
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["content"] == SKY
    assert f'"{SKY}"' in PAGES["README.md"]


@runs(("README.md", "from openai import OpenAI"))
def test_the_front_page_sdk_example(server, block):
    result = subprocess.run([sys.executable, "-c", at_server(block, server.port)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [SKY, SKY]  # OpenAI, then Anthropic streamed


@runs(("docs/providers.md", "curl http://127.0.0.1:8000/v1/chat/completions"))
def test_the_openai_curl_examples(server, tmp_path, block):
    plain, streamed = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    reply = json.loads(plain)
    assert reply["choices"][0]["message"]["content"] == SKY
    assert reply["usage"]["prompt_tokens"] == 7  # "`what colour is the sky?` is 7" (Token counts)
    events = sse_events(streamed)
    assert events[-1] == ("", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == SKY
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == reply["usage"]  # the final usage chunk


@runs(("docs/providers.md", "curl http://127.0.0.1:8000/v1/messages"))
def test_the_anthropic_curl_examples(server, tmp_path, block):
    plain, streamed = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    reply = json.loads(plain)
    assert reply["type"] == "message" and reply["content"] == [{"type": "text", "text": SKY}]
    events = sse_events(streamed)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    deltas = [json.loads(data)["delta"] for name, data in events if name == "content_block_delta"]
    assert "".join(d["text"] for d in deltas) == SKY


@runs(("docs/providers.md", "from google import genai"))
def test_the_google_genai_example(server, block):
    result = subprocess.run([sys.executable, "-c", at_server(block, server.port)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [SKY, SKY, SKY]  # Gemini, Gemini streamed, Vertex AI


@runs(("docs/providers.md", 'curl "http://127.0.0.1:8000/v1beta/models/gemini-2.5-flash:generateContent"'))
def test_the_gemini_curl_examples(server, tmp_path, block):
    plain, streamed = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    reply = json.loads(plain)
    assert reply["candidates"][0]["content"] == {"parts": [{"text": SKY}], "role": "model"}
    assert reply["usageMetadata"]["promptTokenCount"] == 7 and reply["modelVersion"] == "gemini-2.5-flash"
    chunks = [json.loads(data) for _, data in sse_events(streamed.replace("\r\n", "\n"))]
    assert "".join(c["candidates"][0]["content"]["parts"][0].get("text", "") for c in chunks) == SKY
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"] == reply["usageMetadata"]


@runs(("docs/providers.md", "import json"))
def test_the_bedrock_boto3_example(server, block):
    result = subprocess.run([sys.executable, "-c", at_server(block, server.port)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{SKY} end_turn", SKY, SKY]  # Converse, its stream, InvokeModel


@runs(("docs/providers.md", "from ollama import Client"))
def test_the_ollama_client_example(server, block):
    result = subprocess.run([sys.executable, "-c", at_server(block, server.port)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{SKY} 24", SKY]  # the answer and its eval_count, then streamed


@runs(("docs/providers.md", "curl http://127.0.0.1:8000/api/chat -d '{\"model\": \"llama3.2\","))
def test_the_ollama_curl_examples(server, tmp_path, block):
    streamed, plain = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    lines = [json.loads(line) for line in streamed.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == SKY
    assert [line["done"] for line in lines].count(True) == 1 and lines[-1]["done_reason"] == "stop"
    reply = json.loads(plain)
    assert reply["response"] == SKY and reply["done"] and reply["prompt_eval_count"] == 7


@runs(("docs/failures.md", "# any status from 400 to 599; retry-after / retry-after-ms and x-should-retry when asked for"))
def test_the_x_mock_status_example(server, tmp_path, block):
    [output] = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    head, body = output.split("\n\n", 1)  # (text mode reads \r\n as \n)
    status, *lines = head.splitlines()
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    assert status.split()[1] == "429"
    assert (headers["retry-after"], headers["retry-after-ms"], headers["x-should-retry"]) == ("2", "2000", "true")
    assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}  # the OpenAI shape


@runs(("docs/providers.md", "from openai import AzureOpenAI"))
def test_the_azure_openai_example(server, block):
    result = subprocess.run([sys.executable, "-c", at_server(block, server.port)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [SKY, "{'filtered': False, 'severity': 'safe'}", SKY]  # JSON, then streamed


@runs(("docs/failures.md", 'curl -s "http://127.0.0.1:8000/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"'))
def test_the_content_filter_example(server, tmp_path, block):
    [output] = curl_outputs(run_bash(block, cwd=tmp_path, port=server.port))
    error = json.loads(output)["error"]
    assert (error["code"], error["param"], error["status"]) == ("content_filter", "prompt", 400)
    assert error["innererror"]["content_filter_result"]["hate"] == {"filtered": True, "severity": "high"}


@runs(("README.md", "export TOKEN=..."), ("docs/team.md", "export TOKEN=..."))
def test_the_test_run_example(examples_server, tmp_path, block):
    # The example reads the run's journal: start without the entries of an earlier run of it.
    control(examples_server, "DELETE", "journal", token=CONTROL_TOKEN_FOR_EXAMPLES, params={"test_id": "run-42"})
    outputs = curl_outputs(run_bash(block, cwd=tmp_path, port=examples_server.port,
                                    fill={"TOKEN=...": f"TOKEN={CONTROL_TOKEN_FOR_EXAMPLES}"}))
    added, answer, journal, deleted = map(json.loads, outputs)
    assert added["test_id"] == "run-42" and added["answer"] == "For how many people?"
    assert answer["choices"][0]["message"]["content"] == "For how many people?"
    assert journal["total"] == 1 and journal["data"][0]["test_id"] == "run-42"
    assert deleted == {"deleted": 1}


@runs(("docs/team.md", "@pytest.fixture"))
def test_the_pytest_fixture_example(examples_server, tmp_path, block):
    assert "http://mock:8000/control" in block
    fixture = block.replace("http://mock:8000", examples_server.url)
    (tmp_path / "test_with_the_fixture.py").write_text(
        "import os\nimport uuid\n\nimport httpx\nimport pytest\n\n" + fixture + f"""
RUNS = []


def test_a_run_scripts_its_own_answer(mock_run):
    run, control = mock_run
    RUNS.append(run)
    assert control.post("/responses", json={{"match": "ping", "response": "pong"}}).status_code == 201
    reply = httpx.post("{examples_server.url}/v1/chat/completions", headers={{"X-Mock-Test-Id": run}},
                       json={{"model": "m", "messages": [{{"role": "user", "content": "ping"}}]}})
    assert reply.json()["choices"][0]["message"]["content"] == "pong"


def test_the_fixture_took_the_runs_answers_away():
    left = httpx.get("{examples_server.url}/control/responses", params={{"test_id": RUNS[0]}},
                     headers={{"Authorization": "Bearer {CONTROL_TOKEN_FOR_EXAMPLES}"}})
    assert left.json()["data"] == []
""")
    env = {**os.environ, "MOCK_CONTROL_TOKEN": CONTROL_TOKEN_FOR_EXAMPLES, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_with_the_fixture.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout


@pytest.fixture
def database(tmp_path):
    """A freshly migrated database in tmp_path, for the management-command examples run there."""
    copy_migrated_sqlite(tmp_path / "db.sqlite3")
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "MOCKLLM_RESPONSES_FILE": str(tmp_path / "responses.yml")}


@runs(("docs/responses-file.md", "python manage.py loadresponses responses.yml"))
def test_the_loadresponses_example(tmp_path, database, block):
    # It loads the file shown just above it.
    above = PAGES["docs/responses-file.md"].split(block)[0]
    (tmp_path / "responses.yml").write_text(re.findall(r"```yaml\n(.*?)```", above, re.S)[-1])
    result = run_bash(block, cwd=tmp_path, **database)
    said = re.search(r"^# (Loaded .*)$", block, re.M).group(1)
    assert result.stdout.strip() == said.replace("/path/responses.yml", str(tmp_path / "responses.yml"))


@runs(("docs/responses-file.md", "python manage.py dumpresponses --output responses.yml"))
def test_the_dumpresponses_example(tmp_path, database, block):
    shutil.copy(FIXTURES / "responses.yml", tmp_path / "responses.yml")
    manage({**os.environ, **database}, "loadresponses")
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:  # an edit made in the admin
        db.execute("UPDATE responses_app_cannedresponse SET answer = 'Green, today.', source = 'admin' "
                   "WHERE prompt = 'what colour is the sky?'")
    result = run_bash(block, cwd=tmp_path, **database)
    said = re.search(r"^# (Wrote .*)$", block, re.M).group(1)
    assert result.stderr.strip() == said.replace("/path/responses.yml", str(tmp_path / "responses.yml"))
    dumped = yaml.safe_load((tmp_path / "responses.yml").read_text())
    fixture = yaml.safe_load((FIXTURES / "responses.yml").read_text())
    assert dumped["responses"] == {**fixture["responses"], "what colour is the sky?": "Green, today."}
    assert (dumped["defaults"], dumped["settings"]) == (fixture["defaults"], fixture["settings"])


@runs(("docs/team.md", "python manage.py prunejournal"))
def test_the_prunejournal_example(tmp_path, database, block):
    result = run_bash(block, cwd=tmp_path, **database)
    configured, configured_runs, given, given_runs = result.stdout.splitlines()
    assert "(newest 100000, last 7" in configured and "untouched for 24 hours" in configured_runs
    assert "(newest 1000, last 1" in given and "untouched for 2 hours" in given_runs


@runs(("docs/team.md", "python manage.py createsuperuser"))
def test_the_createsuperuser_example(tmp_path, database, block):
    # Without a terminal, the interactive first line does nothing; the unattended second makes the account.
    result = run_bash(block, cwd=tmp_path, **database, fill={
        "DJANGO_SUPERUSER_PASSWORD=...": "DJANGO_SUPERUSER_PASSWORD=a-long-password-for-the-docs",
        "--username NAME --email EMAIL": "--username docs --email docs@example.com"})
    assert "Superuser created successfully." in result.stdout
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        row = db.execute("SELECT is_superuser, is_staff, email, password FROM auth_user WHERE username = 'docs'").fetchone()
    assert row[:3] == (1, 1, "docs@example.com") and not row[3].startswith("!")  # "!": no usable password


@runs(("docs/architecture.md", "mockllm_site/            settings (all read from the environment, in settings.py), "
                               "URLs, ASGI entry point"))
def test_the_layout_in_the_architecture_page_is_the_code_s(block):
    """Every module the layout names exists where it says, and every module of the app is named."""
    named, folders = set(), []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        folders = [(depth, name) for depth, name in folders if depth < indent]
        words = line.split()
        if words and words[0].endswith("/"):
            folders.append((indent, words[0].rstrip("/")))
            continue
        for word in words:
            if re.fullmatch(r"\w+\.py", word.rstrip(":,")):
                named.add("/".join([name for _, name in folders] + [word.rstrip(":,")]))
    assert named and all((ROOT / path).is_file() for path in named), sorted(p for p in named if not (ROOT / p).is_file())
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "responses_app").rglob("*.py")
               if path.name != "__init__.py" and not {"migrations", "management"} & set(path.parts)}
    assert modules - named == set(), "modules the layout does not name"


RECORDING = """responses:
  - match: "What is the capital of France?"
    recorded: 3f1d0c5e9a7b4c2d8e6f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d
    name: recorded chat gpt-4o
    response:
      text: "The capital of France is Paris."
      finish_reason: stop
      usage: {input_tokens: 14, output_tokens: 8}
"""


@runs(("docs/record-and-replay.md", 'curl -X PUT localhost:8000/control/record -H "Authorization: Bearer $TOKEN"'))
def test_the_record_mode_example(examples_server, tmp_path, block):
    outputs = curl_outputs(run_bash(block, cwd=tmp_path, port=examples_server.port, TOKEN=CONTROL_TOKEN_FOR_EXAMPLES))
    said = re.findall(r"^# (\{.*\})$", block, re.M)
    assert [json.loads(output) for output in outputs] == [json.loads(line) for line in said]


@runs(("docs/record-and-replay.md", "python manage.py dumpresponses --recordings --output recordings.yml"))
def test_the_recordings_export_example(tmp_path, database, block):
    (tmp_path / "responses.yml").write_text('responses:\n  - match: "hello"\n    response: "Hello!"\n'
                                            + RECORDING.split("responses:\n")[1])
    manage({**os.environ, **database}, "loadresponses")
    result = run_bash(block, cwd=tmp_path, **database)
    assert re.search(r"^# Wrote \d+ responses to /path/recordings.yml$", block, re.M)
    assert result.stderr.strip() == f"Wrote 1 response to {tmp_path / 'recordings.yml'}"
    exported = parse_responses((tmp_path / "recordings.yml").read_text())
    assert [entry.options["recorded"] for entry in exported.entries] == [RECORDING.split("recorded: ")[1][:64]]
    assert exported.unknown_response is None and exported.settings is None


@runs(("docs/record-and-replay.md", "export MOCKLLM_RESPONSES_FILE=responses.yml:recordings.yml"))
def test_the_replay_in_ci_example(tmp_path, database, block):
    (tmp_path / "responses.yml").write_text('responses:\n  "hello": "Hello!"\n')
    (tmp_path / "recordings.yml").write_text(RECORDING)
    run_bash(block, cwd=tmp_path, **database)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        rows = dict(db.execute("SELECT prompt, options FROM responses_app_cannedresponse").fetchall())
    assert set(rows) == {"hello", "What is the capital of France?"}
    assert json.loads(rows["What is the capital of France?"])["recorded"].startswith("3f1d0c5e")
