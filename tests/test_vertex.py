"""Vertex AI as google-genai speaks it (`vertexai=True`, a project and a location, an OAuth access token),
against a real server: the Gemini bodies under /{v1beta1|v1}/projects/P/locations/L/publishers/google/models/M."""
from __future__ import annotations

import asyncio

import httpx
import pydantic
import pytest
import yaml
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from responses_app.providers.openai_embeddings import vector_for

from .support import create_api_key, make_server

MODEL = "gemini-2.5-flash"
PROJECT, LOCATION = "qa-project", "europe-west4"
TOKEN = "ya29.vertex-access-token-0123456789"  # a key of the server's, sent as Vertex AI sends its token
PROMPT, ANSWER = "what colour is the sky?", "The sky is blue on a clear day."
RESPONSES = yaml.safe_dump({"responses": [
    {"match": PROMPT, "response": ANSWER},
    {"match": "what is the weather in lisbon?", "response": {
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Lisbon"}}]}},
]}, sort_keys=False)


class City(pydantic.BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("vertex"), responses=RESPONSES, MOCKLLM_REQUIRE_API_KEY="1")
    create_api_key(server, "vertex-bot", TOKEN)
    server.start()
    yield server
    server.stop(wait=False)


def vertex(srv, *, token: str = TOKEN, api_version: str | None = None) -> genai.Client:
    """A Vertex AI client whose credentials hold a ready access token: nothing to refresh, no network."""
    options = {"base_url": srv.url, **({"api_version": api_version} if api_version else {})}
    return genai.Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=Credentials(token=token),
                        http_options=options)


@pytest.mark.parametrize("api_version", [None, "v1"])  # google-genai's default for Vertex AI is v1beta1
def test_generate_content(srv, api_version):
    client = vertex(srv, api_version=api_version)
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text == ANSWER and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.total_token_count > response.usage_metadata.prompt_token_count > 0
    journal_path = f"/{api_version or 'v1beta1'}/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}"
    log = [line for line in srv.log_events("request") if line["path"] == journal_path + ":generateContent"]
    assert log and log[-1]["api_key"] == "vertex-bot" and log[-1]["provider"] == "gemini"


def test_streamed_sync_and_async(srv):
    client = vertex(srv)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) > 1 and "".join(chunk.text for chunk in chunks) == ANSWER

    async def run():
        answer = await client.aio.models.generate_content(model=MODEL, contents=PROMPT)
        pieces = [chunk.text async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)]
        return answer.text, pieces

    text, pieces = asyncio.run(run())
    assert text == ANSWER and len(pieces) > 1 and "".join(pieces) == ANSWER


def test_function_call_and_structured_output(srv):
    client = vertex(srv)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}))])])
    [call] = client.models.generate_content(model=MODEL, contents="what is the weather in lisbon?", config=config).function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Lisbon"}) and call.id
    structured = client.models.generate_content(model=MODEL, contents="a city, please", config=types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=City))
    assert structured.parsed == City(name="", population=0)


def test_count_tokens_and_embeddings(srv):
    client = vertex(srv)
    assert client.models.count_tokens(model=MODEL, contents=PROMPT).total_tokens == \
        client.models.generate_content(model=MODEL, contents=PROMPT).usage_metadata.prompt_token_count
    # Gemini embedding models go to :embedContent, one content at a time; the others to :predict.
    gemini_embedding = client.models.embed_content(model="gemini-embedding-2", contents="red apples",
                                                   config=types.EmbedContentConfig(output_dimensionality=8))
    predicted = client.models.embed_content(model="text-embedding-005", contents=["red apples", "green pears"],
                                            config=types.EmbedContentConfig(output_dimensionality=8))
    assert gemini_embedding.embeddings[0].values == pytest.approx(vector_for("red apples", 8))
    assert [e.values for e in predicted.embeddings] == [pytest.approx(vector_for(t, 8)) for t in ("red apples", "green pears")]
    assert predicted.embeddings[0].statistics.token_count > 0


def test_an_unknown_token_is_unauthenticated_and_a_429_is_a_client_error(srv):
    stranger = vertex(srv, token="ya29.not-a-known-token")
    with pytest.raises(errors.ClientError) as raised:
        stranger.models.generate_content(model=MODEL, contents=PROMPT)
    assert (raised.value.code, raised.value.status) == (401, "UNAUTHENTICATED")
    client = vertex(srv)
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=MODEL, contents=PROMPT,
                                       config=types.GenerateContentConfig(http_options=types.HttpOptions(
                                           headers={"X-Mock-Status": "429"})))
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_unknown_vertex_paths_are_gemini_shaped_404s(srv):
    base = f"{srv.url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}"
    answer = httpx.post(f"{base}/endpoints/123:rawPredict", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": 404, "status": "NOT_FOUND", "message": answer.json()["error"]["message"]}}


def test_models_list_and_get(srv):
    client = vertex(srv)
    names = [model.name for model in client.models.list()]
    assert f"publishers/google/models/{MODEL}" in names
    assert client.models.get(model=MODEL).name == f"publishers/google/models/{MODEL}"
    with pytest.raises(errors.ClientError) as raised:
        client.models.get(model="no-such-model")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
