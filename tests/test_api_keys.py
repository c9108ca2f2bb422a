"""API keys: off by default; when required, a missing or wrong key gets 401 in the provider's shape;
a key may choose a scenario (a team's canned set)."""
from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from responses_app.api.clients import Client, client_key

from .support import (
    CONTROL_TOKEN,
    anthropic_client,
    ask,
    chat,
    control,
    create_api_key,
    make_server,
    openai_client,
    wait_for,
)

KEY = "mk-team-a-key-0123456789abcdef"
OTHER_KEY = "mk-default-key-0123456789abcdef"
OLD_KEY = "mk-revoked-key-0123456789abcdef"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("keys"), MOCKLLM_REQUIRE_API_KEY="1",
                         MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    create_api_key(server, "team-a", KEY, scenario="team-a")
    create_api_key(server, "default", OTHER_KEY)
    create_api_key(server, "revoked", OLD_KEY, active=False)
    server.start(daphne=True)
    added = control(server, "POST", "responses", json={"match": "hello", "response": "Hello, team A.",
                                                       "scenario": "team-a"})
    assert added.status_code == 201, added.text
    yield server
    server.stop(wait=False)


def test_a_known_key_is_accepted_in_both_header_styles(srv):
    reply = openai_client(srv, api_key=OTHER_KEY).chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content.startswith("Hello! I am a mock LLM")
    message = anthropic_client(srv, api_key=OTHER_KEY).messages.create(model="m", max_tokens=20, messages=HELLO)
    assert message.content[0].text.startswith("Hello! I am a mock LLM")
    assert chat(srv, "hello", headers={"x-api-key": OTHER_KEY}).status_code == 200  # x-api-key on OpenAI paths too


@pytest.mark.parametrize("key", ["mk-not-a-key-0123456789", OLD_KEY])
def test_a_wrong_or_revoked_key_gets_401_from_both_sdks(srv, key):
    with pytest.raises(openai.AuthenticationError) as openai_error:
        openai_client(srv, api_key=key).chat.completions.create(model="m", messages=HELLO)
    assert openai_error.value.code == "invalid_api_key"
    assert key not in str(openai_error.value.body)  # the key is not echoed back whole
    with pytest.raises(anthropic.AuthenticationError) as anthropic_error:
        anthropic_client(srv, api_key=key).messages.create(model="m", max_tokens=20, messages=HELLO)
    assert anthropic_error.value.body["error"]["type"] == "authentication_error"


def test_a_missing_key_gets_401_in_each_providers_shape(srv):
    openai_shape = chat(srv, "hello")
    assert openai_shape.status_code == 401
    assert openai_shape.json()["error"]["code"] == "invalid_api_key"
    assert "didn't provide an API key" in openai_shape.json()["error"]["message"]
    anthropic_shape = httpx.post(f"{srv.url}/v1/messages", headers={"anthropic-version": "2023-06-01"},
                                 json={"model": "m", "max_tokens": 5, "messages": HELLO})
    assert anthropic_shape.status_code == 401
    assert anthropic_shape.json()["type"] == "error"
    assert anthropic_shape.json()["error"]["type"] == "authentication_error"
    models = httpx.get(f"{srv.url}/v1/models")
    assert models.status_code == 401  # every /v1/ path


def test_a_keys_scenario_answers_first_and_a_header_can_choose_one(srv):
    assert ask(srv, "hello", headers={"Authorization": f"Bearer {KEY}"}) == "Hello, team A."
    assert ask(srv, "what is 2+2?", headers={"Authorization": f"Bearer {KEY}"}) == \
        "2+2 equals 9."  # the default set still answers what the scenario does not
    chosen = ask(srv, "hello", headers={"Authorization": f"Bearer {OTHER_KEY}", "X-Mock-Scenario": "team-a"})
    assert chosen == "Hello, team A."


def test_a_key_created_while_the_server_runs_works_at_once(srv):
    late = {"Authorization": "Bearer mk-late-key-0123456789abcdef"}
    assert chat(srv, "hello", headers=late).status_code == 401
    create_api_key(srv, "late", "mk-late-key-0123456789abcdef")
    # Created by another process: the server picks it up within its poll interval (0.25 s).
    statuses = []
    wait_for(lambda: statuses.append(chat(srv, "hello", headers=late).status_code) or statuses[-1] == 200,
             message=lambda: f"still refused: {statuses[-5:]}")
    assert set(statuses) <= {401, 200}
    assert ask(srv, "hello", headers=late).startswith("Hello! I am a mock LLM")


def test_keys_are_not_required_by_default(server):
    assert chat(server, "hello").status_code == 200
    assert chat(server, "hello", headers={"Authorization": "Bearer anything"}).status_code == 200


def test_each_test_run_has_its_own_rate_limit_budget(rf):
    request = rf.post("/v1/chat/completions", HTTP_AUTHORIZATION="Bearer sk-shared")
    keys = {client_key(request, Client(test_id="run-1")), client_key(request, Client(test_id="run-2")),
            client_key(request, Client())}
    assert len(keys) == 3 and all(key.startswith("key:") and "sk-shared" not in key for key in keys)
