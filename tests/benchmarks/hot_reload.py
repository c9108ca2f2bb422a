"""Hot reload: how long an edit of the responses file takes to be served, by kind of edit.

A server (runserver, which watches its responses file) holds a 200-entry file. Each kind of edit is made
20 times, saved alternately by writing a temporary file and renaming it over the old one (as most
editors do) and in place (truncate and write, as others do). An edit counts as served once the server
gives the new answers and no longer the old ones. Prints p50, p95 and the slowest, in milliseconds.

    python tests/benchmarks/hot_reload.py [--edits rename remove rename-last remove-last add] [--count 20]

`rename` renames a prompt somewhere in the file (the most common edit); `remove` deletes one;
`rename-last` and `remove-last` do so to the file's last entry, which is what a file cut short while
being written looks like; `add` adds one.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import DEFAULT_ANSWER, ask, make_server, wait_for  # noqa: E402

EDITS = ("rename", "remove", "rename-last", "remove-last", "add")


def render(entries: dict[str, str]) -> str:
    lines = ["responses:"] + [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items()]
    return "\n".join(lines) + f"\ndefaults:\n  unknown_response: {json.dumps(DEFAULT_ANSWER)}\n"


def save(path: Path, text: str, atomically: bool) -> None:
    if atomically:
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    else:
        path.write_text(text)


def edit(entries: dict[str, str], kind: str, i: int, rng: random.Random) -> tuple[dict[str, str], dict[str, str]]:
    """The edited entries, and what the server must then answer (prompt -> answer, the default for gone ones)."""
    keys = list(entries)
    if kind == "add":
        new = f"added prompt {i}"
        return {**entries, new: f"added answer {i}"}, {new: f"added answer {i}"}
    old = keys[-1] if kind.endswith("-last") else keys[rng.randrange(1, len(keys) - 1)]
    if kind.startswith("remove"):
        return {k: v for k, v in entries.items() if k != old}, {old: DEFAULT_ANSWER}
    new = f"{old} (renamed {i})"
    renamed = {(new if k == old else k): v for k, v in entries.items()}
    return renamed, {new: entries[old], old: DEFAULT_ANSWER}


def measure(kind: str, count: int, work: Path) -> list[float]:
    rng = random.Random(kind)
    entries = {f"prompt {n:03}": f"answer {n:03}" for n in range(200)}
    server = make_server(work / kind, responses=render(entries), MOCKLLM_LOG_LEVEL="WARNING").start()
    try:
        assert ask(server, "prompt 000") == "answer 000"
        latencies = []
        for i in range(count):
            entries, expected = edit(entries, kind, i, rng)
            if len(entries) < 150:  # keep the file about 200 entries long
                entries.update({f"refill {i}-{n}": "refilled" for n in range(50)})
                save(server.responses_file, render(entries), atomically=True)
                wait_for(lambda: ask(server, f"refill {i}-0") == "refilled")
            saved = time.monotonic()
            save(server.responses_file, render(entries), atomically=i % 2 == 0)
            wait_for(lambda: all(ask(server, prompt) == answer for prompt, answer in expected.items()), every=0.01)
            latencies.append(time.monotonic() - saved)
            time.sleep(0.2)  # apart from the next edit
        return latencies
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", nargs="+", choices=EDITS, default=list(EDITS))
    parser.add_argument("--count", type=int, default=20, help="edits of each kind (default 20)")
    args = parser.parse_args()
    print(f"{'edit':<12} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}   ({args.count} edits each, 200 entries, "
          "saved by rename and in place alternately)")
    with tempfile.TemporaryDirectory(prefix="mockllm-reload-") as work:
        for kind in args.edits:
            latencies = sorted(measure(kind, args.count, Path(work)))
            p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
            print(f"{kind:<12} {statistics.median(latencies) * 1000:7.0f} {p95 * 1000:7.0f} "
                  f"{latencies[-1] * 1000:7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
