"""Smaller gaps of a shared deployment: a guessable control token, a key sent as the model name, a run's
refused requests, and who may use the admin's "Try a request"."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User

from .support import CONTROL_TOKEN, ROOT, chat, control, make_server, manage

SECRET = "sk-proj-model-name-secret-0123456789"


@pytest.mark.parametrize("token", ["a" * 16, " " * 20, "  aaaaaaaaaaaaaaaaaaaa  ", "abababababababab", "abc123",
                                   "0123456789abcdef with spaces", "caf\u00e9-0123456789abcdef"])
def test_a_weak_control_token_is_refused_at_start_up(token):
    import os

    env = {**os.environ, "MOCKLLM_CONTROL_TOKEN": token}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = manage(env, "check", check=False)
    assert result.returncode != 0
    assert "MOCKLLM_CONTROL_TOKEN" in result.stderr and "secrets.token_urlsafe" in result.stderr


def test_a_good_control_token_starts():
    import os

    for token in (CONTROL_TOKEN, "  " + CONTROL_TOKEN + "\n"):
        env = {**os.environ, "MOCKLLM_CONTROL_TOKEN": token}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        assert manage(env, "check", check=False).returncode == 0


@pytest.fixture(scope="module")
def keys_required(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("gaps"), MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN,
                         MOCKLLM_REQUIRE_API_KEY="1")
    server.start(daphne=True)
    yield server
    server.stop()


def test_a_request_refused_for_its_key_is_journaled_for_its_run(keys_required):
    refused = chat(keys_required, "hello", headers={"Authorization": "Bearer not-a-key-0123456789",
                                                   "X-Mock-Test-Id": "refused-run", "X-Mock-Scenario": "team"})
    assert refused.status_code == 401
    found = control(keys_required, "GET", "journal", params={"test_id": "refused-run", "wait": 10}).json()
    assert found["total"] == 1
    entry = found["data"][0]
    assert (entry["status"], entry["test_id"], entry["scenario"]) == (401, "refused-run", "team")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("redaction"), MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    server.start(daphne=True)
    yield server
    server.stop()


def test_a_key_sent_as_the_model_name_is_redacted_everywhere(srv):
    run = {"X-Mock-Test-Id": "model-secret"}
    assert control(srv, "POST", "responses", headers=run,
                   json={"match": "which model?", "model": "gpt-4*", "response": "a GPT-4"}).status_code == 201
    answered = chat(srv, "which model?", headers=run, model=SECRET)
    assert answered.status_code == 200 and "does not match" in answered.headers["x-mockllm-near-miss"]
    entry = control(srv, "GET", "journal", params={"test_id": "model-secret", "wait": 10}).json()["data"][0]
    assert entry["near_misses"] and "does not match" in entry["near_misses"][0]
    assert SECRET not in json.dumps(entry)
    logged = [json.loads(line) for line in srv.log().splitlines()
              if line.startswith("{") and "model-secret" in line and '"event":"request"' in line]
    assert logged and logged[-1]["near_misses"] and SECRET not in json.dumps(logged)


@pytest.mark.django_db
def test_try_a_request_needs_the_permission_to_view_canned_responses(client):
    body = {"api": "openai", "body": '{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'}
    nobody = User.objects.create_user("nobody", password="a-long-test-password-42", is_staff=True)
    client.force_login(nobody)
    assert client.get("/admin/responses_app/cannedresponse/").status_code == 403
    assert client.get("/admin/responses_app/cannedresponse/try/").status_code == 403
    assert client.post("/admin/responses_app/cannedresponse/try/", body).status_code == 403
    viewer = User.objects.create_user("viewer-user", password="a-long-test-password-42", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    assert client.get("/admin/responses_app/cannedresponse/try/").status_code == 200
    assert client.post("/admin/responses_app/cannedresponse/try/", body).status_code == 200


def test_the_docs_say_how_to_make_a_control_token():
    assert "secrets.token_urlsafe(32)" in (ROOT / "docs" / "team.md").read_text()
