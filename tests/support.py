"""The one harness for the tests, the benchmarks and the soak script: real server processes on free ports,
their databases and files, the official SDKs and plain HTTP pointed at them, and the services the shared
mode uses. tests/conftest.py turns these into fixtures; scripts import this module as `tests.support`
(with the repository's root on sys.path), so it imports pytest only where a test needs it."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# .ci/run sets this: there, a test that needs PostgreSQL or Redis fails instead of being left out.
REQUIRE_SERVICES = os.environ.get("MOCKLLM_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("MOCKLLM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MOCKLLM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONTROL_TOKEN = "control-token-for-tests-0123456789"
QA_BOT_KEY = "sk-journal-secret-0123456789abcdef"  # the API key of conftest's control_server
# The answer of the default responses file (fixtures/responses.yml) to a prompt it does not know.
DEFAULT_ANSWER = "I don't know the answer to that. This is a mock response."
ADMIN_PASSWORD = "a-long-test-password"
# How long a poll waits for something that normally takes well under a second: long enough for a busy
# 2-core machine, and still far below any fallback (a 30 s polling interval) that a check tells apart.
PATIENCE = 15.0


# --- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until something listens on `port`; fails with the log when `process` exits first or nothing
    listens after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]}... exited with {process.returncode} before listening on "
                               f"port {port}; {log}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} after {timeout:.0f} s; {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def server_argv(port: int, *, daphne: bool = False, uvicorn_workers: int = 0, python: str = sys.executable,
                access_log: bool = True) -> list[str]:
    """The command that serves mockllm on 127.0.0.1:`port`: `manage.py runserver --noreload`, daphne (the
    production command), or the shared deployment's `uvicorn --workers N` (uvicorn_workers=N; 1 for a
    single uvicorn process)."""
    if uvicorn_workers:
        argv = [python, "-m", "uvicorn", "mockllm_site.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                "--lifespan", "off"]
        if uvicorn_workers > 1:
            argv += ["--workers", str(uvicorn_workers)]
        return argv + ([] if access_log else ["--no-access-log"])
    if daphne:
        return [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mockllm_site.asgi:application"]
    return [python, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"]


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=120,
    )


@dataclass
class Server:
    """A server process with its own database and responses file (mockllm unless `start` is given
    another command)."""

    workdir: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen | None = None
    log_path: Path = field(default=Path())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def responses_file(self) -> Path:
        return Path(self.env["MOCKLLM_RESPONSES_FILE"])

    @property
    def sqlite_path(self) -> Path:
        return Path(self.env["DATABASE_URL"].removeprefix("sqlite:///"))

    def manage(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return manage({**self.env, **(env or {})}, *args, check=check)

    def start(self, *, daphne: bool = False, uvicorn_workers: int = 0, argv: list[str] | None = None,
              cwd: Path = ROOT, timeout: float = 30.0) -> Server:
        """Serve with `manage.py runserver --noreload`, with daphne when daphne=True, or with the shared
        deployment's command, `uvicorn --workers N`, when uvicorn_workers=N; or run `argv` ("{port}" in
        it is replaced by the port) in `cwd`. Returns once the port answers."""
        self.port = free_port()
        self.log_path = self.workdir / f"server-{self.port}.log"
        if argv is None:
            argv = server_argv(self.port, daphne=daphne, uvicorn_workers=uvicorn_workers, access_log=False)
        else:
            argv = [part.replace("{port}", str(self.port)) for part in argv]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process, self.log_path, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Stop the server (SIGTERM; SIGKILL after 10 s). wait=False returns at once and leaves the
        waiting to finish_stopping(): a server spends a second or two shutting down (its journal writer
        stores what it was handed), which a fixture's teardown need not sit through."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            if wait:
                _wait_or_kill(self.process)
            else:
                _stopping.append(self.process)

    def log(self) -> str:
        return self.log_path.read_text()

    def log_lines(self) -> list[dict]:
        """The JSON lines of the server's log (one per request, and events such as responses_loaded)."""
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines

    def log_events(self, event: str) -> list[dict]:
        return [line for line in self.log_lines() if line.get("event") == event]


_stopping: list[subprocess.Popen] = []


def _wait_or_kill(process: subprocess.Popen, timeout: float = 10.0) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def finish_stopping() -> None:
    """Wait for the servers stopped with wait=False to exit."""
    while _stopping:
        _wait_or_kill(_stopping.pop())


atexit.register(finish_stopping)


def make_server(workdir: Path, *, database_url: str | None = None, responses: str | None = None, **env: str) -> Server:
    """A migrated, loaded (not yet started) server in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    responses_file = workdir / "responses.yml"
    if responses is None:
        shutil.copy(FIXTURES / "responses.yml", responses_file)
    else:
        responses_file.write_text(responses)
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url or f"sqlite:///{workdir / 'db.sqlite3'}",
        "MOCKLLM_RESPONSES_FILE": str(responses_file),
        "MOCKLLM_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    server = Server(workdir=workdir, env=full_env)
    if database_url is None:
        copy_migrated_sqlite(workdir / "db.sqlite3")
    else:
        server.manage("migrate", "--noinput")
    server.manage("loadresponses", str(responses_file))
    return server


_migrated: list[Path] = []


def copy_migrated_sqlite(target: Path) -> None:
    """A freshly migrated SQLite database at `target`: migrated once per process, then copied (each
    `manage.py migrate` costs a second and a half, and the suite starts dozens of servers)."""
    import sqlite3

    if not _migrated:
        folder = Path(tempfile.mkdtemp(prefix="mockllm-migrated-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "db.sqlite3"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{template}"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        manage(env, "migrate", "--noinput")
        _migrated.append(template)
    with sqlite3.connect(_migrated[0]) as source, sqlite3.connect(target) as copy:
        source.backup(copy)


def create_api_key(srv: Server, name: str, key: str, *, scenario: str = "", active: bool = True) -> None:
    """Store an API key in a server's database, as the admin does (only its hash is kept)."""
    srv.manage("shell", "-c", (
        "from responses_app.models import ApiKey\n"
        f"k = ApiKey(name={name!r}, scenario={scenario!r}, is_active={active!r})\n"
        f"k.set_key({key!r})\n"
        "k.save()\n"
    ))


# --- waiting -------------------------------------------------------------------------------------

def wait_for(check: Callable[[], Any], timeout: float = PATIENCE, every: float = 0.02,
             message: str | Callable[[], str] = "") -> float:
    """Seconds until check() is true; an AssertionError (with `message`) after `timeout` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            detail = message() if callable(message) else message
            raise AssertionError(f"not true after {timeout:g} s" + (f": {detail}" if detail else ""))
        time.sleep(every)
    return time.monotonic() - start


# --- HTTP ----------------------------------------------------------------------------------------

def chat(srv, prompt: str | list, *, headers: dict | None = None, timeout: float = 30, **body):
    """POST /v1/chat/completions with one user message (or the given messages) and `body`'s other fields
    to a server (anything with a `url`), or through Django's test client when `srv` is one."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    payload = {"model": "m", "messages": messages, **body}
    if not hasattr(srv, "url"):  # django.test.Client
        return srv.post("/v1/chat/completions", payload, content_type="application/json", headers=headers or {})
    import httpx

    return httpx.post(f"{srv.url}/v1/chat/completions", json=payload, headers=headers or {}, timeout=timeout)


def text_of(response) -> str:
    """The text of a chat completion that must have succeeded."""
    body = response.content.decode(errors="replace")[:500] if hasattr(response, "content") else ""
    assert response.status_code == 200, f"{response.status_code}: {body}"
    return response.json()["choices"][0]["message"]["content"]


def ask(srv, prompt: str | list, *, headers: dict | None = None, **body) -> str:
    """Ask a server (or Django's test client) a prompt; the answer's text (the request must succeed)."""
    return text_of(chat(srv, prompt, headers=headers, **body))


def control(srv: Server, method: str, path: str, *, token: str | None = CONTROL_TOKEN, **kwargs):
    """A request to a server's control API (/control/...), with its token unless told otherwise."""
    import httpx

    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, f"{srv.url}/control/{path}", headers=headers, timeout=30, **kwargs)


def openai_client(srv: Server, **options):
    """The official openai SDK pointed at a server, strict about response shapes, no retries."""
    import openai

    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key=options.pop("api_key", "sk-test"),
                         max_retries=options.pop("max_retries", 0),
                         _strict_response_validation=options.pop("strict", True), **options)


def anthropic_client(srv: Server, **options):
    """The official anthropic SDK pointed at a server, strict about response shapes, no retries."""
    import anthropic

    return anthropic.Anthropic(base_url=srv.url, api_key=options.pop("api_key", "sk-test"),
                               max_retries=options.pop("max_retries", 0),
                               _strict_response_validation=options.pop("strict", True), **options)


def csrf_token(page) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def admin_session(srv: Server, username: str = "admin", password: str = ADMIN_PASSWORD):
    """A superuser created in the server's database, logged into its admin: an httpx.Client."""
    import httpx

    srv.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.com",
               env={"DJANGO_SUPERUSER_PASSWORD": password})
    client = httpx.Client(base_url=srv.url, timeout=30)
    response = client.post("/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": csrf_token(client.get("/admin/login/")), "username": username, "password": password})
    assert response.status_code == 302, response.text[:500]
    return client


def admin_add(client, prompt: str, answer: str, options: str = "{}"):
    """Add a canned response through the admin's form; the response (302 when saved)."""
    page = client.get("/admin/responses_app/cannedresponse/add/")
    return client.post("/admin/responses_app/cannedresponse/add/", data={
        "csrfmiddlewaretoken": csrf_token(page), "prompt": prompt, "answer": answer, "options": options})


# --- PostgreSQL and Redis ------------------------------------------------------------------------

def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), connect_timeout=3):
            return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except Exception:
        return False


def leave_out_or_fail(missing: str) -> None:
    """A test needs something this machine lacks: under .ci/run (MOCKLLM_REQUIRE_SERVICES=1) that fails
    it; elsewhere it is left out, listed with the reason."""
    import pytest

    if REQUIRE_SERVICES:
        pytest.fail(f"required here (MOCKLLM_REQUIRE_SERVICES=1): {missing}")
    pytest.skip(missing)


@contextlib.contextmanager
def scratch_database(postgres_url: str = POSTGRES_URL):
    """A fresh, empty database on the PostgreSQL server, dropped afterwards; its URL."""
    import uuid

    import psycopg

    name = f"mockllm_test_{uuid.uuid4().hex[:10]}"
    admin_url = postgres_url.replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
