"""Shared-deployment benchmark: the request journal, several server processes, PostgreSQL connection reuse.

Three measurements, side by side in one run, printed as markdown tables (part 1 as two):

1. Journal on vs off: on SQLite and on PostgreSQL, two daphne processes side by side, one with
   MOCKLLM_JOURNAL=1 and one with =0, against the non-streamed chat completion, under two loads, each
   printed as a table of its own, so that "how much CPU does the journal cost at saturation?" and "does
   the journal slow a request?" are answered separately:
   - saturated, `wrk -t1 -c32` (--journal-connections): req/s on and off, the ratio of the medians,
     p99, and the CPU time per request of the server process alone and of the server plus its journal
     writer (the `manage.py journalwriter` child each server process starts and hands batches to over a
     pipe);
   - low load, `wrk -t1 -c1`: one connection, closed loop (the next request leaves when the last
     answer is in), so the latency is that of one request on an otherwise idle server: the p50, p99 and
     req/s on and off, and the ratio of the p50 medians.
   The machine this runs on is noisy (identical runs differ by up to ±30 %), so on and off are measured
   interleaved, on/off then off/on and so on, for --rounds rounds (default 3), each round a saturated
   pair and then a -c1 pair, each run --seconds long; the tables give medians over the rounds (of each
   run's req/s, p50 and p99). Both loads run on the same two server processes, started and warmed once
   per database and kept running from the first run to the last, so no run pays for a cold start. CPU
   is utime+stime from /proc/PID/stat, of the server process and of its children (found by their ppid),
   plus the cutime+cstime of children it reaped (a writer that died and was restarted), from the start
   of the wrk run to the end of the ~1 s wait after it, so that the writer's last batches are counted;
   divided by the requests wrk completed. After each journal-on run the rows in
   responses_app_journalentry (truncated before each run) are compared with the requests wrk completed.
   wrk does not count the requests still in flight when it stops, so up to `connections` more rows
   than requests is expected (at most 1 for -c1); fewer rows means lost journal entries. The journal-off
   runs must write none.
2. Several processes on PostgreSQL, `wrk -t2 -c64`: N daphne instances behind nginx (upstream keepalive,
   HTTP/1.1, no proxy buffering), `uvicorn --workers N --lifespan off` (the shared deployment's
   command), and one daphne and one uvicorn process as baselines; non-streamed and streamed chat
   completions.
3. Connection reuse on PostgreSQL: GET /control/responses?limit=10 and /control/journal?limit=10 on one
   daphne process with MOCKLLM_DB_POOL=0 (a new connection per request), =2 and =8 (psycopg's pool, the
   default size), `wrk -t1 -c16`; requests/s, latency, the sessions PostgreSQL opened for the run
   (pg_stat_database), and the connections to the scratch database (pg_stat_activity) at the peak and
   after the run. The writer child keeps a connection of its own, counted with the server's.
   Persistent connections (MOCKLLM_CONN_MAX_AGE) are no longer measured: the setting is gone. Under
   ASGI each request runs in a thread of its own, so each request left a connection behind; this
   script measured it, with CONN_MAX_AGE=60 under daphne the connections climbed to the scratch role's
   connection limit within seconds and requests then failed with 500.

Everything runs against a scratch PostgreSQL database that the script creates and drops, and a SQLite
file in a temporary directory. Every server runs in its own process group, killed on exit and on Ctrl-C;
the journal writers (in sessions of their own) exit when their server closes the pipe, and any left
after that are killed.

    .venv/bin/python tests/benchmarks/shared.py                       # all three, 10 s per wrk run
    .venv/bin/python tests/benchmarks/shared.py --seconds 3 --only 3  # a quick look at one part
    .venv/bin/python tests/benchmarks/shared.py --only 1 --rounds 5   # part 1 with more rounds
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import FIXTURES, ROOT, free_port, manage, server_argv, tail, wait_for_port  # noqa: E402

FIXTURE = FIXTURES / "responses.yml"
PROMPT = "what is 2+2?"
ANSWER = "2+2 equals 9."
CONTROL_TOKEN = "shared-bench-control-token-0123456789"
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
MONITOR_APP = "mockllm-shared-bench"  # application_name of this script's own PostgreSQL connections
JOURNAL_TABLE = "responses_app_journalentry"
LOG_PROBLEM = re.compile(r'"level": ?"(WARNING|ERROR|CRITICAL)"|Traceback|\bERROR\b|\bCRITICAL\b|\[error\]|\[crit\]|\[emerg\]')


# ---------------------------------------------------------------------------------------------------------
# Child processes: each in its own session (process group), all killed on exit, on Ctrl-C and on SIGTERM.

_children: list[subprocess.Popen] = []
_children_lock = threading.Lock()


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    with _children_lock:
        _children.append(process)
    return process


def stop(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it. Descendants in sessions of their
    own (the journal writers) are given the same time to exit once the server closes their pipe, then
    killed."""
    if process is None:
        return
    family = [(pid, started) for pid in descendants(process.pid)
              if (started := proc_start(pid)) is not None] if process.poll() is None else []
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if pgid is not None:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=timeout)
            if pgid is not None:  # the leader is gone: make sure its workers are too
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + timeout
    for pid, started in family:
        while proc_start(pid) == started and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc_start(pid) == started:  # the same process (not a reused pid), still running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with _children_lock:
        if process in _children:
            _children.remove(process)


def stop_all() -> None:
    with _children_lock:
        remaining = list(_children)
    for process in remaining:
        stop(process, timeout=5)


def _on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------------------------------------------
# /proc: the children of a process and their CPU time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (fields[0] is the state), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses


def proc_start(pid: int) -> int | None:
    """The start time of a live (not zombie) process, to tell it from a later one with the same pid."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields and fields[0] not in ("Z", "X") else None


def children(pid: int) -> list[int]:
    """Child pids: from /proc/PID/task/*/children (every thread's: the journal thread starts the writer)
    where the kernel has them, otherwise from the ppid field of every /proc/*/stat."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    have_children_files = False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(x) for x in f.read().split())
            have_children_files = True
        except OSError:
            continue
    if not have_children_files:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (fields := proc_stat(int(entry))) and int(fields[1]) == pid:
                found.add(int(entry))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    found, pending = [], children(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children(child))
    return found


@dataclass
class CpuSample:
    """CPU ticks (utime+stime) of a server process, of each of its live descendants, and the
    cutime+cstime of the children it has reaped."""
    server: int
    family: dict[int, int]
    reaped: int

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        fields = proc_stat(pid)
        if fields is None:
            raise RuntimeError(f"process {pid} is gone")
        family = {}
        for child in descendants(pid):
            if (child_fields := proc_stat(child)) and child_fields[0] not in ("Z", "X"):
                family[child] = int(child_fields[11]) + int(child_fields[12])
        return cls(int(fields[11]) + int(fields[12]), family, int(fields[13]) + int(fields[14]))

    def since(self, earlier: CpuSample) -> tuple[float, float, bool]:
        """(server seconds, descendants' seconds, whether a descendant exited or started in between).
        A reaped child's whole life is in cutime, so what it had used before `earlier` is taken off."""
        server = self.server - earlier.server
        family = sum(ticks - earlier.family.get(pid, 0) for pid, ticks in self.family.items())
        gone = {pid: ticks for pid, ticks in earlier.family.items() if pid not in self.family}
        family += (self.reaped - earlier.reaped) - sum(gone.values())
        return server / CLOCK_TICKS, family / CLOCK_TICKS, set(self.family) != set(earlier.family)


# ---------------------------------------------------------------------------------------------------------
# HTTP and wrk

def http(url: str, *, body: dict | None = None, headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={**(headers or {}),
                                                              **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def chat_body(stream: bool) -> dict:
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return body


def check_chat(base: str, name: str) -> None:
    """The canned answer, JSON and streamed; retried while a freshly started server is still importing."""
    deadline = time.monotonic() + 60
    while True:
        try:
            status, text = http(f"{base}/v1/chat/completions", body=chat_body(False))
            if status == 200 and ANSWER in text:
                status, text = http(f"{base}/v1/chat/completions", body=chat_body(True))
                if status == 200 and "[DONE]" in text:
                    return
            problem = f"answered {status}: {text[:300]}"
        except OSError as error:
            problem = f"failed: {error}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} {problem}")
        time.sleep(0.5)


def lua_post(path: Path, body: dict) -> Path:
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return path


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non2xx: int = 0
    socket_errors: int = 0
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def wrk(url: str, *, seconds: float, threads: int, connections: int, script: Path | None = None,
        headers: list[str] = (), log: Path | None = None) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _children_lock:
        _children.append(process)
    try:
        out, _ = process.communicate()
    finally:
        stop(process)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{out}\n")
    if process.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed ({process.returncode}): {' '.join(argv)}\n{out}")

    def latency(percent: str) -> float:
        m = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        return float(m.group(1)) * UNITS_MS[m.group(2)] if m else float("nan")

    result = WrkResult(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                       requests=int(re.search(r"(\d+) requests in", out).group(1)),
                       p50_ms=latency("50"), p99_ms=latency("99"), raw=out)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result.non2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result.socket_errors = sum(int(x) for x in m.groups())
    return result


@dataclass
class JournalRun:
    """One run of part 1: wrk's result, the journal rows after 1 s and after up to 6 s, CPU per request."""
    result: WrkResult
    rows: int
    late: int
    server_ms: float  # CPU ms per request, the server process alone
    total_ms: float  # the server and its journal writer
    writer_changed: bool


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL

def pg_connect(url: str, **kwargs):
    import psycopg

    return psycopg.connect(url, autocommit=True, application_name=MONITOR_APP, **kwargs)


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Postgres:
    """A scratch database owned by a scratch role (no superuser, a connection limit), so that a server
    that leaks connections fails on its own role's limit instead of filling the shared server's
    max_connections for everyone else."""

    def __init__(self, admin_url: str, name: str, connection_limit: int | None) -> None:
        self.admin_url = admin_url
        self.name = name  # the database and the role
        parts = urlsplit(admin_url)
        netloc = f"{name}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit((parts.scheme, netloc, f"/{name}", parts.query, parts.fragment))
        self.admin_scratch_url = with_dbname(admin_url, name)  # for counting rows, as the admin user
        self.connection_limit = connection_limit
        self.created = False

    def create(self) -> None:
        with pg_connect(self.admin_url) as conn:
            if self.connection_limit is None:
                max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
                in_use = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
                self.connection_limit = max(10, min(90, max_connections - in_use - 10))
            self.created = True
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')
            conn.execute(f'CREATE ROLE "{self.name}" LOGIN NOSUPERUSER CONNECTION LIMIT {int(self.connection_limit)}')
            conn.execute(f'CREATE DATABASE "{self.name}" OWNER "{self.name}"')
        with pg_connect(self.url, connect_timeout=5):
            pass  # the role can log in (trust, or a matching pg_hba rule)

    def drop(self) -> None:
        if self.created:
            with pg_connect(self.admin_url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')
            self.created = False

    def journal_rows(self) -> int:
        with pg_connect(self.admin_scratch_url) as conn:
            return conn.execute(f"SELECT count(*) FROM {JOURNAL_TABLE}").fetchone()[0]

    def truncate_journal(self) -> None:
        with pg_connect(self.admin_scratch_url) as conn:
            conn.execute(f"TRUNCATE {JOURNAL_TABLE}")

    def connections(self, conn=None) -> int:
        """Server connections to the scratch database (this script's own excluded), counted from the admin database."""
        query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s")
        if conn is not None:
            return conn.execute(query, (self.name, MONITOR_APP)).fetchone()[0]
        with pg_connect(self.admin_url) as own:
            return own.execute(query, (self.name, MONITOR_APP)).fetchone()[0]

    def sessions(self) -> int:
        """Sessions ever opened to the scratch database (PostgreSQL >= 14; updated when backends report stats)."""
        with pg_connect(self.admin_url) as conn:
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.name,)).fetchone()
            return int(row[0] or 0) if row else 0


class ConnectionSampler:
    """Polls pg_stat_activity while a run goes on and keeps the peak."""

    def __init__(self, pg: Postgres, interval: float = 0.25) -> None:
        self.pg, self.interval, self.peak = pg, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with pg_connect(self.pg.admin_url) as conn:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.pg.connections(conn))
                self._stop.wait(self.interval)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def summarize_log_line(line: str) -> str:
    """One log line as `logger: message [exception]`, numbers and times masked, to group alike lines."""
    try:
        record = json.loads(line)
        message = str(record.get("message", "")).splitlines()[0]
        text = f"{record.get('logger', '?')}: {message[:120]}"
        if exc := record.get("exc_info"):
            text += f" [{str(exc).strip().splitlines()[-1][:200]}]"
    except (ValueError, AttributeError, IndexError):
        text = line.strip()[:200]
    return re.sub(r"\b\d+\b", "#", text)


# ---------------------------------------------------------------------------------------------------------
# The servers

@dataclass
class Server:
    """One layout under test: the processes it needs and the port wrk talks to."""
    name: str
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, log_dir: Path) -> None:
        self.args = args
        self.work = work
        self.log_dir = log_dir
        self.pg = Postgres(args.pg_url, f"mockllm_bench_{os.getpid()}", args.pg_connection_limit)
        self.sqlite_url = f"sqlite:///{work / 'bench.sqlite3'}"  # work is absolute: sqlite:////tmp/...
        self.all_logs: list[Path] = []
        self.findings: list[str] = []
        self.tables: list[str] = []
        self.json_lua = lua_post(work / "chat.lua", chat_body(False))
        self.stream_lua = lua_post(work / "chat-stream.lua", chat_body(True))
        self.wrk_log = log_dir / "wrk.log"
        self.counter = 0

    # -- environment and set-up ------------------------------------------------------------------------

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("MOCKLLM_") and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
        env.update({"DATABASE_URL": database_url, "DEBUG": "0", "SECRET_KEY": SECRET_KEY,
                    "MOCKLLM_RESPONSES_FILE": str(FIXTURE), "MOCKLLM_HOT_RELOAD": "0",
                    "MOCKLLM_LOG_LEVEL": self.args.log_level, "MOCKLLM_CONTROL_TOKEN": CONTROL_TOKEN,
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    def prepare(self, database_url: str) -> None:
        env = self.env(database_url)
        for command in (["migrate", "--noinput"], ["loadresponses", str(FIXTURE)]):
            done = manage(env, *command, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"manage.py {' '.join(command)} failed on {database_url}:\n{done.stdout}{done.stderr}")

    def log_path(self, name: str) -> Path:
        self.counter += 1
        path = self.log_dir / f"{self.counter:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.log"
        self.all_logs.append(path)
        return path

    def daphne(self, name: str, env: dict[str, str], port: int | None = None) -> Server:
        port = port or free_port()
        log = self.log_path(name)
        process = spawn(server_argv(port, daphne=True), log=log, env=env)
        server = Server(name, port, [process], [log])
        wait_for_port(port, process, log, timeout=60)
        return server

    def uvicorn(self, name: str, env: dict[str, str], workers: int | None = None) -> Server:
        port = free_port()
        log = self.log_path(name)
        argv = server_argv(port, uvicorn_workers=workers or 1, access_log=False) + ["--log-level", "info"]
        process = spawn(argv, log=log, env=env)
        server = Server(name, port, [process], [log])
        wait_for_port(port, process, log, timeout=60)
        # Workers listen on the parent's socket as soon as they are ready: wait until all of them are,
        # or the first one would take every connection of the run. With --lifespan off there is no
        # "Application startup complete"; each process logs "Started server process" once it has
        # imported the application.
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("Started server process") < (workers or 1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: not every worker started; see {log}:\n{tail(log)}")
            time.sleep(0.2)
        return server

    def nginx_daphnes(self, name: str, env: dict[str, str], count: int) -> Server:
        backends = [self.daphne(f"{name}-daphne{i + 1}", env) for i in range(count)]
        port = free_port()
        folder = self.work / "nginx"
        folder.mkdir(exist_ok=True)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / sub).mkdir(exist_ok=True)
        error_log = self.log_path(f"{name}-nginx-error")
        upstream = "\n".join(f"        server 127.0.0.1:{b.port};" for b in backends)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temporary directory (mode 700)
        conf = folder / "nginx.conf"
        conf.write_text(f"""{user}daemon off;
worker_processes {self.args.nginx_workers};
pid {folder / 'nginx.pid'};
error_log {error_log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder / 'client_body'};
    proxy_temp_path {folder / 'proxy'};
    fastcgi_temp_path {folder / 'fastcgi'};
    uwsgi_temp_path {folder / 'uwsgi'};
    scgi_temp_path {folder / 'scgi'};
    upstream mockllm {{
{upstream}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mockllm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
""")
        log = self.log_path(f"{name}-nginx")
        process = spawn(["nginx", "-p", str(folder), "-c", str(conf)], log=log)
        server = Server(name, port, [b.processes[0] for b in backends] + [process],
                        [path for b in backends for path in b.logs] + [log, error_log])
        try:
            wait_for_port(port, process, log, timeout=60)
        except Exception:
            server.stop()
            raise
        return server

    def warm(self, server: Server, *, wrk_seconds: float = 0) -> None:
        check_chat(server.url, server.name)
        if wrk_seconds:  # every process of the layout builds its index and caches before the measured run
            for script in (self.json_lua, self.stream_lua):
                wrk(f"{server.url}/v1/chat/completions", seconds=wrk_seconds, threads=2, connections=16,
                    script=script, log=self.wrk_log)

    # -- 1. journal on vs off -------------------------------------------------------------------------

    def journal_rows(self, database: str) -> int:
        if database == "PostgreSQL":
            return self.pg.journal_rows()
        with sqlite3.connect(self.sqlite_url.removeprefix("sqlite:///"), timeout=30) as conn:
            return conn.execute(f"SELECT count(*) FROM {JOURNAL_TABLE}").fetchone()[0]

    def truncate_journal(self, database: str) -> None:
        if database == "PostgreSQL":
            self.pg.truncate_journal()
        else:
            conn = sqlite3.connect(self.sqlite_url.removeprefix("sqlite:///"), timeout=30)
            with conn:
                conn.execute(f"DELETE FROM {JOURNAL_TABLE}")
            conn.close()

    def journal_run(self, database: str, server: Server, journal: str, c: int) -> JournalRun:
        """One measured wrk run on a running server: rows written, CPU of the server and of its writer."""
        self.truncate_journal(database)
        before = self.journal_rows(database)
        cpu_before = CpuSample.take(server.processes[0].pid)
        result = wrk(f"{server.url}/v1/chat/completions", seconds=self.args.seconds, threads=1,
                     connections=c, script=self.json_lua, log=self.wrk_log)
        time.sleep(1.0)  # the journal flushes every 0.1 s; the writer inserts what it was handed
        server_s, writer_s, writer_changed = CpuSample.take(server.processes[0].pid).since(cpu_before)
        rows = self.journal_rows(database) - before
        late = rows
        if journal == "1" and rows < result.requests:  # give a slow flush a little longer
            deadline = time.monotonic() + 5
            while late < result.requests and time.monotonic() < deadline:
                time.sleep(0.5)
                late = self.journal_rows(database) - before
        requests = max(result.requests, 1)
        return JournalRun(result, rows, late, server_s * 1000 / requests, (server_s + writer_s) * 1000 / requests,
                          writer_changed)

    def journal(self) -> None:
        c, rounds = self.args.journal_connections, self.args.rounds
        # (key, wrk connections): saturated for the CPU cost, then one connection for a request's latency
        loads = (("saturated", c), ("low", 1))
        print(f"\n## 1. Journal on vs off (one daphne process each, wrk -c{c} and -c1, {rounds} interleaved "
              f"round{'s' if rounds != 1 else ''})", flush=True)
        rows: dict[str, list[str]] = {load: [] for load, _ in loads}
        for database, url in (("SQLite", self.sqlite_url), ("PostgreSQL", self.pg.url)):
            servers: dict[str, Server] = {}
            runs: dict[str, dict[str, list[JournalRun]]] = {load: {"1": [], "0": []} for load, _ in loads}
            try:
                for journal in ("1", "0"):
                    servers[journal] = self.daphne(f"journal-{database}-{'on' if journal == '1' else 'off'}",
                                                   self.env(url, MOCKLLM_JOURNAL=journal))
                for server in servers.values():
                    self.warm(server)
                time.sleep(1.0)  # the warm-up's rows are flushed
                writers = {journal: children(server.processes[0].pid) for journal, server in servers.items()}
                print(f"  {database}: journal writer pids: on {writers['1'] or 'none'}, off {writers['0'] or 'none'}",
                      flush=True)
                if not writers["1"]:
                    self.findings.append(f"{database}: the journal-on server has no journalwriter child after warm-up")
                # The same two processes serve every run of both loads, back to back (only the ~1 s journal
                # check between runs), so they stay warm: imported, index and caches built, connections open.
                for round_ in range(rounds):
                    for load, connections in loads:
                        for journal in (("1", "0") if round_ % 2 == 0 else ("0", "1")):
                            run = self.journal_run(database, servers[journal], journal, connections)
                            runs[load][journal].append(run)
                            result = run.result
                            print(f"  {database:<10} round {round_ + 1} -c{connections:<2} journal "
                                  f"{'on ' if journal == '1' else 'off'}: "
                                  f"{result.rps:8.1f} req/s  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                                  f"errors {result.errors}  wrk requests {result.requests}  journal rows {run.rows}  "
                                  f"CPU ms/req server {run.server_ms:.3f}, +writer {run.total_ms:.3f}", flush=True)
                            if run.writer_changed:
                                self.findings.append(f"{database} round {round_ + 1}, -c{connections}, journal "
                                                     f"{'on' if journal == '1' else 'off'}: a child of the server "
                                                     f"exited or started during the run (a writer restart?)")
                for journal, server in servers.items():
                    if server.processes[0].poll() is not None:
                        self.findings.append(f"{database}: the journal-{journal} server exited during the runs")
            finally:
                for server in servers.values():
                    server.stop()
            rows["saturated"].append(self.journal_row(database, runs["saturated"], c))
            rows["low"].append(self.journal_latency_row(database, runs["low"]))
        plural = "s" if rounds != 1 else ""
        self.tables.append("\n".join([
            f"### 1. Journal on vs off (saturated, wrk -t1 -c{c}) — one daphne process each, -d{self.args.seconds:g}s, "
            f"non-streamed chat completion, {rounds} round{plural} interleaved (medians)",
            "",
            "| database | req/s on | req/s off | on/off | req/s per round, on / off | p99 ms on / off | "
            "CPU ms/req server, on / off | CPU ms/req server+writer, on / off | errors on / off | "
            "journal rows − requests, per on run |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows["saturated"],
        ]))
        self.tables.append("\n".join([
            f"### 1b. Journal on vs off (low load, wrk -t1 -c1: per-request latency) — the same processes, "
            f"-d{self.args.seconds:g}s, non-streamed chat completion, {rounds} round{plural} interleaved "
            f"(medians of the per-round values)",
            "",
            "| database | p50 ms on / off | p50 on/off | p99 ms on / off | req/s on / off | "
            "p50 ms per round, on / off | errors on / off | journal rows − requests, per on run |",
            "|---|---|---|---|---|---|---|---|",
            *rows["low"],
        ]))

    def journal_checks(self, database: str, runs: dict[str, list[JournalRun]], c: int) -> tuple[str, int, int]:
        """The journal rows of each run against wrk's requests, and the wrk errors on / off; adds findings."""
        label = f"{database}, -c{c}"
        extras = []
        for number, run in enumerate(runs["1"], 1):
            extra = run.rows - run.result.requests
            extras.append(f"{extra:+d}" if 0 <= extra <= c else f"**{extra:+d}**")
            if extra > c:
                self.findings.append(f"{label}, on run {number}: {run.rows} journal rows for {run.result.requests} "
                                     f"wrk requests (more than the {c} that can be in flight)")
            elif extra < 0:
                self.findings.append(f"{label}, on run {number}: {run.rows} journal rows for {run.result.requests} "
                                     f"requests wrk completed after 1 s; {run.late} after up to 6 s")
        check = ", ".join(extras) + f" (0 to +{c} expected: in flight when wrk stopped)"
        late = [f"{run.late - run.result.requests:+d}" for run in runs["1"] if run.late != run.rows]
        if late:
            check += f"; after up to 6 s: {', '.join(late)}"
        off_rows = sum(run.rows for run in runs["0"])
        if off_rows:
            check += f"; journal off still wrote {off_rows} rows"
            self.findings.append(f"{label}: MOCKLLM_JOURNAL=0 still wrote {off_rows} journal rows")
        errors_on = sum(run.result.errors for run in runs["1"])
        errors_off = sum(run.result.errors for run in runs["0"])
        for journal, errors in (("on", errors_on), ("off", errors_off)):
            if errors:
                self.findings.append(f"{label}, journal {journal}: {errors} wrk errors (non-2xx or socket) "
                                     f"over the rounds")
        return check, errors_on, errors_off

    @staticmethod
    def run_median(runs: dict[str, list[JournalRun]], journal: str, value) -> float:
        return statistics.median(value(run) for run in runs[journal])

    def journal_row(self, database: str, runs: dict[str, list[JournalRun]], c: int) -> str:
        def median(journal: str, value) -> float:
            return self.run_median(runs, journal, value)

        check, errors_on, errors_off = self.journal_checks(database, runs, c)
        rps_on, rps_off = median("1", lambda r: r.result.rps), median("0", lambda r: r.result.rps)
        per_round = (" ".join(f"{run.result.rps:.0f}" for run in runs["1"]) + " / "
                     + " ".join(f"{run.result.rps:.0f}" for run in runs["0"]))
        return (f"| {database} | {rps_on:.0f} | {rps_off:.0f} | {rps_on / rps_off:.2f} | {per_round} | "
                f"{median('1', lambda r: r.result.p99_ms):.2f} / {median('0', lambda r: r.result.p99_ms):.2f} | "
                f"{median('1', lambda r: r.server_ms):.3f} / {median('0', lambda r: r.server_ms):.3f} | "
                f"{median('1', lambda r: r.total_ms):.3f} / {median('0', lambda r: r.total_ms):.3f} | "
                f"{errors_on} / {errors_off} | {check} |")

    def journal_latency_row(self, database: str, runs: dict[str, list[JournalRun]]) -> str:
        """A row of the -c1 table: medians of the per-round p50, p99 and req/s, on / off."""
        def median(journal: str, value) -> float:
            return self.run_median(runs, journal, value)

        check, errors_on, errors_off = self.journal_checks(database, runs, 1)
        p50_on, p50_off = median("1", lambda r: r.result.p50_ms), median("0", lambda r: r.result.p50_ms)
        ratio = f"{p50_on / p50_off:.2f}" if p50_off > 0 else "n/a"
        per_round = (" ".join(f"{run.result.p50_ms:.2f}" for run in runs["1"]) + " / "
                     + " ".join(f"{run.result.p50_ms:.2f}" for run in runs["0"]))
        return (f"| {database} | {p50_on:.2f} / {p50_off:.2f} | {ratio} | "
                f"{median('1', lambda r: r.result.p99_ms):.2f} / {median('0', lambda r: r.result.p99_ms):.2f} | "
                f"{median('1', lambda r: r.result.rps):.0f} / {median('0', lambda r: r.result.rps):.0f} | "
                f"{per_round} | {errors_on} / {errors_off} | {check} |")

    # -- 2. several processes -------------------------------------------------------------------------

    def processes(self) -> None:
        n = self.args.processes
        print(f"\n## 2. Several processes on PostgreSQL (N={n})", flush=True)
        env = self.env(self.pg.url)
        layouts = [
            (f"{n} × daphne behind nginx", n, lambda: self.nginx_daphnes("nginx-daphne", env, n)),
            (f"uvicorn --workers {n}", n, lambda: self.uvicorn("uvicorn-workers", env, n)),
            ("1 × daphne (baseline)", 1, lambda: self.daphne("daphne-single", env)),
            ("1 × uvicorn (baseline)", 1, lambda: self.uvicorn("uvicorn-single", env)),
        ]
        rows = []
        for label, count, start in layouts:
            server = start()
            try:
                self.warm(server, wrk_seconds=self.args.warmup)
                measured: dict[str, WrkResult] = {}
                for kind, script in (("json", self.json_lua), ("stream", self.stream_lua)):
                    measured[kind] = result = wrk(f"{server.url}/v1/chat/completions", seconds=self.args.seconds,
                                                  threads=2, connections=64, script=script, log=self.wrk_log)
                    print(f"  {label:<28} {kind:<6} {result.rps:8.1f} req/s  p50 {result.p50_ms:.2f} ms  "
                          f"p99 {result.p99_ms:.2f} ms  errors {result.errors}", flush=True)
                    if result.errors:
                        self.findings.append(f"{label}, {kind}: {result.non2xx} non-2xx responses and "
                                             f"{result.socket_errors} socket errors in wrk")
                exited = [p for p in server.processes if p.poll() is not None]
                if exited:
                    self.findings.append(f"{label}: a process exited during the run: {[p.args[:4] for p in exited]}")
            finally:
                server.stop()
            j, s = measured["json"], measured["stream"]
            rows.append(f"| {label} | {count} | {j.rps:.0f} | {j.p50_ms:.2f} | {j.p99_ms:.2f} | "
                        f"{s.rps:.0f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {j.errors} / {s.errors} |")
        self.tables.append("\n".join([
            f"### 2. Several processes on PostgreSQL — wrk -t2 -c64 -d{self.args.seconds:g}s, chat completion "
            "(journal on, the default)",
            "",
            "| layout | processes | JSON req/s | JSON p50 ms | JSON p99 ms | stream req/s | stream p50 ms | "
            "stream p99 ms | errors JSON / stream |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]))

    # -- 3. connection reuse --------------------------------------------------------------------------

    def connection_reuse(self) -> None:
        print("\n## 3. Connection reuse on PostgreSQL (one daphne process, control API)", flush=True)
        c = self.args.control_connections
        # CONN_MAX_AGE (persistent connections) is gone: it leaked a connection per request under ASGI.
        configs = [(f"DB_POOL={size}" + (" (no pool)" if size == 0 else " (default)" if size == 8 else ""),
                    {"MOCKLLM_DB_POOL": str(size)}) for size in self.args.pools]
        auth = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
        rows = []
        for label, extra in configs:
            server = self.daphne(f"conn-{label.split()[0]}", self.env(self.pg.url, **extra))
            try:
                self.warm(server)
                for path in ("/control/responses?limit=10", "/control/journal?limit=10"):
                    status, text = http(server.url + path, headers=auth)
                    if status != 200:
                        raise RuntimeError(f"{label}: GET {path} answered {status}: {text[:300]}")
                time.sleep(1.0)
                idle = self.pg.connections()
                print(f"  {label}: {idle} connections to the scratch database before the runs", flush=True)
                for path in ("/control/responses?limit=10", "/control/journal?limit=10"):
                    sessions_before = self.pg.sessions()
                    with ConnectionSampler(self.pg) as sampler:
                        result = wrk(server.url + path, seconds=self.args.seconds, threads=1, connections=c,
                                     headers=[f"Authorization: Bearer {CONTROL_TOKEN}"], log=self.wrk_log)
                    time.sleep(1.5)  # backends report their session counts; short-lived ones have closed
                    after = self.pg.connections()
                    opened = self.pg.sessions() - sessions_before
                    print(f"  {label:<20} {path:<28} {result.rps:8.1f} req/s  p50 {result.p50_ms:.2f} ms  "
                          f"p99 {result.p99_ms:.2f} ms  errors {result.errors}  sessions opened ~{opened}  "
                          f"connections peak {sampler.peak} / after {after}", flush=True)
                    if result.errors:
                        self.findings.append(f"{label} {path}: {result.non2xx} non-2xx responses and "
                                             f"{result.socket_errors} socket errors in wrk")
                    rows.append(f"| {label} | `{path}` | {result.rps:.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | "
                                f"{result.errors} | ~{opened} | {idle} | {sampler.peak} | {after} |")
                    idle = after
            finally:
                server.stop()
        self.tables.append("\n".join([
            f"### 3. Connection reuse on PostgreSQL — one daphne process, wrk -t1 -c{c} -d{self.args.seconds:g}s, "
            f"control API (the servers' role may open {self.pg.connection_limit} connections)",
            "",
            "| setting | endpoint | req/s | p50 ms | p99 ms | errors | PG sessions opened during run | "
            "connections before | connections peak | connections after (+1.5 s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]))

    # -- logs -----------------------------------------------------------------------------------------

    def scan_logs(self) -> list[str]:
        notes = []
        for path in self.all_logs:
            if not path.exists():
                continue
            problems = [line for line in path.read_text(errors="replace").splitlines() if LOG_PROBLEM.search(line)]
            if problems:
                distinct: dict[str, int] = {}
                for line in problems:
                    key = summarize_log_line(line)
                    distinct[key] = distinct.get(key, 0) + 1
                samples = "; ".join(f"{count}× {key}" for key, count in
                                    sorted(distinct.items(), key=lambda kv: -kv[1])[:4])
                notes.append(f"{path.name}: {len(problems)} warning/error lines — {samples}")
        return notes

    def run(self) -> None:
        only = set(self.args.only)
        self.pg.create()  # every part uses PostgreSQL
        print(f"scratch database and role {self.pg.name} (connection limit {self.pg.connection_limit}), "
              f"logs in {self.log_dir}", flush=True)
        self.prepare(self.pg.url)
        if 1 in only:
            self.prepare(self.sqlite_url)
            self.journal()
        if 2 in only:
            self.processes()
        if 3 in only:
            self.connection_reuse()


def check_tools(args: argparse.Namespace) -> str | None:
    if not shutil.which("wrk"):
        return "wrk is not installed. Install it with: apt-get install -y wrk"
    if 2 in args.only and not shutil.which("nginx"):
        return "nginx is not installed (needed for part 2). Install it with: apt-get install -y nginx"
    for module in ("daphne", "uvicorn", "psycopg", "psycopg_pool"):
        try:
            __import__(module)
        except ImportError:
            return (f"the Python module {module!r} is missing from {sys.executable}: run this script with the "
                    f"project's virtualenv (.venv/bin/python) after `pip install -r requirements.txt uvicorn[standard]`")
    try:
        with pg_connect(args.pg_url, connect_timeout=5):
            pass
    except Exception as error:  # noqa: BLE001 - any failure to connect is reported the same way
        return f"cannot connect to PostgreSQL at {args.pg_url}: {error}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured wrk run (default 10)")
    parser.add_argument("--processes", type=int, default=2, help="server processes in part 2 (default 2)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test"),
                        help="an existing PostgreSQL database to connect to for creating and dropping the scratch "
                             "database (default postgres://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--only", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3],
                        help="the parts to run, e.g. 1,3 (default 1,2,3)")
    parser.add_argument("--journal-connections", type=int, default=32, help="wrk connections of part 1's saturated runs "
                        "(default 32; its low-load runs use 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved on/off rounds per database in part 1 "
                                                               "(default 3)")
    parser.add_argument("--control-connections", type=int, default=16, help="wrk connections in part 3 (default 16)")
    parser.add_argument("--pools", type=lambda s: [int(x) for x in s.split(",")], default=[0, 2, 8],
                        help="MOCKLLM_DB_POOL sizes compared in part 3, 0 for a connection per request "
                             "(default 0,2,8)")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured wrk seconds per workload before part 2's "
                                                                "runs (default 2)")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes in part 2 (default 1)")
    parser.add_argument("--log-level", default="INFO", help="MOCKLLM_LOG_LEVEL for the servers (default INFO)")
    parser.add_argument("--log-dir", help="keep the server, nginx and wrk logs in this directory (default: a "
                                          "temporary directory, removed at the end)")
    parser.add_argument("--pg-connection-limit", type=int, help="CONNECTION LIMIT of the scratch role the servers "
                        "connect as (default: max_connections - connections in use - 10, at most 90)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch PostgreSQL database")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if problem := check_tools(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mockllm-shared-") as tmp:
        work = Path(tmp)
        log_dir = Path(args.log_dir).resolve() if args.log_dir else work / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, work, log_dir)
        failed = None
        try:
            bench.run()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            failed = 130
        except Exception as error:  # noqa: BLE001 - report, clean up, then fail
            print(f"\nerror: {error}", file=sys.stderr)
            failed = 1
        finally:
            stop_all()
            if not args.keep_db:
                try:
                    bench.pg.drop()
                except Exception as error:  # noqa: BLE001
                    print(f"could not drop the scratch database {bench.pg.name}: {error}", file=sys.stderr)
        print()
        for table in bench.tables:
            print(table + "\n")
        log_notes = bench.scan_logs()
        if bench.findings or log_notes:
            print("### Findings\n")
            for note in bench.findings + log_notes:
                print(f"- {note}")
            print()
        else:
            print("No journal mismatch, wrk error or warning/error line in the server logs.\n")
        print(f"(took {time.monotonic() - started:.0f} s; {sys.executable} {' '.join(sys.argv)})")
    return failed or 0


if __name__ == "__main__":
    sys.exit(main())
