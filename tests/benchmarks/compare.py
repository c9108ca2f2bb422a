"""Side-by-side benchmark: mockllm against the fastest peer (aimock), the original mockllm==0.0.8 and a
bare ASGI app under uvicorn and under daphne (the floors of Python on this machine).

Run it with `make bench` (which installs wrk, the original's virtual environment .bench/ and aimock,
pinned, in .bench/aimock). Servers, all on loopback:
- ours under `manage.py runserver --noreload` (daphne), under uvicorn (one process) and under
  `uvicorn --workers 2`, with the defaults on: the access log (INFO) and the journal;
- aimock (@copilotkit/aimock, Node, one process) with a fixture for the same six answers, streaming one
  character per event (`--chunk-size 1`) as ours does;
- the original mockllm==0.0.8 under uvicorn;
- a bare ASGI app (a fixed JSON body; a stream of as many events, one send each) under uvicorn and
  under daphne.
wrk -t1 -c32 drives every server with the same load, taking turns (A B C ... A B C ...) so that drift
and other work on the machine hit all alike; the table shows medians over the rounds, and the ratios
the targets name are taken within one run. Then: 10,000 and 100,000 entries against 6 (taking turns),
1,000 concurrent streams, paced streams, memory, and what 1,000 regex and 1,000 `contains` entries cost.

    python tests/benchmarks/compare.py --original-python .bench/bin/python [--quick] [--only main,entries]

Sections (--only): main, entries, concurrency, pacing, memory, patterns. --servers limits the main
table's servers (names as in the table). --quick: 2 s runs, 2 rounds, 100 paced streams.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.benchmarks import pacing  # noqa: E402
from tests.support import ROOT, Server, chat, make_server  # noqa: E402

SKY = "what colour is the sky?"
SKY_ANSWER = "The sky is blue during a clear day due to a phenomenon called Rayleigh scattering."
UNKNOWN = "a prompt that no entry matches"
SEED_ENTRIES = [
    (SKY, SKY_ANSWER),
    ("what is 2+2?", "2+2 equals 9."),
    ("tell me a joke", "Why did the mock server cross the road? To return the same answer every time."),
    ("hello", "Hello! I am a mock LLM."),
    ("what is the capital of france?", "The capital of France is Paris."),
    ("summarize this", "This is a deterministic summary from mockllm."),
]
AIMOCK_CLI = ROOT / ".bench/aimock/node_modules/@copilotkit/aimock/dist/cli.js"
# The bare app answers JSON with one body, and a stream with the sky answer's events, one send each
# (the role event, one per character, the finish event and [DONE]: 85, as ours and aimock's).
BARE_APP = f"ANSWER = {SKY_ANSWER!r}\n" + '''
HEAD = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"mock-llm","choices":[{"index":0,'
TAIL = b',"logprobs":null,"finish_reason":null}]}\\n\\n'
EVENTS = ([HEAD + b'"delta":{"role":"assistant","content":""}' + TAIL]
          + [HEAD + b'"delta":{"content":"' + c.encode() + b'"}' + TAIL for c in ANSWER]
          + [HEAD + b'"delta":{}' + TAIL, b"data: [DONE]\\n\\n"])
BODY = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"' + ANSWER.encode() + b'"}}]}'

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if b'"stream": true' in body:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
'''
MAIN_SERVERS = ["ours-runserver", "ours-uvicorn", "ours-uvicorn-2w", "aimock", "original", "bare-uvicorn", "bare-daphne"]
SECTIONS = ["main", "entries", "concurrency", "pacing", "memory", "patterns"]


def responses_text(count: int, *, regexes: int = 0, contains: int = 0) -> str:
    """The six answers, `count` entries in all (the rest generated: the mapping form, quick to load),
    or with regex and contains entries added (the list form, which they need)."""
    if not (regexes or contains):
        lines = ["responses:"] + [f"  {json.dumps(p)}: {json.dumps(a)}" for p, a in SEED_ENTRIES]
        lines += [f'  "generated prompt number {i}": "generated answer number {i}"' for i in range(count - len(SEED_ENTRIES))]
        return "\n".join(lines) + '\ndefaults:\n  unknown_response: "I do not know."\n'
    lines = ["responses:"] + [f"  - match: {json.dumps(p)}\n    response: {json.dumps(a)}" for p, a in SEED_ENTRIES]
    lines += [f'  - match: {{regex: "^asked about pattern {i} [a-z]+$"}}\n    response: "pattern {i}"' for i in range(regexes)]
    lines += [f'  - match: {{contains: "needle number {i}."}}\n    response: "needle {i}"' for i in range(contains)]
    return "\n".join(lines) + '\ndefaults:\n  unknown_response: "I do not know."\n'


@dataclass
class Contender:
    """A server in the comparison: ours (runserver, or uvicorn with N workers) or another command
    (`argv`, "{port}" in it replaced by the port) run in `cwd`."""
    name: str
    server: Server
    uvicorn_workers: int = 0
    argv: list[str] | None = None
    cwd: Path = ROOT

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Contender:
        self.server.start(uvicorn_workers=self.uvicorn_workers, argv=self.argv, cwd=self.cwd, timeout=120)
        return self

    def warm(self, prompt: str = SKY, expect: str = "Rayleigh") -> None:
        """First requests build indexes and caches; check the answer is the canned one (several times:
        with --workers 2 each process warms)."""
        for stream in (False, True) * 4:
            reply = chat(self.server, prompt, model="mock-llm", stream=stream, timeout=120)
            if reply.status_code != 200 or (not stream and expect not in reply.text and not self.name.startswith("bare")):
                raise RuntimeError(f"{self.name} answered {reply.status_code}: {reply.text[:200]}")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.server.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def stop(self) -> None:
        self.server.stop()


def wrk(url: str, script: Path, *, seconds: float, connections: int, threads: int = 1) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s", str(script)]
    out = subprocess.run(argv + [f"{url}/v1/chat/completions"], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "errors": 0}
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] += sum(int(x) for x in m.groups())
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
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
        self.scripts = {"json": lua(work / "json.lua", False), "stream": lua(work / "stream.lua", True)}

    # -- the servers ------------------------------------------------------------------------------
    def ours(self, name: str, count: int = 6, workers: int = 0, responses: str | None = None) -> Contender:
        folder = self.work / name
        server = make_server(folder, responses=responses or responses_text(count), DEBUG="0",
                             SECRET_KEY="benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
                             MOCKLLM_LOG_LEVEL=self.args.log_level, MOCKLLM_HOT_RELOAD="0",
                             PYTHONUNBUFFERED="")  # the log is written as users' servers write it: buffered
        return Contender(name, server, uvicorn_workers=workers)

    def original(self) -> Contender:
        folder = self.work / "original"
        folder.mkdir(exist_ok=True)
        (folder / "responses.yml").write_text(responses_text(6))
        env = {**os.environ, "MOCKLLM_RESPONSES_FILE": str(folder / "responses.yml")}
        argv = [self.args.original_python, "-m", "uvicorn", "mockllm.server:app", "--host", "127.0.0.1",
                "--port", "{port}", "--log-level", "warning"]
        return Contender("original", Server(folder, env), argv=argv, cwd=folder)

    def aimock(self) -> Contender:
        folder = self.work / "aimock"
        folder.mkdir(exist_ok=True)
        fixtures = [{"match": {"userMessage": p}, "response": {"content": a}} for p, a in SEED_ENTRIES]
        (folder / "fixtures.json").write_text(json.dumps({"fixtures": fixtures}))
        argv = ["node", str(self.args.aimock), "-p", "{port}", "-h", "127.0.0.1", "-f", str(folder / "fixtures.json"),
                "--chunk-size", "1", "--log-level", "silent"]
        return Contender("aimock", Server(folder, dict(os.environ)), argv=argv, cwd=folder)

    def bare(self, under: str) -> Contender:
        (self.work / "bare_app.py").write_text(BARE_APP)
        if under == "uvicorn":
            argv = [self.args.original_python, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", "{port}",
                    "--log-level", "warning", "--no-access-log"]
        else:
            argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "bare_app:app"]
        return Contender(f"bare-{under}", Server(self.work, dict(os.environ)), argv=argv, cwd=self.work)

    def contender(self, name: str) -> Contender | None:
        if name == "aimock" and not (shutil.which("node") and Path(self.args.aimock).exists()):
            print(f"aimock is not installed at {self.args.aimock} (make bench installs it): left out", flush=True)
            return None
        return {"ours-runserver": lambda: self.ours(name), "ours-uvicorn": lambda: self.ours(name, workers=1),
                "ours-uvicorn-2w": lambda: self.ours(name, workers=2), "aimock": self.aimock,
                "original": self.original, "bare-uvicorn": lambda: self.bare("uvicorn"),
                "bare-daphne": lambda: self.bare("daphne")}[name]()

    # -- measuring --------------------------------------------------------------------------------
    def rounds(self, servers: list[Contender], workloads: dict[str, Path], label: str = "6 entries") -> None:
        """Every workload on every server, in turns, `rounds` times; record requests/s."""
        for server in servers:
            server.warm()
        for round_number in range(self.args.rounds):
            for workload, script in workloads.items():
                for server in servers:
                    result = wrk(server.url, script, seconds=self.args.seconds, connections=32)
                    self.results.setdefault((f"{workload}, {label}", server.name), []).append(result["rps"])
                    print(f"  round {round_number + 1}: {workload:<7} {label:<16} {server.name:<18}"
                          f" {result['rps']:9.1f}/s  errors {result['errors']}", flush=True)

    @staticmethod
    @contextlib.contextmanager
    def serving(servers: list[Contender | None]) -> Iterator[list[Contender]]:
        """Start the servers (None: left out), stop them afterwards."""
        started: list[Contender] = []
        try:
            for server in servers:
                if server is not None:
                    started.append(server.start())
            yield started
        finally:
            for server in started:
                server.stop()

    def main(self) -> None:
        print("# 6 entries, every server", flush=True)
        names = self.args.servers or MAIN_SERVERS
        with self.serving([self.contender(name) for name in names]) as servers:
            self.rounds(servers, self.scripts)

    def entries(self) -> None:
        """Ours under uvicorn with 6, 10,000 and 100,000 entries, taking turns."""
        print("# entries: 6, 10,000, 100,000 (ours, uvicorn)", flush=True)
        counts = (6, 10_000, 100_000)
        with self.serving([self.ours(f"entries-{n}", n, workers=1) for n in counts]) as servers:
            for server in servers:
                server.warm()
            for round_number in range(self.args.rounds):
                for workload, script in self.scripts.items():
                    for count, server in zip(counts, servers, strict=True):
                        result = wrk(server.url, script, seconds=self.args.seconds, connections=32)
                        self.results.setdefault((f"{workload}, {count} entries", "ours-uvicorn"), []).append(result["rps"])
                        print(f"  round {round_number + 1}: {workload:<7} {count:>6} entries {result['rps']:9.1f}/s", flush=True)
            self.notes["rss_entries"] = {count: server.rss_mb() for count, server in zip(counts, servers, strict=True)}

    def concurrency(self) -> None:
        """1,000 clients streaming at once: every stream must complete."""
        for name, workers in (("ours-runserver", 0), ("ours-uvicorn", 1)):
            with self.serving([self.ours(f"concurrent-{name}", workers=workers)]) as (server,):
                server.warm()
                result = wrk(server.url, self.scripts["stream"], seconds=max(self.args.seconds * 2, 5), connections=1000,
                             threads=2)
                self.notes[f"concurrent_{name}"] = result
                print(f"  1000 concurrent streams on {name}: {result.get('requests', 0)} streams completed, "
                      f"{result['errors']} errors", flush=True)

    def pacing(self) -> None:
        """Paced streams (500 characters at 50 chunks/s, 10 s configured) alone and many at once."""
        levels = (1, 100) if self.args.quick else (1, 100, 1000)
        expected = len(pacing.ANSWER) / 50
        with self.serving([self.ours("paced", workers=1, responses=f"responses:\n  paced: {json.dumps(pacing.ANSWER)}\n")
                           ]) as (server,):
            server.warm("paced", expect="Paced answers")  # unpaced (no X-Mock-Timing): the first request's setup
            for concurrency in levels:
                results = asyncio.run(pacing.run(server.server.port, concurrency, "chunks_per_second=50"))
                complete = sum(1 for _, chunks in results if chunks == len(pacing.ANSWER))
                median = statistics.median(elapsed for elapsed, _ in results)
                self.notes[f"paced_{concurrency}"] = (complete, median, (median - expected) / expected)
                print(f"  {concurrency} paced streams: {complete}/{concurrency} complete, median {median:.2f} s "
                      f"({(median - expected) / expected:+.1%} of {expected:.0f} s)", flush=True)

    def memory(self) -> None:
        """Resident memory of one process serving 6 and 100,000 entries, after some requests."""
        for count in (6, 100_000):
            with self.serving([self.ours(f"memory-{count}", count, workers=1)]) as (server,):
                server.warm()
                wrk(server.url, self.scripts["json"], seconds=2, connections=32)
                self.notes[f"rss_{count}"] = server.rss_mb()
                print(f"  resident memory with {count} entries: {self.notes[f'rss_{count}']:.0f} MB", flush=True)

    def patterns(self) -> None:
        """A prompt that no entry matches (the default answers) with 6 entries, and with 1,000 regex or
        1,000 contains entries more, which it is checked against; taking turns."""
        print("# 1,000 regex / contains entries (ours, uvicorn, a prompt none matches)", flush=True)
        sets = {"6 entries": responses_text(6), "+1000 regex": responses_text(6, regexes=1000),
                "+1000 contains": responses_text(6, contains=1000)}
        script = lua(self.work / "unknown.lua", False, UNKNOWN)
        servers = [self.ours(f"patterns-{i}", workers=1, responses=text) for i, text in enumerate(sets.values())]
        with self.serving(servers) as started:
            for server in started:
                server.warm(UNKNOWN, expect="I do not know.")
            for _ in range(self.args.rounds):
                for label, server in zip(sets, started, strict=True):
                    self.results.setdefault((f"unmatched json, {label}", "ours-uvicorn"), []).append(
                        wrk(server.url, script, seconds=self.args.seconds, connections=32)["rps"])
            for label in sets:
                print(f"  {label}: {statistics.median(self.results[(f'unmatched json, {label}', 'ours-uvicorn')]):.0f}/s",
                      flush=True)

    # -- the report -------------------------------------------------------------------------------
    def report(self) -> bool:
        median = {key: statistics.median(values) for key, values in self.results.items()}

        def get(workload: str, name: str) -> float:
            return median.get((workload, name), 0.0)

        main = [n for n in (self.args.servers or MAIN_SERVERS) if any(n == name for _, name in median)]
        if main:
            print("\n| server | JSON req/s | streams/s |\n|---|---|---|")
            for name in main:
                print(f"| {name} | {get('json, 6 entries', name):.0f} | {get('stream, 6 entries', name):.0f} |")
        checks: list[tuple[str, float | bool | None, float | None]] = []  # (label, ratio or yes/no, target)

        def ratio(a: tuple[str, str], b: tuple[str, str]) -> float | None:
            return get(*a) / get(*b) if get(*a) and get(*b) else None

        for label, ours, floor, workload, target in (
            ("ours-uvicorn JSON / bare-uvicorn JSON", "ours-uvicorn", "bare-uvicorn", "json", 0.75),
            ("ours-uvicorn streams / aimock streams", "ours-uvicorn", "aimock", "stream", 1.0),
            ("ours-runserver JSON / bare-daphne JSON", "ours-runserver", "bare-daphne", "json", 0.75),
            ("ours-uvicorn-2w JSON / aimock JSON", "ours-uvicorn-2w", "aimock", "json", 1.0),
            ("ours-uvicorn-2w streams / aimock streams", "ours-uvicorn-2w", "aimock", "stream", 1.0),
        ):
            if "main" in self.sections:
                checks.append((label, ratio((f"{workload}, 6 entries", ours), (f"{workload}, 6 entries", floor)), target))
        if "main" in self.sections and get("json, 6 entries", "original"):
            for name in ("ours-runserver", "ours-uvicorn"):
                for workload in ("json", "stream"):
                    r = ratio((f"{workload}, 6 entries", name), (f"{workload}, 6 entries", "original"))
                    print(f"{name} / original, {workload}: {r:.1f}x" if r else f"{name} / original, {workload}: n/a")
        if "entries" in self.sections:
            for count in (10_000, 100_000):
                for workload in ("json", "stream"):
                    checks.append((f"{workload}, {count:,} entries / 6 entries (uvicorn)",
                                   ratio((f"{workload}, {count} entries", "ours-uvicorn"),
                                         (f"{workload}, 6 entries", "ours-uvicorn")), 0.9))
            print("resident memory (uvicorn, after the runs): " + ", ".join(
                f"{n:,} entries {mb:.0f} MB" for n, mb in self.notes["rss_entries"].items()))
        if "concurrency" in self.sections:
            for name in ("ours-runserver", "ours-uvicorn"):
                result = self.notes[f"concurrent_{name}"]
                checks.append((f"{name}: 1,000 concurrent streams, zero errors ({result.get('requests', 0)} completed,"
                               f" {result['errors']} errors)", result["errors"] == 0 and bool(result.get("requests")), None))
        if "pacing" in self.sections:
            for key, (complete, seconds, error) in ((k, v) for k, v in self.notes.items() if k.startswith("paced_")):
                concurrency = int(key.split("_")[1])
                allowed = 0.10 if concurrency >= 1000 else 0.05
                checks.append((f"{concurrency} paced streams all complete, median within {allowed:.0%} of the pace "
                               f"({seconds:.2f} s, {error:+.1%})",
                               complete == concurrency and abs(error) <= allowed, None))
        if "memory" in self.sections:
            checks.append((f"resident memory at 100,000 entries < 250 MB ({self.notes['rss_100000']:.0f} MB; "
                           f"6 entries: {self.notes['rss_6']:.0f} MB)", self.notes["rss_100000"] < 250, None))
        if "patterns" in self.sections:
            base = get("unmatched json, 6 entries", "ours-uvicorn")
            for label in ("+1000 regex", "+1000 contains"):
                value = get(f"unmatched json, {label}", "ours-uvicorn")
                print(f"cost of {label[1:]} entries for a prompt checked against all of them: "
                      f"{value:.0f}/s against {base:.0f}/s ({value / base - 1:+.0%})" if base else "")
        print()
        ok = True
        for label, value, target in checks:
            if target is None:  # a yes-or-no check
                passed, shown = bool(value), ""
            else:
                passed = value is not None and value >= target
                shown = ": not measured" if value is None else f": {value:.2f}x (target {target:g}x)"
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'} {label}{shown}")
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4, help="length of each wrk run (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="turns per server and workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 s runs, 2 rounds, paced streams up to 100")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--servers", type=lambda s: s.split(","), help=f"main table servers: {','.join(MAIN_SERVERS)}")
    parser.add_argument("--original-python", required=True, help="python of a venv with mockllm==0.0.8 and uvicorn")
    parser.add_argument("--aimock", default=str(AIMOCK_CLI), help="aimock's dist/cli.js (make bench installs it)")
    parser.add_argument("--log-level", default="INFO", help="MOCKLLM_LOG_LEVEL for our servers (default INFO)")
    args = parser.parse_args()
    args.original_python, args.aimock = str(Path(args.original_python).absolute()), str(Path(args.aimock).absolute())
    if args.quick:
        args.seconds, args.rounds = min(args.seconds, 2), min(args.rounds, 2)
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))  # 1,000 connections need it
    with tempfile.TemporaryDirectory(prefix="mockllm-bench-") as work:
        bench = Bench(args, Path(work))
        bench.sections = [s for s in args.only.split(",") if s]
        started = time.monotonic()
        for section in bench.sections:
            getattr(bench, section)()
        ok = bench.report()
        print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
