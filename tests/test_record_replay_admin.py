"""Reviewing recordings in the admin: marked recorded and unreviewed, a filter, an approve action, the raw
exchange shown read-only; and recordings held apart in the index, after every hand-written entry."""
import json

import pytest
from django.contrib.auth.models import User

from responses_app.canned import recordings
from responses_app.canned.entries import parse_entry
from responses_app.canned.index import canned_index
from responses_app.canned.matching import Entry, Match
from responses_app.models import CannedResponse
from responses_app.providers import anthropic_messages

from .support import ask

pytestmark = pytest.mark.django_db(transaction=True)

EXCHANGE = {"fingerprint": "f" * 64, "upstream": "https://api.openai.com", "method": "POST",
            "path": "/v1/chat/completions", "request_headers": {"content-type": "application/json"},
            "request_body": '{"model": "gpt-4o"}', "status": 200, "response_headers": {"content-type": "application/json"},
            "response_body": '{"choices": [{"message": {"content": "Recorded answer."}}]}', "streamed": False,
            "ttft_ms": 412.5, "gaps_ms": [], "duration_ms": 415.0}


@pytest.fixture
def admin_client(client):
    User.objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
    client.login(username="admin", password="a-long-test-password")
    return client


def record(prompt: str, fp: str, text: str) -> None:
    recordings.save([recordings.Recording(prompt, recordings.answer_entry(fp, prompt, "recorded chat gpt-4o", {
        "text": text, "finish_reason": "stop"}), {**EXCHANGE, "fingerprint": fp})], ("", ""))


def test_recordings_are_marked_filtered_approved_and_show_their_exchange(admin_client):
    CannedResponse.objects.create(prompt="typed by hand", answer="hand answer")
    record("What is the capital of France?", "a" * 64, "Recorded answer.")
    record("Another question", "b" * 64, "Another recorded answer.")
    listing = "/admin/responses_app/cannedresponse/"
    page = admin_client.get(listing, {"recording": "unreviewed"}).content.decode()
    assert "What is the capital of France?" in page and "Another question" in page and "typed by hand" not in page
    assert "recorded, not reviewed" in page
    assert "typed by hand" in admin_client.get(listing, {"recording": "no"}).content.decode()
    capital = CannedResponse.objects.get(prompt="What is the capital of France?")
    answer = admin_client.post(listing, {"action": "approve_recordings", "_selected_action": [capital.pk]}, follow=True)
    assert "1 recording approved." in answer.content.decode()
    page = admin_client.get(listing, {"recording": "unreviewed"}).content.decode()
    assert "Another question" in page and "What is the capital of France?" not in page
    assert "What is the capital of France?" in admin_client.get(listing, {"recording": "reviewed"}).content.decode()
    entry_page = admin_client.get(f"{listing}{capital.pk}/change/").content.decode()
    assert "recorded-exchange" in entry_page and "time to first event: 412.5 ms" in entry_page
    assert "POST https://api.openai.com/v1/chat/completions" in entry_page


def test_a_recording_answers_only_its_request_and_a_hand_written_entry_wins(client):
    record("What is the capital of France?", "c" * 64, "Recorded answer.")
    canned_index.forget()
    index = canned_index.current()
    assert index.has_recordings and index.recording_for("c" * 64).replies[0].text == "Recorded answer."
    # Matched by its fingerprint only, never by its prompt: a request that misses gets the default.
    assert ask(client, "What is the capital of France?") != "Recorded answer."
    CannedResponse.objects.create(prompt="What is the capital of France?", answer="Hand-written.")
    assert ask(client, "What is the capital of France?") == "Hand-written."
    assert len(canned_index.current()) == 2


def test_the_fingerprint_ignores_volatile_values_and_tells_conversations_apart():
    def conversation(call_id: str, system: str = "You help.", stream: bool = False) -> dict:
        return {"model": "gpt-4o", "stream": stream, "user": "u-1", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "Book it"},
            {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                                                  "function": {"name": "book", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "ok"}]}

    path = "/v1/chat/completions"
    same = recordings.fingerprint(path, conversation("call_1"))
    assert recordings.fingerprint(path, conversation("call_9zz", stream=True)) == same
    assert recordings.fingerprint(path, conversation("call_1", system="You are a pirate.")) != same
    assert recordings.fingerprint("/v1/responses", conversation("call_1")) != same
    thinking = {"model": "c", "messages": [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig-A"}]}]}
    assert recordings.fingerprint("/v1/messages", thinking) == recordings.fingerprint(
        "/v1/messages", {**thinking, "messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig-B"}]}]})


def test_a_recorded_thinking_signature_is_answered_as_recorded():
    reply = recordings.reply_of("messages", json.dumps({"content": [
        {"type": "thinking", "thinking": "Consider it.", "signature": "EqQBCkgIAhABGAIiQL-recorded"},
        {"type": "text", "text": "Done."}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 3}}).encode())
    prompt, answer, options = parse_entry(recordings.answer_entry("d" * 64, "think", "recorded", reply))
    entry = Entry.build(1, prompt, answer, options, 0)
    parsed = anthropic_messages.parse({"model": "claude-haiku-4-5", "max_tokens": 2000,
                                       "thinking": {"type": "enabled", "budget_tokens": 1024},
                                       "messages": [{"role": "user", "content": "think"}]})
    body = json.loads(anthropic_messages.render_json(parsed, Match(entry, entry.replies[0], "recorded"),
                                                     anthropic_messages.new_ids()))
    assert body["content"][0] == {"type": "thinking", "thinking": "Consider it.",
                                  "signature": "EqQBCkgIAhABGAIiQL-recorded"}
    assert body["content"][1]["text"] == "Done." and body["usage"]["output_tokens"] == 3
    stream = b"".join(anthropic_messages.render_stream(parsed, Match(entry, entry.replies[0], "recorded"),
                                                       anthropic_messages.new_ids()))
    assert b'"signature":"EqQBCkgIAhABGAIiQL-recorded"' in stream
