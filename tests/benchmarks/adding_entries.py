"""What one run adding many canned responses costs the other runs.

`uvicorn --workers N` on a scratch PostgreSQL database, told of changes over Redis (the shared
deployment). One client sends another run's plain chat requests back to back the whole time and
records their latency: for 5 s with nothing else going on, then while a second client adds --entries
entries to its own run through the control API, one per POST, or --bulk entries per POST (a JSON
list). Prints p50, p99 and the slowest of both phases, and how long the additions took.

    .venv/bin/python tests/benchmarks/adding_entries.py --entries 10000
    .venv/bin/python tests/benchmarks/adding_entries.py --entries 10000 --bulk 1000

PostgreSQL and Redis are taken from MOCKLLM_TEST_POSTGRES_URL and MOCKLLM_TEST_REDIS_URL, as in the tests.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import CONTROL_TOKEN, POSTGRES_URL, REDIS_URL, make_server, scratch_database  # noqa: E402

CHAT = {"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def describe(latencies: list[float]) -> str:
    return (f"{len(latencies)} requests, p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p99 {percentile(latencies, 0.99):.1f} ms, slowest {max(latencies) * 1000:.0f} ms")


def other_run(url: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=url, headers={"X-Mock-Test-Id": "quiet-run"}) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=CHAT)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text


def add_entries(url: str, entries: int, bulk: int) -> list[float]:
    took = []
    headers = {"Authorization": f"Bearer {CONTROL_TOKEN}", "X-Mock-Test-Id": "busy-run"}
    with httpx.Client(base_url=f"{url}/control", headers=headers, timeout=120) as client:
        for start in range(0, entries, bulk or 1):
            if bulk:
                body = [{"match": f"prompt {i}", "response": f"answer {i}"}
                        for i in range(start, min(start + bulk, entries))]
            else:
                body = {"match": f"prompt {start}", "response": f"answer {start}"}
            started = time.perf_counter()
            response = client.post("/responses", json=body)
            took.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=3000, help="entries the busy run adds (default 3000)")
    parser.add_argument("--bulk", type=int, default=0, help="entries per POST, as a JSON list (default: one each)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    args = parser.parse_args()
    with scratch_database(POSTGRES_URL) as database_url:
        server = make_server(Path(tempfile.mkdtemp(prefix="mockllm-adding-")), database_url=database_url,
                             MOCKLLM_REDIS_URL=REDIS_URL, MOCKLLM_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:6]}",
                             MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN, MOCKLLM_LOG_LEVEL="WARNING")
        server.start(uvicorn_workers=args.workers)
        try:
            with httpx.Client(base_url=server.url) as client:  # every worker warm
                for _ in range(50):
                    client.post("/v1/chat/completions", json=CHAT)
            for phase in ("idle", "adding"):
                latencies: list[float] = []
                stop = threading.Event()
                measuring = threading.Thread(target=other_run, args=(server.url, stop, latencies))
                measuring.start()
                started = time.monotonic()
                if phase == "idle":
                    time.sleep(5)
                else:
                    posts = add_entries(server.url, args.entries, args.bulk)
                    how = f"in lists of {args.bulk}" if args.bulk else "one by one"
                    print(f"added {args.entries} entries {how} in {time.monotonic() - started:.1f} s "
                          f"(a POST: p50 {percentile(posts, 0.5):.1f} ms, p99 {percentile(posts, 0.99):.1f} ms)")
                stop.set()
                measuring.join()
                print(f"the other run, {phase}: {describe(latencies)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
