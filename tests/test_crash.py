"""Crash safety: a server killed with SIGKILL in the middle of a load comes back with the complete
previous set or the complete new one, never a mix and never an empty table."""
from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from .support import ask, make_server, wait_for

pytestmark = pytest.mark.slow  # a 12,000-entry file loaded four times, the server killed twice

ENTRIES = 12_000


def responses(tag: str) -> str:
    lines = ["responses:"] + [f'  "prompt {i}": "{tag} answer {i}"' for i in range(ENTRIES)]
    return "\n".join(lines) + "\n"


def answers_by_tag(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT substr(answer, 1, 1), count(*) FROM responses_app_cannedresponse GROUP BY 1").fetchall()
    return dict(rows)


def test_sigkill_during_a_load_leaves_one_complete_set(tmp_path):
    srv = make_server(tmp_path / "crash", responses=responses("A"))
    database = srv.sqlite_path
    assert answers_by_tag(database) == {"A": ENTRIES}
    # How long a full load of a changed file takes on this machine, to kill the next one half-way.
    srv.responses_file.write_text(responses("B"))
    started = time.monotonic()
    srv.manage("loadresponses", str(srv.responses_file))
    load_seconds = time.monotonic() - started
    assert answers_by_tag(database) == {"B": ENTRIES}

    outcomes = []
    for fraction in (0.3, 0.6):
        srv.start()
        assert ask(srv, "prompt 1").endswith("answer 1")
        before = answers_by_tag(database)
        tag = "C" if "B" in before else "B"
        srv.responses_file.write_text(responses(tag))
        time.sleep(0.5 + fraction * load_seconds)  # debounce and settle, then part of the load
        srv.process.send_signal(signal.SIGKILL)
        srv.process.wait()
        after = answers_by_tag(database)
        assert len(after) == 1 and sum(after.values()) == ENTRIES, f"a mix or a loss: {after}"
        outcomes.append("previous" if after == before else "new")
        srv.start()  # restarted, it serves the complete set (and its watcher loads the file again)
        assert ask(srv, f"prompt {ENTRIES - 1}").endswith(f"answer {ENTRIES - 1}")
        wait_for(lambda: answers_by_tag(database) == {tag: ENTRIES}, timeout=60, every=0.2,
                 message=lambda: f"the restarted server did not load the file: {answers_by_tag(database)}")
        srv.stop()
    assert "previous" in outcomes, f"no kill landed inside a load: {outcomes} (load took {load_seconds:.1f} s)"
    print(json.dumps({"load_seconds": round(load_seconds, 2), "outcomes": outcomes}))
