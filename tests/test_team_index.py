"""A change to one test run's set costs in proportion to the change, not to the set: adding an entry
to a large run reads and builds that entry only, in every process; many entries go in as one change."""
from __future__ import annotations

import json

import pytest

from responses_app.canned import index as index_module
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.entries import entry_digest
from responses_app.canned.index import build_index
from responses_app.models import CannedResponse, ResponseSet, SetVersion

from .support import CONTROL_TOKEN

pytestmark = pytest.mark.django_db
RUN = "big-run"


def ask(index, prompt: str, test_id: str = RUN) -> str | None:
    request = ChatRequest(provider="openai", endpoint="chat", model="m", prompt=prompt)
    return index.find(request, "", test_id).reply.text


@pytest.fixture
def big_run():
    rows = [CannedResponse(prompt=f"prompt {i}", answer=f"answer {i}", test_id=RUN, key_digest=entry_digest(
        f"prompt {i}", {})) for i in range(2000)]
    CannedResponse.objects.bulk_create(rows)
    SetVersion.bump({("", RUN)})
    return build_index()


@pytest.fixture
def entries_built(monkeypatch):
    """How many canned entries the index builds from rows, from now on."""
    built = []
    original = index_module.SetIndex.build.__func__

    def counting(cls, rows, **kwargs):
        rows = list(rows)
        built.append(len(rows))
        return original(cls, rows, **kwargs)

    monkeypatch.setattr(index_module.SetIndex, "build", classmethod(counting))
    original_extended = index_module.SetIndex.extended

    def counting_extended(self, rows, **kwargs):
        rows = list(rows)
        built.append(len(rows))
        return original_extended(self, rows, **kwargs)

    monkeypatch.setattr(index_module.SetIndex, "extended", counting_extended)
    return built


def test_adding_an_entry_to_a_large_run_builds_that_entry_only(big_run, entries_built):
    CannedResponse(prompt="one more", answer="fresh", test_id=RUN).save()
    index = build_index(big_run)
    assert sum(entries_built) == 1
    assert ask(index, "one more") == "fresh" and ask(index, "prompt 1999") == "answer 1999"
    assert ask(index, "prompt 0", test_id="other-run") != "answer 0"
    # Rank order holds across additions: a later entry of higher priority answers first.
    CannedResponse(prompt="prompt 7", answer="urgent", options={"priority": 5, "match": "contains"}, test_id=RUN).save()
    index = build_index(index)
    assert sum(entries_built) == 2 and ask(index, "prompt 7") == "urgent" and ask(index, "prompt 8") == "answer 8"


def test_an_edit_or_a_delete_reads_the_set_again_and_is_served(big_run, entries_built):
    row = CannedResponse.objects.get(test_id=RUN, prompt="prompt 3")
    row.answer = "edited"
    row.save()
    index = build_index(big_run)
    assert ask(index, "prompt 3") == "edited"
    CannedResponse.objects.filter(test_id=RUN, prompt="prompt 4").delete()
    index = build_index(index)
    assert ask(index, "prompt 4") != "answer 4" and ask(index, "prompt 5") == "answer 5"
    # A run deleted and started again under the same id is not mistaken for the old one.
    CannedResponse.objects.filter(test_id=RUN).delete()
    CannedResponse(prompt="prompt 6", answer="new run", test_id=RUN).save()
    index = build_index(index)
    assert ask(index, "prompt 6") == "new run" and ask(index, "prompt 5") != "answer 5"


def post(client, body, **headers):
    return client.post("/control/responses", data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {CONTROL_TOKEN}", **headers)


@pytest.fixture
def control_on(settings):
    settings.MOCKLLM_CONTROL_TOKEN = CONTROL_TOKEN


def test_a_list_of_entries_is_one_change(client, control_on):
    before = ResponseSet.get().version
    entries = [{"match": f"bulk {i}", "response": f"answer {i}"} for i in range(300)]
    added = post(client, entries, HTTP_X_MOCK_TEST_ID="bulk-run")
    assert added.status_code == 201, added.content
    rows = added.json()
    assert [row["answer"] for row in rows] == [f"answer {i}" for i in range(300)]
    assert all(row["id"] and row["test_id"] == "bulk-run" for row in rows)
    assert ResponseSet.get().version == before + 1  # one version bump for the whole list
    assert ask(build_index(), "bulk 299", "bulk-run") == "answer 299"


@pytest.mark.parametrize("bad, status, param", [
    ({"response": "no match"}, 400, "[2].match"),
    ({"match": {"regex": "(unclosed"}, "response": "x"}, 400, "[2].match.regex"),
    ({"match": "a\x00b", "response": "x"}, 400, "[2].match"),
    ("not an entry", 400, "[2]"),
    ({"match": "bulk 0", "response": "a twin of [0]"}, 409, "[2].match"),
])
def test_a_list_is_all_or_nothing_and_names_the_bad_item(client, control_on, bad, status, param):
    before = ResponseSet.get().version
    entries = [{"match": "bulk 0", "response": "x"}, {"match": "bulk 1", "response": "y"}, bad]
    refused = post(client, entries, HTTP_X_MOCK_TEST_ID="all-or-nothing")
    assert refused.status_code == status, refused.content
    error = refused.json()["error"]
    assert error["param"] == param and "[2]" in error["message"]
    assert not CannedResponse.objects.filter(test_id="all-or-nothing").exists()
    assert ResponseSet.get().version == before


def test_a_list_item_that_clashes_with_a_stored_entry_is_a_409(client, control_on):
    assert post(client, {"match": "stored", "response": "x"}, HTTP_X_MOCK_TEST_ID="clash").status_code == 201
    refused = post(client, [{"match": "fresh", "response": "y"}, {"match": "stored", "response": "z"}],
                   HTTP_X_MOCK_TEST_ID="clash")
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "[1].match"
    assert list(CannedResponse.objects.filter(test_id="clash").values_list("prompt", flat=True)) == ["stored"]
