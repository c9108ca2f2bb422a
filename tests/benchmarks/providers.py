"""Throughput of each provider's route against OpenAI's, on one server (daphne), the same canned answer.

wrk drives each route in turns (A B A B ...) so that drift hits every route alike; the table shows the
median requests per second, and the server process's CPU time per request (which other work on the
machine disturbs far less than throughput), each with its ratio to OpenAI's. A provider's route should
cost what OpenAI's does.

    python tests/benchmarks/providers.py --seconds 5 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.benchmarks.compare import SEED_ENTRIES, SKY, responses_text, wrk  # noqa: E402
from tests.support import make_server  # noqa: E402

MESSAGES = [{"role": "user", "content": SKY}]
GEMINI = {"contents": [{"role": "user", "parts": [{"text": SKY}]}]}
CONVERSE = {"messages": [{"role": "user", "content": [{"text": SKY}]}]}
# route: (path, body without `stream`, the streaming path where the path says it rather than `stream: true`)
ROUTES = {
    "openai": ("/v1/chat/completions", {"model": "mock-llm", "messages": MESSAGES}, None),
    "azure": ("/openai/deployments/mock-llm/chat/completions?api-version=2024-10-21", {"messages": MESSAGES}, None),
    "azure-v1": ("/openai/v1/chat/completions", {"model": "mock-llm", "messages": MESSAGES}, None),
    "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent", GEMINI,
               "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
    "bedrock": ("/model/mock-llm/converse", CONVERSE, "/model/mock-llm/converse-stream"),
    "ollama": ("/api/chat", {"model": "llama3.2", "messages": MESSAGES}, None),
}
TARGET = 0.90  # issue: a provider's request within 10% of an OpenAI one


def script(folder: Path, name: str, path: str, body: dict, stream_path: str | None, stream: bool) -> Path:
    file = folder / f"{name}-{'stream' if stream else 'json'}.lua"
    if stream_path is None:
        payload = json.dumps({**body, "stream": stream})
    else:
        payload, path = json.dumps(body), (stream_path if stream else path)
    file.write_text(f'wrk.method = "POST"\nwrk.path = {json.dumps(path)}\nwrk.body = {json.dumps(payload)}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return file


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="turns per route and workload (default 3)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mockllm-providers-"))
    server = make_server(work / "server", responses=responses_text(len(SEED_ENTRIES)), DEBUG="0",
                         SECRET_KEY="benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
                         MOCKLLM_HOT_RELOAD="0", PYTHONUNBUFFERED="").start(daphne=True)
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for workload, stream in (("json", False), ("stream", True)):
            scripts = {name: script(work, name, *route, stream) for name, route in ROUTES.items()}
            for name in ROUTES:  # warm each route up
                wrk(server.url, scripts[name], seconds=1, connections=4)
            for round_number in range(args.rounds):
                for name, lua in scripts.items():
                    before = cpu_seconds(server.process.pid)
                    result = wrk(server.url, lua, seconds=args.seconds, connections=32)
                    used = (cpu_seconds(server.process.pid) - before) / result["requests"] * 1e6
                    assert result["errors"] == 0, f"{name} {workload}: {result['errors']} errors"
                    results.setdefault((workload, name), []).append(result["rps"])
                    cpu.setdefault((workload, name), []).append(used)
                    print(f"  round {round_number + 1}: {workload:<7} {name:<9} {result['rps']:9.1f}/s "
                          f"{used:7.0f} us CPU/request", flush=True)
    finally:
        server.stop()
    print("\n| workload | route | req/s (median) | vs OpenAI | CPU per request (median) | vs OpenAI | within 10% |\n"
          "|---|---|---|---|---|---|---|")
    for workload in ("json", "stream"):
        base, base_cpu = statistics.median(results[(workload, "openai")]), statistics.median(cpu[(workload, "openai")])
        for name in ROUTES:
            rps, used = statistics.median(results[(workload, name)]), statistics.median(cpu[(workload, name)])
            verdict = "PASS" if rps / base >= TARGET else "FAIL"
            print(f"| {workload} | {name} | {rps:,.0f} | {rps / base:.2f}x | {used:,.0f} us | {used / base_cpu:.2f}x "
                  f"| {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
