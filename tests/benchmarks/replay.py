"""What a replayed recording costs against a hand-written entry: the same answer served both ways.

One server (daphne, recording off) holds a hand-written entry and a recording of another request with
the same answer; one keep-alive connection asks each in turn, in interleaved rounds, JSON and streamed,
and the median and p95 latency of each are printed. A replay computes the request's fingerprint after
the hand-written entries missed; everything else is the same path.

    python tests/benchmarks/replay.py [--requests 2000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mockllm_site.settings")
import django  # noqa: E402

django.setup()  # the fingerprint function lives beside the models
from responses_app.canned.recordings import fingerprint  # noqa: E402
from tests.support import make_server  # noqa: E402

ANSWER = "The capital of France is Paris."
RECORDED = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France, recorded?"}]
HAND_WRITTEN = [{"role": "user", "content": "What is the capital of France?"}]


def responses_file() -> str:
    fp = fingerprint("/v1/chat/completions", {"model": "gpt-4o", "messages": RECORDED})
    return (f'responses:\n  - match: "What is the capital of France?"\n    response: "{ANSWER}"\n'
            f'  - match: "What is the capital of France, recorded?"\n    recorded: {fp}\n'
            f'    response:\n      text: "{ANSWER}"\n      finish_reason: stop\n')


def timed(client: httpx.Client, messages: list, stream: bool, count: int) -> list[float]:
    body = json.dumps({"model": "gpt-4o", "messages": messages, "stream": stream})
    took = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = make_server(Path(folder), responses=responses_file(), MOCKLLM_LOG_LEVEL="WARNING",
                             MOCKLLM_JOURNAL="0").start(daphne=True)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for messages in (RECORDED, HAND_WRITTEN):  # both answer, and were served once
                    reply = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": messages})
                    assert reply.json()["choices"][0]["message"]["content"] == ANSWER, reply.text
                results: dict[tuple[str, bool], list[float]] = {}
                for _ in range(args.rounds):
                    for stream in (False, True):
                        for name, messages in (("hand-written", HAND_WRITTEN), ("replayed", RECORDED)):
                            results.setdefault((name, stream), []).extend(timed(client, messages, stream,
                                                                                args.requests))
        finally:
            server.stop()
    print("| answer | median | p95 |")
    print("|---|---|---|")
    for (name, stream), took in results.items():
        took.sort()
        print(f"| {name}, {'streamed' if stream else 'JSON'} | {statistics.median(took):.2f} ms | "
              f"{took[int(len(took) * 0.95)]:.2f} ms |")


if __name__ == "__main__":
    main()
