"""A change to one test run's set costs in proportion to the change, not to the set: adding an entry
to a large run reads and builds that entry only, in every process."""
from __future__ import annotations

import pytest

from responses_app.canned import index as index_module
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.entries import entry_digest
from responses_app.canned.index import build_index
from responses_app.models import CannedResponse, SetVersion

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
