"""One test run's heavy use against the others' latency, in the team-shared mode.

A server (daphne, as `runserver` serves) on a scratch PostgreSQL database with Redis. One "other run"
keeps asking a plain question over one connection while a heavy run does, in turn:
- nothing (the baseline);
- holds 12 journal long-polls open (`wait=8`), and meanwhile adds one canned response (that POST's time
  is shown too);
- adds 10,000 entries to its set one POST at a time (for --single seconds);
- adds 10,000 entries in one bulk POST (a JSON list).
It prints the other run's p50 and p99 for each phase.

    python tests/benchmarks/team.py [--requests 400] [--single 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import (  # noqa: E402
    CONTROL_TOKEN,
    POSTGRES_URL,
    REDIS_URL,
    make_server,
    postgres_available,
    redis_available,
    scratch_database,
)

AUTH = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def other_run_latencies(url: str, count: int, stop: threading.Event | None = None) -> list[float]:
    """Milliseconds of plain requests of another run, one after another over one connection."""
    body = {"model": "m", "messages": [{"role": "user", "content": "what is 2+2?"}]}
    latencies = []
    with httpx.Client(base_url=url, timeout=30, headers={"X-Mock-Test-Id": "other-run"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            if stop is not None and stop.is_set():
                break
    return latencies


def while_doing(url: str, count: int, heavy) -> tuple[list[float], dict]:
    """The other run's latencies while `heavy(notes)` runs in a thread."""
    notes: dict = {}
    worker = threading.Thread(target=heavy, args=(notes,))
    worker.start()
    time.sleep(0.3)  # the heavy work is under way
    latencies = other_run_latencies(url, count)
    worker.join(timeout=600)
    return latencies, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="the other run's requests per phase")
    parser.add_argument("--single", type=float, default=15.0, help="seconds of one-by-one adds")
    args = parser.parse_args()
    if not (postgres_available() and redis_available()):
        sys.exit(f"needs PostgreSQL at {POSTGRES_URL} and Redis at {REDIS_URL}")
    with tempfile.TemporaryDirectory() as workdir, scratch_database() as database_url:
        server = make_server(Path(workdir), database_url=database_url, MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN,
                             MOCKLLM_REDIS_URL=REDIS_URL, MOCKLLM_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}")
        server.start(daphne=True)
        try:
            url = server.url
            other_run_latencies(url, 50)  # warm up
            rows = [("baseline", other_run_latencies(url, args.requests), "")]

            def long_polls(notes: dict) -> None:
                polls = [threading.Thread(target=httpx.get, args=(f"{url}/control/journal",), kwargs=dict(
                    params={"test_id": "nobody", "wait": 8, "min_count": 1}, headers=AUTH, timeout=30))
                    for _ in range(12)]
                for poll in polls:
                    poll.start()
                time.sleep(0.5)
                started = time.perf_counter()
                response = httpx.post(f"{url}/control/responses", headers={**AUTH, "X-Mock-Test-Id": "writer"},
                                      json={"match": "during the polls", "response": "ok"}, timeout=30)
                notes["post"] = f"a control POST took {(time.perf_counter() - started) * 1000:.0f} ms " \
                                f"({response.status_code})"
                for poll in polls:
                    poll.join()

            rows.append(("12 journal long-polls open", *while_doing(url, args.requests, long_polls)))

            def single_adds(notes: dict) -> None:
                added, deadline = 0, time.monotonic() + args.single
                with httpx.Client(base_url=url, headers={**AUTH, "X-Mock-Test-Id": "heavy-single"}, timeout=30) as c:
                    while time.monotonic() < deadline and added < 10_000:
                        assert c.post("/control/responses", json={"match": f"p{added}", "response": "a"}).status_code == 201
                        added += 1
                notes["post"] = f"{added} entries added one by one"

            rows.append(("adding entries one by one", *while_doing(url, args.requests, single_adds)))

            def bulk_add(notes: dict) -> None:
                entries = [{"match": f"bulk {i}", "response": "a"} for i in range(10_000)]
                started = time.perf_counter()
                response = httpx.post(f"{url}/control/responses", json=entries, timeout=300,
                                      headers={**AUTH, "X-Mock-Test-Id": "heavy-bulk"})
                notes["post"] = f"10,000 entries in one POST: {response.status_code} in " \
                                f"{time.perf_counter() - started:.1f} s"

            rows.append(("a bulk add of 10,000 entries", *while_doing(url, args.requests, bulk_add)))
        finally:
            server.stop()
    print(f"\n{'while the heavy run does':32} {'p50 ms':>8} {'p99 ms':>8}  notes")
    for name, latencies, notes in rows:
        note = notes.get("post", "") if isinstance(notes, dict) else notes
        print(f"{name:32} {statistics.median(latencies):8.1f} {percentile(latencies, 0.99):8.1f}  {note}")


if __name__ == "__main__":
    main()
