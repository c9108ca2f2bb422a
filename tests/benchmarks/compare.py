"""Side-by-side benchmark: mockllm (this project) against the original mockllm==0.0.8 and a bare ASGI app.

Run it with `make bench` (which prepares the original's virtual environment and wrk). Each server runs
as one process, as users run it: ours under `manage.py runserver --noreload` and under daphne (the
production command), the original under uvicorn, and a bare ASGI app that returns a fixed body under
uvicorn as the floor of Python on this machine. wrk drives them on loopback with the same load, taking
turns (A B C A B C ...) so that drift hits every server alike; the table shows medians over the rounds.

    python tests/benchmarks/compare.py --seconds 5 --rounds 3 --original-python .bench/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import ROOT, Server, chat, make_server  # noqa: E402

SKY = "what colour is the sky?"
SKY_ANSWER = "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
SEED_ENTRIES = [
    (SKY, SKY_ANSWER),
    ("what is 2+2?", "2+2 equals 9."),
    ("tell me a joke", "Why did the mock server cross the road? To return the same answer every time."),
    ("hello", "Hello! I am a mock LLM."),
    ("what is the capital of france?", "The capital of France is Paris."),
    ("summarize this", "This is a deterministic summary from mockllm."),
]
BARE_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"id":"x","object":"chat.completion","choices":[]}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def responses_text(count: int) -> str:
    lines = ["responses:"] + [f"  {json.dumps(p)}: {json.dumps(a)}" for p, a in SEED_ENTRIES]
    lines += [f'  "generated prompt number {i}": "generated answer number {i}"' for i in range(count - len(SEED_ENTRIES))]
    return "\n".join(lines) + '\ndefaults:\n  unknown_response: "I do not know."\n'


@dataclass
class Contender:
    """A server in the comparison: ours (runserver or daphne) or another command (`argv`, "{port}" in it
    replaced by the port) run in `cwd`."""
    name: str
    server: Server
    daphne: bool = False
    argv: list[str] | None = None
    cwd: Path = ROOT

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Contender:
        self.server.start(daphne=self.daphne, argv=self.argv, cwd=self.cwd, timeout=60)
        return self

    def warm(self, prompt: str = SKY) -> None:
        """First requests build indexes and caches; check the answer is the canned one."""
        for stream in (False, True):
            reply = chat(self.server, prompt, model="mock-llm", stream=stream, timeout=120)
            if reply.status_code != 200 or (not stream and "Rayleigh" not in reply.text and self.name != "bare"):
                raise RuntimeError(f"{self.name} answered {reply.status_code}: {reply.text[:200]}")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.server.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def stop(self) -> None:
        self.server.stop()


def wrk(url: str, script: Path, *, seconds: float, connections: int, threads: int = 1, latency: bool = False) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s", str(script)]
    out = subprocess.run(argv + (["--latency"] if latency else []) + [f"{url}/v1/chat/completions"],
                         capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "errors": 0}
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] += sum(int(x) for x in m.groups())
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    if latency and (m := re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)):
        result["p50_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return result


def lua(path: Path, stream: bool, prompt: str = SKY) -> Path:
    body = json.dumps({"model": "mock-llm", "stream": stream, "messages": [{"role": "user", "content": prompt}]})
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n')
    return path


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.results: dict[tuple[str, str], list[float]] = {}
        self.notes: dict[str, object] = {}

    def ours(self, name: str, count: int, daphne: bool, log_level: str | None = None) -> Contender:
        folder = self.work / f"{name}-{count}"
        folder.mkdir(exist_ok=True)
        server = make_server(folder, responses=responses_text(count), DEBUG="0",
                             SECRET_KEY="benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
                             MOCKLLM_LOG_LEVEL=log_level or self.args.log_level, MOCKLLM_HOT_RELOAD="0",
                             PYTHONUNBUFFERED="")  # the log is written as users' servers write it: buffered
        return Contender(name, server, daphne=daphne)

    def original(self, count: int) -> Contender:
        folder = self.work / f"original-{count}"
        folder.mkdir(exist_ok=True)
        (folder / "responses.yml").write_text(responses_text(count))
        env = {**os.environ, "MOCKLLM_RESPONSES_FILE": str(folder / "responses.yml")}
        argv = [self.args.original_python, "-m", "uvicorn", "mockllm.server:app", "--host", "127.0.0.1",
                "--port", "{port}", "--log-level", "warning"]
        return Contender("original", Server(folder, env), argv=argv, cwd=folder)

    def bare(self) -> Contender:
        (self.work / "bare_app.py").write_text(BARE_APP)
        argv = [self.args.original_python, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", "{port}",
                "--log-level", "warning"]
        return Contender("bare", Server(self.work, dict(os.environ)), argv=argv, cwd=self.work)

    def rounds(self, servers: list[Contender], workloads: dict[str, Path], count: int) -> None:
        """Every workload on every server, in turns, `rounds` times; record requests/s."""
        for server in servers:
            server.warm()
        for round_number in range(self.args.rounds):
            for workload, script in workloads.items():
                for server in servers:
                    seconds = self.args.seconds * (2 if server.name == "original" and count > 1000 else 1)
                    result = wrk(server.url, script, seconds=seconds, connections=32)
                    if server.name == "original" and count > 1000:
                        server.warm()  # let its backlog of slow requests drain before the next server's turn
                    self.results.setdefault((f"{workload}, {count} entries", server.name), []).append(result["rps"])
                    print(f"  round {round_number + 1}: {workload:<8} {count:>6} entries  {server.name:<18}"
                          f" {result['rps']:9.1f}/s  errors {result['errors']}", flush=True)

    def run(self) -> None:
        json_script, stream_script = lua(self.work / "json.lua", False), lua(self.work / "stream.lua", True)
        for count in (6, 10_000):
            servers = [self.ours("ours-runserver", count, False), self.ours("ours-daphne", count, True),
                       self.original(count)]
            if count == 6:  # the same server without its per-request log line, and the floor
                servers += [self.ours("ours-runserver-nolog", count, False, "WARNING"), self.bare()]
            try:
                for server in servers:
                    server.start()
                print(f"# {count} entries", flush=True)
                self.rounds(servers, {"json": json_script, "stream": stream_script}, count)
            finally:
                for server in servers:
                    server.stop()
        self.concurrency(stream_script)
        self.lookup_latency(json_script)

    def concurrency(self, stream_script: Path) -> None:
        """1,000 clients streaming at once: every stream must complete."""
        for daphne, name in ((False, "ours-runserver"), (True, "ours-daphne")):
            server = self.ours(name, 6, daphne).start()
            try:
                server.warm()
                result = wrk(server.url, stream_script, seconds=self.args.seconds * 2, connections=1000, threads=2)
                self.notes[f"1000 concurrent streams, {name}"] = (
                    f"{result.get('requests', 0)} streams completed, {result['errors']} errors, {result['rps']:.0f}/s")
                print(f"  1000 concurrent streams on {name}: {self.notes[f'1000 concurrent streams, {name}']}", flush=True)
                self.notes[f"errors_{name}"] = result["errors"]
            finally:
                server.stop()

    def lookup_latency(self, json_script: Path) -> None:
        """p50 latency of one matched request at a time, at 10 and 100,000 entries; memory at 100,000."""
        for count in (10, 100_000):
            server = self.ours("ours-runserver", count, False).start()
            try:
                server.warm()
                p50s = [wrk(server.url, json_script, seconds=self.args.seconds, connections=1, latency=True)["p50_ms"]
                        for _ in range(self.args.rounds)]
                self.notes[f"p50_{count}"] = statistics.median(p50s)
                self.notes[f"rss_{count}"] = server.rss_mb()
                print(f"  matched-request p50 at {count} entries: {self.notes[f'p50_{count}']:.3f} ms, "
                      f"RSS {self.notes[f'rss_{count}']:.0f} MB", flush=True)
            finally:
                server.stop()

    def report(self) -> bool:
        median = {key: statistics.median(values) for key, values in self.results.items()}
        rows = sorted({workload for workload, _ in median}, key=lambda w: (int(w.split(", ")[1].split()[0]), w))
        names = ["ours-runserver", "ours-daphne", "original", "ours-runserver-nolog", "bare"]
        print("\n| workload | " + " | ".join(names) + " | runserver / original | daphne / original |")
        print("|---|" + "---|" * (len(names) + 2))
        def get(workload: str, name: str) -> float:
            return median.get((workload, name), 0.0)

        def ratio(workload: str, name: str) -> float:
            """ours / original; when the original finished nothing in a run, a lower bound: it
            managed under one request in that run's time."""
            original = get(workload, "original")
            seconds = self.args.seconds * (2 if "10000" in workload else 1)
            return get(workload, name) / original if original else get(workload, name) * seconds

        for workload in rows:
            cells = [f"{median[(workload, n)]:.1f}" if (workload, n) in median else "" for n in names]
            bound = "" if get(workload, "original") else ">"
            ratios = [f"{bound}{ratio(workload, n):.1f}x" for n in names[:2]]
            print(f"| {workload} (req/s) | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

        checks = []
        for name in ("ours-runserver", "ours-daphne"):
            checks += [
                (f"{name}: JSON, 6 entries >= 1.5x original", ratio("json, 6 entries", name) >= 1.5),
                (f"{name}: streams, 6 entries >= 1.5x original", ratio("stream, 6 entries", name) >= 1.5),
                (f"{name}: JSON, 10,000 entries >= 100x original", ratio("json, 10000 entries", name) >= 100),
                (f"{name}: streams, 10,000 entries >= 100x original", ratio("stream, 10000 entries", name) >= 100),
                (f"{name}: JSON, 10,000 entries within 10% of 6 entries",
                 get("json, 10000 entries", name) >= 0.9 * get("json, 6 entries", name)),
                (f"{name}: 1,000 concurrent streams, zero errors", self.notes.get(f"errors_{name}") == 0),
            ]
        checks += [
            ("p50 latency at 100,000 entries within 10% of 10 entries", self.notes["p50_100000"] <= 1.1 * self.notes["p50_10"]),
            ("resident memory at 100,000 entries < 250 MB", self.notes["rss_100000"] < 250),
        ]
        print()
        for label, value in self.notes.items():
            if not label.startswith(("errors_", "p50_", "rss_")):
                print(f"{label}: {value}")
        print(f"matched-request p50: {self.notes['p50_10']:.3f} ms at 10 entries, {self.notes['p50_100000']:.3f} ms at 100,000")
        print(f"resident memory of a server holding 100,000 entries: {self.notes['rss_100000']:.0f} MB "
              f"(10 entries: {self.notes['rss_10']:.0f} MB)")
        quiet = get("json, 6 entries", "ours-runserver-nolog")
        if quiet:
            print(f"cost of the JSON access log (runserver, JSON, 6 entries): "
                  f"{1 - get('json, 6 entries', 'ours-runserver') / quiet:+.1%} of requests/s")
        floor = get("json, 6 entries", "bare")
        for name in ("ours-runserver", "ours-daphne"):
            if floor:
                print(f"{name} JSON requests/s as a share of the bare ASGI floor: {get('json, 6 entries', name) / floor:.1%}")
        print()
        for label, ok in checks:
            print(f"{'PASS' if ok else 'FAIL'} {label}")
        return all(ok for _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="length of each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="turns per server and workload (default 3)")
    parser.add_argument("--original-python", required=True, help="python of a venv with mockllm==0.0.8 and uvicorn")
    parser.add_argument("--log-level", default="INFO", help="MOCKLLM_LOG_LEVEL for our servers (default INFO)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))  # 1,000 connections need it
    with tempfile.TemporaryDirectory(prefix="mockllm-bench-") as work:
        bench = Bench(args, Path(work))
        started = time.monotonic()
        bench.run()
        ok = bench.report()
        print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
