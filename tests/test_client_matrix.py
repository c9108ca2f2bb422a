"""Client libraries beyond the official Python SDKs and LangChain, each against one real server (daphne):
the official TypeScript SDKs (`openai`, `@anthropic-ai/sdk`) and the Vercel AI SDK on node, driven by the
scripts in tests/clients/, and pydantic-ai in this process. Every library runs every scenario: a plain
answer, a stream, a tool round trip, structured output and a 429. The prompts and canned answers are in
tests/clients/scenarios.json, which the node scripts read too; the node packages are pinned in
tests/clients/package.json and its lockfile, installed by `make test` (npm ci)."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .support import ROOT, Server, leave_out_or_fail, make_server, wait_for

CLIENTS = ROOT / "tests" / "clients"
SCENARIOS = json.loads((CLIENTS / "scenarios.json").read_text())
SCENARIO_NAMES = ("plain", "stream", "tool", "structured", "rate_limit")

# library: (node script, its variant argument); the variants of the Vercel AI SDK are its providers.
NODE_LIBRARIES = {
    "openai-node": ("openai.mjs", None),
    "openai-node-azure": ("openai.mjs", "azure"),
    "anthropic-node": ("anthropic.mjs", None),
    "ai-sdk-openai-chat": ("ai-sdk.mjs", "openai-chat"),
    "ai-sdk-openai-responses": ("ai-sdk.mjs", "openai-responses"),
    "ai-sdk-anthropic": ("ai-sdk.mjs", "anthropic"),
    "ai-sdk-google": ("ai-sdk.mjs", "google"),
    "ai-sdk-azure-responses": ("ai-sdk.mjs", "azure-responses"),
    "ai-sdk-azure-chat": ("ai-sdk.mjs", "azure-chat"),
}
PYDANTIC_AI_LIBRARIES = ("pydantic-ai-openai-chat", "pydantic-ai-openai-responses", "pydantic-ai-anthropic",
                         "pydantic-ai-google")
LIBRARIES = (*NODE_LIBRARIES, *PYDANTIC_AI_LIBRARIES)


def family(library: str) -> str:
    return next(name for name in ("ai-sdk", "pydantic-ai", "openai-node", "anthropic-node") if library.startswith(name))


# Each library's own names: how a finished answer and a tool request end, and what a 429 raises.
FINISH = {"openai-node": ("stop", "tool_calls"), "anthropic-node": ("end_turn", "tool_use"),
          "ai-sdk": ("stop", "tool-calls"), "pydantic-ai": ("stop", "tool_call"),
          # The Responses API has no finish reason, only a status ("completed"), which pydantic-ai reads.
          "pydantic-ai-openai-responses": ("stop", "stop"),
          # Gemini ends a function call with finishReason STOP, as the real API does.
          "pydantic-ai-google": ("stop", "stop")}
RATE_LIMIT_ERROR = {"openai-node": "RateLimitError", "anthropic-node": "RateLimitError", "ai-sdk": "APICallError",
                    "pydantic-ai": "ModelRateLimitError"}


def responses_file() -> str:
    plain, tool, structured = SCENARIOS["plain"], SCENARIOS["tool"], SCENARIOS["structured"]
    entries = [
        {"match": plain["prompt"], "response": plain["answer"]},
        # Once the client has sent the tool's result back, the final answer; before, the call.
        {"match": tool["prompt"], "name": "weather-answer", "has_tool_result": True, "response": tool["answer"]},
        {"match": tool["prompt"], "name": "weather-call",
         "response": {"tool_calls": [{"name": tool["tool"], "arguments": tool["arguments"]}]}},
        # One canned record, whether the library sends a JSON schema or forces a tool to get it.
        {"match": structured["prompt"], "name": "weather-record", "response": json.dumps(structured["object"])},
    ]
    return yaml.safe_dump({"responses": entries, "defaults": {"unknown_response": "no canned answer"}}, sort_keys=False)


@pytest.fixture(scope="module")
def matrix_server(tmp_path_factory: pytest.TempPathFactory):
    srv = make_server(tmp_path_factory.mktemp("matrix"), responses=responses_file()).start(daphne=True)
    yield srv
    srv.stop(wait=False)


@pytest.fixture(scope="module")
def node() -> str:
    """node, with tests/clients/node_modules holding the pinned versions of package.json."""
    node = shutil.which("node")
    if node is None:
        leave_out_or_fail("node is not installed: the client matrix's node libraries need it (Node 20 or later)")
    pinned = json.loads((CLIENTS / "package.json").read_text())["dependencies"]
    for name, version in pinned.items():
        installed = CLIENTS / "node_modules" / name / "package.json"
        found = json.loads(installed.read_text())["version"] if installed.exists() else None
        if found != version:
            leave_out_or_fail(f"tests/clients/node_modules lacks {name} {version} ({f'has {found}' if found else 'not installed'}): "
                              "run `make test` (or `npm ci --prefix tests/clients`)")
    return node


def run_node(node: str, srv: Server, library: str, scenario: str) -> dict[str, Any]:
    script, variant = NODE_LIBRARIES[library]
    argv = [node, script, srv.url, scenario] + ([variant] if variant else [])
    done = subprocess.run(argv, cwd=CLIENTS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv[1:])} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
@pytest.mark.parametrize("library", LIBRARIES)
def test_client_library(library: str, scenario: str, matrix_server: Server, request: pytest.FixtureRequest):
    if library in NODE_LIBRARIES:
        result = run_node(request.getfixturevalue("node"), matrix_server, library, scenario)
    else:
        result = run_pydantic_ai(matrix_server, library, scenario)
    done, tool_finish = FINISH.get(library) or FINISH[family(library)]

    if scenario == "plain":
        assert result["text"] == SCENARIOS["plain"]["answer"]
        assert result["finish"] == done
    elif scenario == "stream":
        assert result["text"] == SCENARIOS["plain"]["answer"]
        assert result["chunks"] > 1, "the answer came in one piece: it was not streamed"
        assert result["finish"] == done
        assert result.get("final_text", result["text"]) == result["text"]  # the stream helper's final message
    elif scenario == "tool":
        tool = SCENARIOS["tool"]
        assert (result["tool"], result["arguments"]) == (tool["tool"], tool["arguments"])
        assert result["finish"] == tool_finish
        assert result["text"] == tool["answer"]  # only sent once the request carries the tool's result
        assert result.get("executed", [tool["arguments"]]) == [tool["arguments"]]  # where the library ran the tool
    elif scenario == "structured":
        assert result["parsed"] == SCENARIOS["structured"]["object"]
    else:
        assert (result["error"], result["status"]) == (RATE_LIMIT_ERROR[family(library)], 429), result
        assert result["library_class"] is True, result
        assert result.get("retryable", True) is True  # the Vercel AI SDK would retry it, were retries on


# --- pydantic-ai, in this process ----------------------------------------------------------------

class LoopbackOnly:
    """Notes every host name this process looks up, and every address it connects to, while `watching`,
    that is not this machine: a library that fetches something at run time (prices, tokenizers) would
    fail or hang where only the package registries are reachable."""

    LOOPBACK = ("127.0.0.1", "::1", "localhost")
    watching = False
    outside: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if not cls.watching:
            return
        if event == "socket.getaddrinfo":
            host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        elif event == "socket.connect" and isinstance(args[1], tuple) and args[1]:
            host = args[1][0]
        else:
            return
        if host not in cls.LOOPBACK:
            cls.outside.append(f"{event} {host}")


sys.addaudithook(LoopbackOnly.hook)


def run_pydantic_ai(srv: Server, library: str, scenario: str) -> dict[str, Any]:
    try:
        import pydantic_ai  # noqa: F401
    except ImportError:
        leave_out_or_fail("pydantic-ai is not installed: run `make test` (requirements-dev.txt)")
    LoopbackOnly.outside.clear()
    LoopbackOnly.watching = True
    try:
        result = asyncio.run(pydantic_ai_scenario(srv, library.removeprefix("pydantic-ai-"), scenario))
    finally:
        LoopbackOnly.watching = False
    assert LoopbackOnly.outside == [], f"pydantic-ai connected outside this machine: {LoopbackOnly.outside}"
    return result


def pydantic_ai_model(srv: Server, provider: str, model: str | None = None):
    """A model pointed at the server, and its SDK client (no retries), to be closed in the same event loop."""
    from anthropic import AsyncAnthropic
    from google import genai
    from openai import AsyncOpenAI
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.google import GoogleProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    if provider == "google":  # google-genai's client, on /v1 (its default version); closed with its .aio
        client = genai.Client(api_key="matrix-key", http_options={"base_url": srv.url})
        return GoogleModel(model or SCENARIOS["gemini_model"], provider=GoogleProvider(client=client)), client.aio
    if provider == "anthropic":
        client = AsyncAnthropic(base_url=srv.url, api_key="sk-matrix", max_retries=0)
        return AnthropicModel(model or SCENARIOS["anthropic_model"], provider=AnthropicProvider(anthropic_client=client)), client
    client = AsyncOpenAI(base_url=f"{srv.url}/v1", api_key="sk-matrix", max_retries=0)
    kind = OpenAIChatModel if provider == "openai-chat" else OpenAIResponsesModel
    return kind(model or SCENARIOS["openai_model"], provider=OpenAIProvider(openai_client=client)), client


async def pydantic_ai_scenario(srv: Server, provider: str, scenario: str) -> dict[str, Any]:
    # The rate-limit scenario asks with the model name (the node libraries send X-Mock-Status).
    model, client = pydantic_ai_model(srv, provider, "mock-error-429" if scenario == "rate_limit" else None)
    async with client:
        return await pydantic_ai_run(model, scenario)


async def pydantic_ai_run(model, scenario: str) -> dict[str, Any]:
    import pydantic
    from pydantic_ai import Agent
    from pydantic_ai.exceptions import ModelHTTPError
    from pydantic_ai.messages import ModelResponse, ToolCallPart

    if scenario == "plain":
        result = await Agent(model).run(SCENARIOS["plain"]["prompt"])
        return {"text": result.output, "finish": result.response.finish_reason}
    if scenario == "stream":
        async with Agent(model).run_stream(SCENARIOS["plain"]["prompt"]) as stream:
            pieces = [delta async for delta in stream.stream_text(delta=True, debounce_by=None)]
            response = stream.response
        return {"text": "".join(pieces), "chunks": len(pieces), "finish": response.finish_reason}
    if scenario == "tool":
        agent = Agent(model)
        executed = []

        @agent.tool_plain
        def get_weather(city: str) -> str:
            """The current weather in a city"""
            executed.append({"city": city})
            return SCENARIOS["tool"]["tool_result"]

        result = await agent.run(SCENARIOS["tool"]["prompt"])
        first = next(m for m in result.all_messages() if isinstance(m, ModelResponse))
        call = next(p for p in first.parts if isinstance(p, ToolCallPart))
        return {"tool": call.tool_name, "arguments": call.args_as_dict(), "finish": first.finish_reason,
                "executed": executed, "text": result.output}
    if scenario == "structured":
        class Weather(pydantic.BaseModel):
            city: str
            degrees: int
            sunny: bool

        # pydantic-ai's default output mode: it forces a tool (final_result) whose arguments are the record.
        result = await Agent(model, output_type=Weather).run(SCENARIOS["structured"]["prompt"])
        return {"parsed": result.output.model_dump()}
    try:
        await Agent(model).run(SCENARIOS["rate_limit"]["prompt"])
    except ModelHTTPError as error:
        return {"error": type(error).__name__, "status": error.status_code, "library_class": True}
    return {"error": None}


@pytest.mark.parametrize("library, path", [
    ("openai-node-azure", "/openai/deployments/{model}/chat/completions"),
    ("ai-sdk-azure-chat", "/openai/deployments/{model}/chat/completions"),
    ("ai-sdk-azure-responses", "/openai/v1/responses"),
])
def test_the_azure_provider_reaches_the_azure_paths(library: str, path: str, matrix_server: Server, node: str):
    """The Azure clients' routes, streamed: through Azure's shapes (the choiceless first chunk included)."""
    path = path.format(model=SCENARIOS["openai_model"])
    before = len([line for line in matrix_server.log_events("request") if line["path"] == path])
    result = run_node(node, matrix_server, library, "stream")
    assert result["text"] == SCENARIOS["plain"]["answer"]

    def lines() -> list[dict]:
        return [line for line in matrix_server.log_events("request") if line["path"] == path]
    wait_for(lambda: len(lines()) > before)
    assert (lines()[-1]["provider"], lines()[-1]["stream"], lines()[-1]["status"]) == ("azure", True, 200)
