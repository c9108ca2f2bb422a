"""People in the admin: login required, no default account, the editor and viewer groups, history,
the request journal's admin and turning a journal entry into a canned response."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.utils import timezone

from responses_app.models import ApiKey, CannedResponse, JournalEntry

from .support import ROOT

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password-42"


def member(client, group: str):
    user = User.objects.create_user(group + "-user", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


@pytest.fixture
def prompt():
    return CannedResponse.objects.create(prompt="what is 2+2?", answer="4")


def test_no_account_exists_until_someone_creates_one_and_the_readme_says_how():
    assert User.objects.count() == 0  # migrations create no user, so there is no default password
    readme = (ROOT / "README.md").read_text()
    assert "createsuperuser" in readme
    assert not list(Path(ROOT).glob("fixtures/*user*"))


def test_an_editor_edits_prompts_and_the_history_shows_who(client, prompt):
    user = member(client, "editor")
    response = client.post(f"/admin/responses_app/cannedresponse/{prompt.pk}/change/",
                           {"prompt": "what is 2+2?", "answer": "four", "options": "{}", "scenario": "", "test_id": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    prompt.refresh_from_db()
    assert prompt.answer == "four"
    entry = LogEntry.objects.get(object_id=str(prompt.pk))
    assert entry.user == user and "Answer" in entry.get_change_message()
    history = client.get(f"/admin/responses_app/cannedresponse/{prompt.pk}/history/").content.decode()
    assert "editor-user" in history and "Changed Answer" in history
    assert client.get("/admin/responses_app/cannedresponse/add/").status_code == 200
    assert client.get("/admin/responses_app/journalentry/").status_code == 200
    assert client.get("/admin/responses_app/apikey/").status_code == 403  # keys are for superusers


def test_a_viewer_reads_but_cannot_change(client, prompt):
    member(client, "viewer")
    assert client.get("/admin/responses_app/cannedresponse/").status_code == 200
    page = client.get(f"/admin/responses_app/cannedresponse/{prompt.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # a read-only view
    refused = client.post(f"/admin/responses_app/cannedresponse/{prompt.pk}/change/",
                          {"prompt": "what is 2+2?", "answer": "hacked", "options": "{}"})
    assert refused.status_code == 403
    prompt.refresh_from_db()
    assert prompt.answer == "4"
    assert client.get("/admin/responses_app/cannedresponse/add/").status_code == 403
    assert client.post(f"/admin/responses_app/cannedresponse/{prompt.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/responses_app/journalentry/").status_code == 200


def test_a_staff_member_without_a_group_sees_nothing(client):
    user = User.objects.create_user("nobody", password=PASSWORD, is_staff=True)
    client.force_login(user)
    assert client.get("/admin/responses_app/cannedresponse/").status_code == 403


def test_superusers_create_api_keys_and_see_the_key_once(admin_client):
    response = admin_client.post("/admin/responses_app/apikey/add/", {"name": "ci", "scenario": "", "is_active": "on"},
                                 follow=True)
    page = response.content.decode()
    key = ApiKey.objects.get(name="ci")
    shown = next(word for word in page.split() if word.startswith("mk-"))
    assert key.key_prefix == shown[:10] and len(shown) > 20
    assert shown not in ApiKey.objects.values_list("key_hash", flat=True)  # only the hash is stored
    later = admin_client.get(f"/admin/responses_app/apikey/{key.pk}/change/").content.decode()
    assert shown not in later


def journal_row(**fields) -> JournalEntry:
    defaults = dict(created_at=timezone.now(), request_id="req_1", method="POST", path="/v1/chat/completions",
                    provider="openai", endpoint="chat", model="gpt-4o", status=200, prompt="how do I reset my password?")
    return JournalEntry.objects.create(**{**defaults, **fields})


def test_the_journal_filters_by_test_id_status_and_match(admin_client):
    journal_row(test_id="run-1", matched=True, prompt="first run")
    journal_row(test_id="run-2", prompt="second run")
    journal_row(test_id="run-2", status=503, prompt="failed one")
    page = admin_client.get("/admin/responses_app/journalentry/", {"test_id": "run-2"}).content.decode()
    assert "second run" in page and "failed one" in page and "first run" not in page
    page = admin_client.get("/admin/responses_app/journalentry/", {"status": "503"}).content.decode()
    assert "failed one" in page and "second run" not in page
    page = admin_client.get("/admin/responses_app/journalentry/", {"matched__exact": "1"}).content.decode()
    assert "first run" in page and "second run" not in page
    assert admin_client.get("/admin/responses_app/journalentry/add/").status_code == 403  # read-only


def test_an_unmatched_request_becomes_a_canned_response_from_its_journal_entry(client):
    member(client, "editor")
    row = journal_row()
    response = client.post("/admin/responses_app/journalentry/", {
        "action": "create_canned_response", "_selected_action": [row.pk]})
    assert response.status_code == 302 and "/cannedresponse/add/" in response["Location"]
    form = client.get(response["Location"]).content.decode()
    assert "how do I reset my password?" in form and "gpt-4o" in form  # prompt and model prefilled
    saved = client.post(response["Location"], {"prompt": "how do I reset my password?", "answer": "Use the link.",
                                               "options": '{"model": "gpt-4o"}', "scenario": "", "test_id": ""})
    assert saved.status_code == 302
    assert CannedResponse.objects.get(prompt="how do I reset my password?").answer == "Use the link."


def test_a_viewer_cannot_turn_journal_entries_into_responses(client):
    member(client, "viewer")
    row = journal_row()
    client.post("/admin/responses_app/journalentry/", {"action": "create_canned_response", "_selected_action": [row.pk]})
    assert not CannedResponse.objects.exists()
    assert "create_canned_response" not in client.get("/admin/responses_app/journalentry/").content.decode()


def test_deleting_api_keys_in_bulk_is_served_at_once(admin_client):
    from responses_app.models import ResponseSet

    for name in ("one", "two"):
        key = ApiKey(name=name)
        key.set_key(f"mk-{name}-0123456789abcdef")
        key.save()
    before = ResponseSet.get().version
    response = admin_client.post("/admin/responses_app/apikey/", {
        "action": "delete_selected", "_selected_action": list(ApiKey.objects.values_list("pk", flat=True)),
        "post": "yes"})
    assert response.status_code == 302 and not ApiKey.objects.exists()
    assert ResponseSet.get().version > before  # every process rebuilds its index without the keys
