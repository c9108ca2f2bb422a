"""Hot reload with real server processes and real files: fast, and never losing or half-loading data."""
from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from .support import DEFAULT_ANSWER as DEFAULT
from .support import ROOT, admin_add, admin_session, ask, make_server, wait_for


def responses_yaml(entries: dict[str, str], default: str = DEFAULT) -> str:
    lines = ["responses:"] + [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items()]
    return "\n".join(lines) + f"\ndefaults:\n  unknown_response: {json.dumps(default)}\n"


def save_atomically(path: Path, text: str) -> None:
    """As editors do: write a temporary file, rename it over the old one."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.mark.slow  # twenty edits
def test_every_edit_is_served_promptly_and_in_order(new_server, capsys):
    srv = new_server(responses=responses_yaml({"q": "answer 0"}))
    assert ask(srv, "q") == "answer 0"
    latencies = []
    for i in range(1, 21):
        text = responses_yaml({"q": f"answer {i}"})
        seen: list[str] = []

        def served() -> bool:
            seen.append(ask(srv, "q"))
            return seen[-1] == f"answer {i}"

        saved = time.monotonic()
        if i % 2:
            save_atomically(srv.responses_file, text)
        else:
            srv.responses_file.write_text(text)  # in place
        wait_for(served, message=lambda: f"edit {i} not served; answers seen: {sorted(set(seen))}")
        latencies.append(time.monotonic() - saved)
        # until the edit is served, the previous answer is: never the default, never a half-loaded file
        assert set(seen) <= {f"answer {i - 1}", f"answer {i}"}, seen
    latencies.sort()
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    with capsys.disabled():
        print(f"\n  hot reload, edit -> served, 20 edits: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000:.0f} ms")
    # Typically half a second (a 0.3 s debounce, then the load): four times that, for a busy machine.
    assert p50 < 2.0, f"the median edit took {p50:.2f} s to be served"


def test_invalid_yaml_keeps_the_last_good_answers(new_server):
    srv = new_server(responses=responses_yaml({"q": "good"}))
    srv.responses_file.write_text('responses:\n  "q": "bad\n  other: [\n')
    wait_for(lambda: srv.log_events("load_failed"))
    failure = srv.log_events("load_failed")[-1]
    assert failure["file"] == str(srv.responses_file) and failure["line"] >= 2 and failure["column"] >= 1
    assert ask(srv, "q") == "good"
    srv.responses_file.write_text(responses_yaml({"q": "fixed"}))
    wait_for(lambda: ask(srv, "q") == "fixed")


def test_the_file_shown_in_the_admin_records_the_rejection(new_server):
    srv = new_server(responses=responses_yaml({"q": "good"}))
    srv.responses_file.write_text("responses:\n  a: b\n  a: c\n")
    wait_for(lambda: srv.log_events("load_failed"))
    out = srv.manage("shell", "-c", "from responses_app.models import ResponseSet; print(ResponseSet.get().last_error)")
    assert "appears twice" in out.stdout and ":3:" in out.stdout


@pytest.mark.slow  # slow writes, on purpose
@pytest.mark.parametrize("style", ["one handle, 4 KiB pieces", "separate appends with pauses"])
def test_a_slowly_written_file_is_never_half_loaded(new_server, style):
    entries = {f"prompt {i:03}": f"answer {i:03} " + "x" * 200 for i in range(300)}
    srv = new_server(responses=responses_yaml(entries))
    changed = {**entries, "prompt 299": "the new last answer"}
    text = responses_yaml(changed).encode()
    seen_defaults: list[str] = []
    done = threading.Event()

    def watch_answers():
        while not done.is_set():
            for prompt in ("prompt 150", "prompt 298", "prompt 299"):
                if ask(srv, prompt) == DEFAULT:
                    seen_defaults.append(prompt)

    watcher = threading.Thread(target=watch_answers)
    watcher.start()
    try:
        if style.startswith("one handle"):
            with open(srv.responses_file, "wb") as handle:
                for start in range(0, len(text), 4096):
                    handle.write(text[start:start + 4096])
                    handle.flush()
                    time.sleep(0.05)
        else:
            srv.responses_file.write_bytes(b"")
            third = len(text) // 3
            for start in range(0, len(text), third):
                with open(srv.responses_file, "ab") as handle:
                    handle.write(text[start:start + third])
                time.sleep(0.5)  # longer than the debounce: the watcher sees a quiet, shorter file
        wait_for(lambda: ask(srv, "prompt 299") == "the new last answer")
    finally:
        done.set()
        watcher.join()
    assert seen_defaults == [], f"a partial file was loaded: {seen_defaults[:5]}"
    removed = [e["removed"] for e in srv.log_events("responses_loaded")]
    assert all(count == 0 for count in removed), removed


@pytest.mark.slow  # slow writes, on purpose
@pytest.mark.parametrize("style", ["emptied, then pieces 1 s apart", "a first piece, the rest 0.35 s later"])
def test_a_file_written_in_whole_lines_is_never_half_loaded(new_server, style):
    """Each piece ends between two lines, so every state of the file parses: as a shorter file, whose
    load would delete the entries still to come. Each piece is appended in an open of its own, so no
    writer holds the file open in between."""
    entries = {f"prompt {i:03}": f"answer {i:03}" for i in range(300)}
    srv = new_server(responses=responses_yaml(entries))
    lines = responses_yaml({**entries, "prompt 299": "the new last answer"}).splitlines(keepends=True)
    seen_defaults: list[str] = []
    done = threading.Event()

    def watch_answers():
        while not done.is_set():
            for prompt in ("prompt 150", "prompt 298"):
                if ask(srv, prompt) == DEFAULT:
                    seen_defaults.append(prompt)

    watcher = threading.Thread(target=watch_answers)
    watcher.start()
    try:
        if style.startswith("emptied"):
            srv.responses_file.write_bytes(b"")  # then four pieces, a second apart: longer than a held load waits
            pieces, pause = ["".join(lines[start:start + 80]) for start in range(0, len(lines), 80)], 1.0
        else:
            pieces, pause = ["".join(lines[:150]), "".join(lines[150:])], 0.35
            srv.responses_file.write_text(pieces.pop(0))
            time.sleep(pause)
        for piece in pieces:
            with open(srv.responses_file, "a") as handle:
                handle.write(piece)
            time.sleep(pause)
        wait_for(lambda: ask(srv, "prompt 299") == "the new last answer")
    finally:
        done.set()
        watcher.join()
    assert seen_defaults == [], f"a partial file was loaded: {seen_defaults[:5]}"
    removed = [e["removed"] for e in srv.log_events("responses_loaded")]
    assert all(count == 0 for count in removed), removed
    if style.startswith("emptied"):  # the watcher did see the shorter files, and held them back
        assert srv.log_events("load_held")


def test_removing_the_last_entries_in_place_is_held_briefly_and_by_rename_not_at_all(new_server):
    entries = {f"prompt {i:03}": f"answer {i:03}" for i in range(50)}
    srv = new_server(responses=responses_yaml(entries))
    srv.responses_file.write_text(responses_yaml(dict(list(entries.items())[:47])))  # in place: what a cut looks like
    wait_for(lambda: ask(srv, "prompt 049") == DEFAULT)
    held = srv.log_events("load_held")
    assert len(held) == 1 and held[0]["reason"] == "it drops the file's last 3 entries", held
    assert ask(srv, "prompt 046") == "answer 046"
    save_atomically(srv.responses_file, responses_yaml(dict(list(entries.items())[:45])))  # complete by construction
    wait_for(lambda: ask(srv, "prompt 046") == DEFAULT)
    assert len(srv.log_events("load_held")) == 1


@pytest.mark.slow  # twenty edits
def test_renames_and_removals_are_served_without_waiting(new_server, capsys):
    """Renaming or removing prompts anywhere but at the end of the file is not what a file cut short
    looks like: served as fast as any edit. (tests/benchmarks/hot_reload.py measures every kind.)"""
    rng = random.Random(13)
    entries = {f"prompt {i:03}": f"answer {i:03}" for i in range(200)}
    srv = new_server(responses=responses_yaml(entries))
    latencies = []
    for i in range(20):
        old = list(entries)[rng.randrange(0, len(entries) - 1)]  # any entry but the last
        if i % 4 == 3:  # a removal
            entries.pop(old)
            expected = {old: DEFAULT}
        else:  # a rename
            expected = {f"{old} renamed {i}": entries[old], old: DEFAULT}
            entries = {(f"{old} renamed {i}" if k == old else k): v for k, v in entries.items()}
        saved = time.monotonic()
        if i % 2:
            srv.responses_file.write_text(responses_yaml(entries))  # in place
        else:
            save_atomically(srv.responses_file, responses_yaml(entries))
        wait_for(lambda: all(ask(srv, prompt) == answer for prompt, answer in expected.items()), every=0.01)
        latencies.append(time.monotonic() - saved)
    latencies.sort()
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    with capsys.disabled():
        print(f"\n  hot reload, rename or removal -> served, 20 edits of 200 entries: p50 {p50 * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    assert srv.log_events("load_held") == [], "a rename or a removal was held back as if the file were cut short"
    removed = [e["removed"] for e in srv.log_events("responses_loaded")]
    assert sum(removed) == 20 and max(removed) == 1, removed  # each edit deleted its one row, and no more
    # Typically half a second (a 0.3 s debounce, then the load): four times that, for a busy machine.
    assert p50 < 2.0, f"the median edit took {p50:.2f} s to be served"


def test_a_hundred_rapid_saves_end_with_the_last_content(new_server):
    srv = new_server(responses=responses_yaml({"q": "start"}))
    for i in range(100):
        save_atomically(srv.responses_file, responses_yaml({"q": f"save {i}", f"extra {i}": "x"}))
    wait_for(lambda: ask(srv, "q") == "save 99")
    assert ask(srv, "extra 99") == "x" and ask(srv, "extra 98") == DEFAULT
    assert "database is locked" not in srv.log()


def two_servers_share_changes(first, second) -> None:
    """An admin save on one server and a file save are both served by the other server. Without a change
    each server rebuilds nothing; with one, each learns of it within MOCKLLM_INDEX_POLL_SECONDS (0.25 s)."""
    assert ask(first, "what is 2+2?") == ask(second, "what is 2+2?") == "2+2 equals 9."
    client = admin_session(first)
    assert admin_add(client, "added through the first server", "seen by the second").status_code == 302
    wait_for(lambda: ask(second, "added through the first server") == "seen by the second",
             message="the second server never served the first server's admin save")
    text = first.responses_file.read_text().replace("2+2 equals 9.", "2+2 equals 4.")
    save_atomically(first.responses_file, text)
    wait_for(lambda: ask(first, "what is 2+2?") == ask(second, "what is 2+2?") == "2+2 equals 4.",
             message="the file save was not served by both servers")
    # only one of the two watchers wrote
    assert len(first.log_events("watcher_started")) + len(second.log_events("watcher_started")) == 1
    assert "database is locked" not in first.log() + second.log()


def run_two_servers(tmp_path: Path, database_url: str | None) -> None:
    first = make_server(tmp_path / "a", database_url=database_url)
    second = make_server(tmp_path / "b", database_url=first.env["DATABASE_URL"],
                         MOCKLLM_RESPONSES_FILE=str(first.responses_file))
    try:
        first.start()
        second.start()
        two_servers_share_changes(first, second)
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow  # two servers
def test_two_servers_on_one_sqlite_database(tmp_path):
    run_two_servers(tmp_path, None)


@pytest.mark.slow  # two servers
def test_two_servers_on_postgres(tmp_path, postgres_database):
    run_two_servers(tmp_path, postgres_database)


@pytest.mark.slow  # a server and two watchers
def test_watchresponses_is_the_one_writer_and_a_standby_takes_over(tmp_path):
    srv = make_server(tmp_path / "s", MOCKLLM_HOT_RELOAD="0")
    watchers = []
    try:
        srv.start()
        for name, ready in (("first", "watching responses files"), ("second", "standing by")):
            log_path = tmp_path / f"{name}.log"
            with open(log_path, "w") as log:
                watchers.append(subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "watchresponses"],
                                                 env=srv.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            wait_for(lambda: ready in log_path.read_text(), message=lambda: log_path.read_text())
        text = srv.responses_file.read_text().replace("2+2 equals 9.", "2+2 equals 5.")
        save_atomically(srv.responses_file, text)
        wait_for(lambda: ask(srv, "what is 2+2?") == "2+2 equals 5.")
        assert "watching responses files" not in (tmp_path / "second.log").read_text()  # still standing by
        watchers[0].terminate()
        watchers[0].wait(timeout=10)
        wait_for(lambda: "watching responses files" in (tmp_path / "second.log").read_text())  # retries every 2 s
        save_atomically(srv.responses_file, text.replace("2+2 equals 5.", "2+2 equals 6."))
        wait_for(lambda: ask(srv, "what is 2+2?") == "2+2 equals 6.")
    finally:
        for process in watchers:
            process.terminate()
            process.wait(timeout=10)
        srv.stop()


@pytest.mark.slow  # a server and three manage.py runs
def test_dumpresponses_writes_admin_edits_back_and_round_trips(new_server, tmp_path):
    srv = new_server(responses=responses_yaml({"yes": "no", "multi": "line one\nline two", " spaced ": "é"}))
    client = admin_session(srv)
    assert admin_add(client, "typed in the admin", "kept").status_code == 302
    target = tmp_path / "dumped.yml"
    srv.manage("dumpresponses", "--output", str(target))
    from responses_app.canned.responses_file import parse_responses

    parsed = parse_responses(target.read_text())
    assert parsed.answers == {"yes": "no", "multi": "line one\nline two", " spaced ": "é", "typed in the admin": "kept"}
    assert parsed.unknown_response == DEFAULT
    assert "|" in target.read_text()  # multi-line answers stay readable
