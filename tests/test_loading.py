from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from responses_app.canned.loading import load_responses_file, signs_of_a_cut
from responses_app.canned.responses_file import ResponsesFileError, parse_responses
from responses_app.models import CannedResponse, ResponseSet, Source

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "responses.yml"
SEED = """
responses:
  "what colour is the sky?": "The sky is blue."
  "what is 2+2?": "2+2 equals 9."
defaults:
  unknown_response: "I don't know."
"""


def write(tmp_path: Path, text: str, name: str = "responses.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def answers() -> dict[str, str]:
    return dict(CannedResponse.objects.values_list("prompt", "answer"))


# --- parsing -------------------------------------------------------------------------------

def test_seed_format_is_read_unchanged():
    parsed = parse_responses(SEED)
    assert parsed.answers == {"what colour is the sky?": "The sky is blue.", "what is 2+2?": "2+2 equals 9."}
    assert parsed.unknown_response == "I don't know."


def test_settings_block_is_accepted():
    parsed = parse_responses(SEED + "settings:\n  lag_enabled: true\n  lag_factor: 10\n")
    assert parsed.settings == {"lag_enabled": True, "lag_factor": 10}


def test_keys_yaml_would_turn_into_booleans_or_numbers_keep_the_text_written():
    parsed = parse_responses("responses:\n  yes: agreed\n  42: the answer\n  3.0: three\n  off: no\n  ok: 7\n")
    assert parsed.answers == {"yes": "agreed", "42": "the answer", "3.0": "three", "off": "no", "ok": "7"}


def test_bad_yaml_names_the_line():
    with pytest.raises(ResponsesFileError) as error:
        parse_responses('responses:\n  "a": "b"\n  "c": [unclosed\n', "r.yml")
    assert "r.yml:" in str(error.value)
    assert error.value.problems[0].line in (3, 4)
    assert "invalid YAML" in str(error.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("responses:\n  a: b\n  a: c\n", 3, "appears twice (first on line 2)"),
        ("respones:\n  a: b\n", 1, "unknown section 'respones'"),
        ("responses:\n  a:\n", 2, "answer to 'a' is missing"),
        ("responses:\n  a: [1, 2]\n", 2, "must be a string"),
        ("responses:\n  ~: b\n", 2, "prompt is empty or null"),
        ("responses:\n  - a\n", 2, "must be a mapping"),
        ("responses:\n  a: b\ndefaults:\n  unknown: x\n", 4, "unknown key 'unknown' in `defaults`"),
        ("responses:\n  a: b\nsettings:\n  lag_enabled: maybe\n", 4, "'lag_enabled' must be true/false"),
        ("responses:\n  a: !!python/object/apply:os.system [echo hi]\n", 2, "is not allowed"),
    ],
)
def test_bad_shapes_are_rejected_with_their_line(text, line, words):
    with pytest.raises(ResponsesFileError) as error:
        parse_responses(text, "r.yml")
    assert any(p.line == line and words in p.message for p in error.value.problems), str(error.value)


def test_empty_file_and_missing_section_are_rejected():
    with pytest.raises(ResponsesFileError, match="empty"):
        parse_responses("")
    with pytest.raises(ResponsesFileError, match="no `responses:` section"):
        parse_responses("defaults:\n  unknown_response: x\n")


def test_an_empty_responses_section_is_an_empty_set_on_purpose():
    assert parse_responses("responses: {}\n").answers == {}
    assert parse_responses("responses:\n").answers == {}


def test_alias_bombs_are_not_expanded():
    # 9 x 4^20 values once expanded, in the nested settings (tests/test_hostile.py has one in an entry)
    bomb = "responses: {}\nsettings:\n  models:\n    a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"    {chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    with pytest.raises(ResponsesFileError) as error:
        parse_responses(bomb, "r.yml")
    assert [(p.line, p.message) for p in error.value.problems] == [
        (4, "the file expands to too many values (a YAML alias bomb?)")]


# --- writing -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_load_adds_rows_and_the_default_answer(tmp_path):
    summary = load_responses_file(write(tmp_path, SEED))
    assert (summary.added, summary.updated, summary.removed, summary.unchanged) == (2, 0, 0, 0)
    assert answers() == {"what colour is the sky?": "The sky is blue.", "what is 2+2?": "2+2 equals 9."}
    assert ResponseSet.get().unknown_response == "I don't know."
    assert set(CannedResponse.objects.values_list("source", flat=True)) == {Source.FILE}


@pytest.mark.django_db
def test_reload_counts_added_updated_removed_unchanged(tmp_path):
    path = write(tmp_path, SEED)
    load_responses_file(path)
    path.write_text('responses:\n  "what colour is the sky?": "Grey."\n  "new": "prompt"\n')
    summary = load_responses_file(path)
    assert (summary.added, summary.updated, summary.removed, summary.unchanged) == (1, 1, 1, 0)
    assert answers() == {"what colour is the sky?": "Grey.", "new": "prompt"}
    assert str(summary).endswith("1 added, 1 updated, 1 removed, 0 unchanged")


@pytest.mark.django_db
def test_every_load_bumps_the_version(tmp_path):
    path = write(tmp_path, SEED)
    load_responses_file(path)
    before = ResponseSet.get().version
    load_responses_file(path)
    assert ResponseSet.get().version == before + 1


@pytest.mark.django_db
def test_admin_rows_are_never_overwritten_or_deleted(tmp_path):
    path = write(tmp_path, SEED)
    load_responses_file(path)
    CannedResponse.objects.create(prompt="typed in the admin", answer="mine")
    edited = CannedResponse.objects.get(prompt="what is 2+2?")
    edited.answer, edited.source = "4", Source.ADMIN
    edited.save()

    path.write_text('responses:\n  "what is 2+2?": "2+2 equals 10."\n  "typed in the admin": "the file says"\n')
    summary = load_responses_file(path)

    assert answers() == {"what is 2+2?": "4", "typed in the admin": "mine"}
    assert sorted(summary.admin_kept) == ["typed in the admin", "what is 2+2?"]
    assert CannedResponse.objects.get(prompt="what is 2+2?").file_answer == "2+2 equals 10."
    assert CannedResponse.objects.get(prompt="what is 2+2?").conflicts_with_file

    path.write_text("responses: {}\n")
    load_responses_file(path)
    assert answers() == {"what is 2+2?": "4", "typed in the admin": "mine"}
    assert CannedResponse.objects.get(prompt="what is 2+2?").file_answer is None


@pytest.mark.django_db
def test_an_admin_edited_default_answer_is_kept(tmp_path):
    path = write(tmp_path, SEED)
    load_responses_file(path)
    ResponseSet.objects.update(unknown_response="admin default", unknown_response_source=Source.ADMIN)
    summary = load_responses_file(path)
    assert ResponseSet.get().unknown_response == "admin default"
    assert ResponseSet.get().file_unknown_response == "I don't know."
    assert "(default answer)" in summary.admin_kept


@pytest.mark.django_db
def test_a_bad_file_changes_nothing_and_is_recorded(tmp_path):
    path = write(tmp_path, SEED)
    load_responses_file(path)
    before = (answers(), ResponseSet.get().version)
    path.write_text('responses:\n  "what colour is the sky?": "Grey."\n  bad: [\n')
    with pytest.raises(ResponsesFileError):
        load_responses_file(path)
    assert (answers(), ResponseSet.get().version) == before
    state = ResponseSet.get()
    assert "invalid YAML" in state.last_error and state.last_error_at is not None
    load_responses_file(write(tmp_path, SEED))
    assert ResponseSet.get().last_error == ""


@pytest.mark.django_db
def test_rows_from_another_file_are_left_alone(tmp_path):
    load_responses_file(write(tmp_path, SEED, "a.yml"))
    load_responses_file(write(tmp_path, 'responses:\n  "other": "file"\n', "b.yml"))
    assert set(answers()) == {"what colour is the sky?", "what is 2+2?", "other"}


# --- the command ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_loadresponses_prints_a_one_line_summary(tmp_path):
    out = StringIO()
    call_command("loadresponses", str(FIXTURE), stdout=out)
    assert out.getvalue().strip().endswith("8 added, 0 updated, 0 removed, 0 unchanged")
    assert "\n" not in out.getvalue().strip()


@pytest.mark.django_db
def test_loadresponses_fails_clearly_and_changes_nothing(tmp_path):
    call_command("loadresponses", str(FIXTURE), stdout=StringIO())
    before = answers()
    with pytest.raises(CommandError) as error:
        call_command("loadresponses", str(write(tmp_path, "responses:\n  a: b\n  a: c\n")), stdout=StringIO())
    assert "Nothing was loaded" in str(error.value)
    assert ":3:" in str(error.value) and "appears twice" in str(error.value)
    assert answers() == before


@pytest.mark.django_db
def test_loadresponses_names_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("loadresponses", str(tmp_path / "missing.yml"), stdout=StringIO())


@pytest.mark.django_db
def test_demo_fixture_loads_with_loaddata():
    call_command("loaddata", "demo", verbosity=0)
    row = CannedResponse.objects.get(prompt="what is mockllm?")
    assert row.source == Source.ADMIN and len(row.key_digest) == 64


# --- what a file cut short looks like (the watcher holds such loads back a moment) -----------------------

def entries_file(prompts: list[str], settings: str = "") -> str:
    return "responses:\n" + "".join(f'  "{p}": "answer to {p}"\n' for p in prompts) + settings


@pytest.mark.django_db
@pytest.mark.parametrize(("edit", "sign"), [
    (lambda p: p[:3] + ["renamed"] + p[4:], ""),  # a rename in the middle
    (lambda p: p[:3] + p[4:], ""),  # a removal in the middle
    (lambda p: p[:-1] + ["renamed"], ""),  # the last entry renamed
    (lambda p: p + ["added"], ""),
    (lambda p: ["added"] + p[:-1], "it drops the file's last 1 entry"),  # as an addition at the top cut short would
    (lambda p: p[:-1], "it drops the file's last 1 entry"),  # the last removed: what a cut looks like
    (lambda p: p[:2], "it drops the file's last 6 entries"),
    (lambda p: p[:3] + ["renamed"], "it drops the file's last 5 entries for 1 new one"),  # a rename, cut short
    (lambda p: [], "it drops the file's last 8 entries"),
    (lambda p: [f"new {i}" for i in range(8)], ""),  # a different file, as long
])
def test_a_load_looks_cut_short_when_it_drops_the_files_last_entries(tmp_path, edit, sign):
    prompts = [f"p{i}" for i in range(8)]
    path = write(tmp_path, entries_file(prompts))
    load_responses_file(path)
    assert signs_of_a_cut(parse_responses(entries_file(edit(prompts))), str(path.resolve())) == sign


@pytest.mark.django_db
def test_a_load_looks_cut_short_when_it_loses_a_setting(tmp_path):
    settings = "settings:\n  lag_enabled: true\n  failures: {rate: 0.5, seed: 3}\n"
    path = write(tmp_path, entries_file(["a", "b"], settings))
    load_responses_file(path)
    source = str(path.resolve())
    assert signs_of_a_cut(parse_responses(entries_file(["a", "b"], settings)), source) == ""
    assert signs_of_a_cut(parse_responses(entries_file(["a", "b"])), source) == ""  # no settings: left as they are
    assert signs_of_a_cut(parse_responses(entries_file(["a", "b"], "settings:\n  lag_enabled: true\n")),
                          source) == "it loses the setting failures, failures.rate, failures.seed"
