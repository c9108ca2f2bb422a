"""Pacing accuracy: how long paced streams take against what was configured, alone and concurrently.

Each stream asks (X-Mock-Timing) for an answer of 500 characters at 50 chunks per second, one
character per chunk: 10 s by configuration. The client is a bare asyncio reader (no SDK), so the
measurement is the server's pace rather than a client's parsing.

    python tests/benchmarks/pacing.py [--concurrency 1 100 1000] [--daphne]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import make_server  # noqa: E402

ANSWER = ("Paced answers arrive one character at a time, at the rate the test asked for. " * 7)[:500]


async def one_stream(port: int, body: bytes, timing: str) -> tuple[float, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
               b"Connection: close\r\nX-Mock-Timing: " + timing.encode() + b"\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    started = time.monotonic()
    writer.write(request)
    await writer.drain()
    received = bytearray()
    while chunk := await reader.read(65536):
        received += chunk
    elapsed = time.monotonic() - started
    writer.close()
    return elapsed, received.count(b'"content":') - 1  # minus the role chunk's empty content


async def run(port: int, concurrency: int, timing: str) -> list[tuple[float, int]]:
    body = json.dumps({"model": "mock-llm", "stream": True, "messages": [{"role": "user", "content": "paced"}]}).encode()
    return await asyncio.gather(*(one_stream(port, body, timing) for _ in range(concurrency)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rate", type=float, default=50.0, help="chunks per second (default 50)")
    parser.add_argument("--daphne", action="store_true", help="serve with daphne rather than runserver")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    expected = len(ANSWER) / args.rate
    with tempfile.TemporaryDirectory(prefix="mockllm-pacing-") as work:
        server = make_server(Path(work), responses=f"responses:\n  paced: {json.dumps(ANSWER)}\n",
                             MOCKLLM_LOG_LEVEL="WARNING", MOCKLLM_HOT_RELOAD="0", PYTHONUNBUFFERED="")
        server.start(daphne=args.daphne)
        try:
            print(f"{len(ANSWER)} chunks at {args.rate:g} chunks/s: {expected:.2f} s configured "
                  f"({'daphne' if args.daphne else 'runserver'})\n")
            print("| concurrent streams | complete | median s | p95 s | max s | median error |")
            print("|---|---|---|---|---|---|")
            for concurrency in args.concurrency:
                results = asyncio.run(run(server.port, concurrency, f"chunks_per_second={args.rate}"))
                complete = [elapsed for elapsed, chunks in results if chunks == len(ANSWER)]
                durations = sorted(elapsed for elapsed, _ in results)
                p95 = durations[max(int(len(durations) * 0.95) - 1, 0)]
                median = statistics.median(durations)
                print(f"| {concurrency} | {len(complete)}/{concurrency} | {median:.2f} | {p95:.2f} | "
                      f"{durations[-1]:.2f} | {(median - expected) / expected:+.1%} |", flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
