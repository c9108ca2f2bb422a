"""Soak test: mixed traffic against a real server while its responses file is rewritten and the admin
saves entries; then check that nothing broke and nothing was lost.

    python tests/soak.py --seconds 600        # `make soak` runs it for 10 minutes; `make test` runs 12 s

Checks: zero 5xx, every admin edit served, the final state equal to the last file plus the admin rows,
memory and open file descriptors flat (the growth is reported), and no "Task was destroyed" or
unawaited/unclosed warnings in the server's log. Prints one JSON line of figures; exit 1 on a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import admin_add, admin_session, ask, csrf_token, make_server  # noqa: E402

FILE_PROMPTS = 50
BAD_LOG_WORDS = ("Task was destroyed but it is pending", "was never awaited", "unclosed", "database is locked",
                 "Traceback")


def file_text(generation: int) -> str:
    lines = ["responses:"] + [f'  "file prompt {i}": "generation {generation} answer {i}"' for i in range(FILE_PROMPTS)]
    return "\n".join(lines) + '\ndefaults:\n  unknown_response: "unknown"\n'


def fd_kinds(pid: int) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[target.split(":")[0] if ":" in target else Path(target).suffix or target] += 1
    return dict(kinds)


def rss_and_fds(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024, len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, seconds: float, workdir: Path, at_least: int = 0) -> None:
        self.seconds = seconds
        self.at_least = at_least
        self.srv = make_server(workdir, responses=file_text(0), MOCKLLM_LOG_LEVEL="WARNING")
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.generation = 0
        self.admin: dict[str, str] = {}  # prompt -> the answer last saved in the admin
        self.errors: list[str] = []
        self.streams = Counter()

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def prompts(self) -> list[str]:
        with self.lock:
            return [f"file prompt {random.randrange(FILE_PROMPTS)}", *list(self.admin)[:20], "never canned"]

    def json_client(self) -> None:
        with httpx.Client(base_url=self.srv.url, timeout=30) as client:
            while not self.stop.is_set():
                prompt = random.choice(self.prompts())
                if random.random() < 0.5:
                    response = client.post("/v1/chat/completions", json={
                        "model": "m", "messages": [{"role": "user", "content": prompt}]})
                else:
                    response = client.post("/v1/messages", json={
                        "model": "c", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]})
                self.count(response.status_code)

    def stream_client(self) -> None:
        with httpx.Client(base_url=self.srv.url, timeout=30) as client:
            while not self.stop.is_set():
                body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": random.choice(self.prompts())}]}
                with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    self.count(response.status_code)
                    if random.random() < 0.5:  # go away mid-stream
                        next(response.iter_bytes(), None)
                        self.streams["abandoned"] += 1
                        continue
                    data = response.read()
                    self.streams["complete" if data.endswith(b"data: [DONE]\n\n") else "truncated"] += 1

    def file_writer(self) -> None:
        while not self.stop.wait(3):
            with self.lock:
                self.generation += 1
                generation = self.generation
            text = file_text(generation)
            if generation % 2:
                temporary = self.srv.responses_file.with_suffix(".tmp")
                temporary.write_text(text)
                os.replace(temporary, self.srv.responses_file)
            else:
                self.srv.responses_file.write_text(text)

    def admin_editor(self) -> None:
        client = admin_session(self.srv, "soak", "soak-test-password-123")
        ids: dict[str, int] = {}
        number = 0
        while not self.stop.wait(1):
            try:
                if ids and random.random() < 0.4:  # edit an earlier admin entry
                    prompt = random.choice(list(ids))
                    answer = f"{prompt} edited at {time.monotonic():.3f}"
                    page = client.get(f"/admin/responses_app/cannedresponse/{ids[prompt]}/change/")
                    response = client.post(f"/admin/responses_app/cannedresponse/{ids[prompt]}/change/", data={
                        "csrfmiddlewaretoken": csrf_token(page), "prompt": prompt, "answer": answer, "options": "{}"})
                else:
                    number += 1
                    prompt, answer = f"admin prompt {number}", f"admin answer {number}"
                    response = admin_add(client, prompt, answer)
                    found = re.search(r"/cannedresponse/(\d+)/change/", response.headers.get("location", "") +
                                      client.get("/admin/responses_app/cannedresponse/", params={"q": prompt}).text)
                    if found:
                        ids[prompt] = int(found.group(1))
                if response.status_code != 302:
                    self.errors.append(f"admin save answered {response.status_code}")
                    continue
                with self.lock:
                    self.admin[prompt] = answer
            except httpx.HTTPError as exc:
                self.errors.append(f"admin: {exc!r}")

    def run(self) -> dict:
        self.srv.start()
        workers = [threading.Thread(target=self.json_client) for _ in range(3)]
        workers += [threading.Thread(target=self.stream_client) for _ in range(2)]
        workers += [threading.Thread(target=self.file_writer), threading.Thread(target=self.admin_editor)]
        for worker in workers:
            worker.start()
        time.sleep(min(5, self.seconds / 4))
        start_rss, start_fds = rss_and_fds(self.srv.process.pid)
        time.sleep(max(self.seconds - min(5, self.seconds / 4), 0))
        # On a busy machine the writers get less done: go on until each did its share (within reason).
        deadline = time.monotonic() + max(self.seconds, 60)
        while (self.generation < self.at_least or len(self.admin) < self.at_least) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stop.set()
        for worker in workers:
            worker.join()
        time.sleep(1.5)  # the clients' connections close
        end_rss, end_fds = rss_and_fds(self.srv.process.pid)
        self.fd_kinds = fd_kinds(self.srv.process.pid)
        try:
            return self.check(start_rss, end_rss, start_fds, end_fds)
        finally:
            self.srv.stop()

    def check(self, start_rss: float, end_rss: float, start_fds: int, end_fds: int) -> dict:
        def lost_and_stale() -> tuple[list[str], list[int]]:
            lost = [p for p, a in self.admin.items() if ask(self.srv, p) != a]
            stale = [i for i in range(FILE_PROMPTS) if ask(self.srv, f"file prompt {i}") != f"generation {self.generation} answer {i}"]
            return lost, stale

        # The last file save is loaded after a 0.3 s debounce (and a busy machine's delay): wait for it.
        deadline = time.monotonic() + 30
        lost, stale = lost_and_stale()
        while (lost or stale) and time.monotonic() < deadline:
            time.sleep(0.5)
            lost, stale = lost_and_stale()
        with sqlite3.connect(self.srv.sqlite_path) as connection:
            rows = connection.execute("SELECT count(*) FROM responses_app_cannedresponse").fetchone()[0]
        log = self.srv.log()
        bad_lines = [line[-1500:] for line in log.splitlines() if any(word in line for word in BAD_LOG_WORDS)]
        figures = {
            "seconds": self.seconds, "requests": sum(self.statuses.values()), "statuses": dict(self.statuses),
            "streams": dict(self.streams), "file_rewrites": self.generation, "admin_entries": len(self.admin),
            "lost_admin_edits": len(lost), "stale_file_answers": len(stale),
            "rows": rows, "expected_rows": FILE_PROMPTS + len(self.admin),
            "rss_mb": [round(start_rss, 1), round(end_rss, 1)], "fds": [start_fds, end_fds],
            "fd_kinds": self.fd_kinds, "bad_log_lines": bad_lines[:5], "errors": self.errors[:5],
        }
        ok = (
            not any(status >= 500 for status in self.statuses) and not lost and not stale and not bad_lines
            and not self.errors and rows == FILE_PROMPTS + len(self.admin) and self.generation > 0
            and len(self.admin) > 0 and end_fds - start_fds <= 10
        )
        figures["ok"] = ok
        if not ok:  # keep the evidence
            kept = Path(tempfile.gettempdir()) / f"mockllm-soak-{int(time.time())}.log"
            kept.write_text(log)
            figures["server_log"] = str(kept)
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--at-least", type=int, default=0, metavar="N",
                        help="go on past --seconds until the file was rewritten and the admin saved N times each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mockllm-soak-") as work:
        figures = Soak(args.seconds, Path(work) / "srv", args.at_least).run()
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
