"""Editing canned prompts in the admin: served on the very next request, never lost to a load."""
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from responses_app.canned.loading import load_responses_file
from responses_app.models import CannedResponse, ResponseSet, Source

from .support import ask

pytestmark = pytest.mark.django_db(transaction=True)  # the index is refreshed on commit, as in production


@pytest.fixture
def admin_client(client):
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    client.login(username="admin", password="a-long-test-password")
    return client


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    path = tmp_path / "responses.yml"
    path.write_text('responses:\n  "what is 2+2?": "2+2 equals 9."\ndefaults:\n  unknown_response: "no idea"\n')
    load_responses_file(path)
    return path


def test_admin_requires_login(client):
    response = client.get("/admin/responses_app/cannedresponse/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_list_search_and_filter(admin_client, loaded):
    CannedResponse.objects.create(prompt="typed by hand", answer="hand answer")
    page = admin_client.get("/admin/responses_app/cannedresponse/", {"q": "2+2"}).content.decode()
    assert "what is 2+2?" in page and "typed by hand" not in page
    page = admin_client.get("/admin/responses_app/cannedresponse/", {"source__exact": "admin"}).content.decode()
    assert "typed by hand" in page and "what is 2+2?" not in page


def test_a_prompt_added_in_the_admin_is_served_on_the_next_request(admin_client, loaded):
    assert ask(admin_client, "brand new prompt") == "no idea"
    response = admin_client.post("/admin/responses_app/cannedresponse/add/",
                                 {"prompt": "brand new prompt", "answer": "brand new answer"})
    assert response.status_code == 302
    assert ask(admin_client, "brand new prompt") == "brand new answer"
    assert CannedResponse.objects.get(prompt="brand new prompt").source == Source.ADMIN


def test_an_edit_is_served_next_and_survives_reloads(admin_client, loaded):
    assert ask(admin_client, "what is 2+2?") == "2+2 equals 9."
    row = CannedResponse.objects.get(prompt="what is 2+2?")
    response = admin_client.post(f"/admin/responses_app/cannedresponse/{row.pk}/change/",
                                 {"prompt": "what is 2+2?", "answer": "4, of course"})
    assert response.status_code == 302
    assert ask(admin_client, "what is 2+2?") == "4, of course"
    for _ in range(3):
        load_responses_file(loaded)
    assert ask(admin_client, "what is 2+2?") == "4, of course"
    row.refresh_from_db()
    assert (row.source, row.file_answer, row.conflicts_with_file) == (Source.ADMIN, "2+2 equals 9.", True)
    page = admin_client.get(f"/admin/responses_app/cannedresponse/{row.pk}/change/").content.decode()
    assert "2+2 equals 9." in page  # the file's answer is shown beside the admin's


def test_a_deleted_prompt_falls_back_to_the_default_at_once(admin_client, loaded):
    row = CannedResponse.objects.create(prompt="short lived", answer="here")
    assert ask(admin_client, "short lived") == "here"
    response = admin_client.post("/admin/responses_app/cannedresponse/", {
        "action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert response.status_code == 302
    assert ask(admin_client, "short lived") == "no idea"


def test_a_duplicate_prompt_is_refused_with_a_message(admin_client, loaded):
    response = admin_client.post("/admin/responses_app/cannedresponse/add/",
                                 {"prompt": "what is 2+2?", "answer": "dup"})
    assert response.status_code == 200
    assert "already has exactly this prompt" in response.content.decode()
    assert CannedResponse.objects.filter(prompt="what is 2+2?").count() == 1


def test_the_default_answer_is_editable_and_kept_over_the_file(admin_client, loaded):
    state = ResponseSet.get()
    page = admin_client.get(f"/admin/responses_app/responseset/{state.pk}/change/").content.decode()
    assert str(loaded) in page  # the load status is visible
    response = admin_client.post(f"/admin/responses_app/responseset/{state.pk}/change/",
                                 {"unknown_response": "ask me later"})
    assert response.status_code == 302
    assert ask(admin_client, "never canned") == "ask me later"
    load_responses_file(loaded)
    assert ask(admin_client, "never canned") == "ask me later"


def test_options_are_edited_as_json_and_validated(admin_client, loaded):
    response = admin_client.post("/admin/responses_app/cannedresponse/add/", {
        "prompt": "weather", "answer": "sunny", "options": '{"match": "contains", "model": "m*"}'})
    assert response.status_code == 302
    assert ask(admin_client, "what is the weather today?") == "sunny"
    bad = admin_client.post("/admin/responses_app/cannedresponse/add/", {
        "prompt": "(unclosed", "answer": "x", "options": '{"match": "regex"}'})
    assert bad.status_code == 200 and "invalid regular expression" in bad.content.decode()
    unknown = admin_client.post("/admin/responses_app/cannedresponse/add/", {
        "prompt": "y", "answer": "x", "options": '{"matsh": "exact"}'})
    assert "unknown field `matsh`" in unknown.content.decode()


def test_the_try_page_says_which_entry_answers_and_why_others_did_not(admin_client, loaded):
    CannedResponse.objects.create(prompt="Hello World", answer="hi")
    page = admin_client.get("/admin/responses_app/cannedresponse/").content.decode()
    assert "/admin/responses_app/cannedresponse/try/" in page
    body = '{"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]}'
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "openai", "body": body}).content.decode()
    row = CannedResponse.objects.get(prompt="what is 2+2?")
    assert f"Answered by <a href=\"/admin/responses_app/cannedresponse/{row.pk}/change/\">" in page
    assert "2+2 equals 9." in page
    body = '{"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hello world"}]}'
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "anthropic", "body": body}).content.decode()
    assert "No entry matched" in page and "differs only in case or white space" in page
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "anthropic", "body": "{}"}).content.decode()
    assert "would be refused" in page and "`model` is required" in page
    body = '{"contents": [{"role": "user", "parts": [{"text": "what is 2+2?"}]}]}'
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "gemini", "body": body}).content.decode()
    assert f"Answered by <a href=\"/admin/responses_app/cannedresponse/{row.pk}/change/\">" in page
    assert "candidates" in page and "2+2 equals 9." in page
    body = '{"messages": [{"role": "user", "content": [{"text": "what is 2+2?"}]}]}'
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "bedrock", "body": body}).content.decode()
    assert "2+2 equals 9." in page and "stopReason" in page  # a Converse answer
    body = '{"model": "llama3.2", "messages": [{"role": "user", "content": "what is 2+2?"}]}'
    page = admin_client.post("/admin/responses_app/cannedresponse/try/", {"api": "ollama", "body": body}).content.decode()
    assert f"Answered by <a href=\"/admin/responses_app/cannedresponse/{row.pk}/change/\">" in page
    assert "&quot;done&quot;: true" in page  # the Ollama body, escaped in the page
