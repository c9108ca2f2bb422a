"""Shared fixtures: real server processes on free ports, and the services the shared mode uses."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# .ci/run sets this: there, a test that needs PostgreSQL fails instead of being left out.
REQUIRE_SERVICES = os.environ.get("MOCKLLM_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("MOCKLLM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MOCKLLM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONTROL_TOKEN = "control-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=120,
    )


@dataclass
class Server:
    """A mockllm server process with its own database and responses file."""

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

    def manage(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return manage({**self.env, **(env or {})}, *args, check=check)

    def start(self, *, daphne: bool = False, uvicorn_workers: int = 0) -> "Server":
        """Serve with `manage.py runserver --noreload`, with daphne when daphne=True, or with the shared
        deployment's command, `uvicorn --workers N`, when uvicorn_workers=N."""
        self.port = free_port()
        self.log_path = self.workdir / f"server-{self.port}.log"
        if uvicorn_workers:
            argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port),
                    "--workers", str(uvicorn_workers), "--no-access-log", "--lifespan", "off",
                    "mockllm_site.asgi:application"]
        elif daphne:
            argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "mockllm_site.asgi:application"]
        else:
            argv = [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{self.port}"]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()


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
    """A freshly migrated SQLite database at `target`: migrated once per test session, then copied
    (each `manage.py migrate` costs a second and a half, and the suite starts dozens of servers)."""
    import sqlite3
    import tempfile

    if not _migrated:
        template = Path(tempfile.mkdtemp(prefix="mockllm-migrated-")) / "db.sqlite3"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{template}"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        manage(env, "migrate", "--noinput")
        _migrated.append(template)
    with sqlite3.connect(_migrated[0]) as source, sqlite3.connect(target) as copy:
        source.backup(copy)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One running server with the default responses, shared by the read-only HTTP tests."""
    srv = make_server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def new_server(tmp_path: Path):
    """Start a server of the test's own: new_server(responses=..., **env)."""
    started: list[Server] = []

    def start(*, daphne: bool = False, **kwargs: str) -> Server:
        srv = make_server(tmp_path / f"s{len(started)}", **kwargs).start(daphne=daphne)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), connect_timeout=3):
            return True
    except Exception:
        return False


def leave_out_or_fail(missing: str) -> None:
    """A test needs something this machine lacks: under .ci/run (MOCKLLM_REQUIRE_SERVICES=1) that fails
    it; elsewhere it is left out, listed with the reason."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required here (MOCKLLM_REQUIRE_SERVICES=1): {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not postgres_available():
        leave_out_or_fail(f"PostgreSQL does not answer at {POSTGRES_URL} (start it to run this test)")
    return POSTGRES_URL


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not redis_available():
        leave_out_or_fail(f"Redis does not answer at {REDIS_URL} (start it to run this test)")
    return REDIS_URL


def control(srv: Server, method: str, path: str, *, token: str | None = CONTROL_TOKEN, **kwargs):
    """A request to a server's control API (/control/...), with its token unless told otherwise."""
    import httpx

    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, f"{srv.url}/control/{path}", headers=headers, timeout=30, **kwargs)


def chat(srv: Server, prompt: str | list, *, headers: dict | None = None, **body) -> "httpx.Response":
    """POST /v1/chat/completions with one user message (or the given messages)."""
    import httpx

    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return httpx.post(f"{srv.url}/v1/chat/completions", json={"model": "m", "messages": messages, **body},
                      headers=headers or {}, timeout=30)


@pytest.fixture(autouse=True)
def no_journal_in_this_process(settings):
    """Requests made in this process (Django's test client) are not journaled: the journal's writer
    thread would share the test's database. The journal is tested against real server processes."""
    settings.MOCKLLM_JOURNAL = False


@pytest.fixture(autouse=True)
def fresh_response_index():
    """Tests share one process: start each with an index that is rebuilt on first use."""
    from responses_app.canned.index import canned_index

    canned_index.forget()  # versions repeat when each test's transaction rolls back
    yield
    canned_index.forget()


@contextlib.contextmanager
def scratch_database(postgres_url: str):
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


@pytest.fixture
def postgres_database(postgres_url):
    """A fresh, empty database on the PostgreSQL server, dropped afterwards; its URL."""
    with scratch_database(postgres_url) as url:
        yield url


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


def create_api_key(srv: Server, name: str, key: str, *, scenario: str = "", active: bool = True) -> None:
    """Store an API key in a server's database, as the admin does (only its hash is kept)."""
    srv.manage("shell", "-c", (
        "from responses_app.models import ApiKey\n"
        f"k = ApiKey(name={name!r}, scenario={scenario!r}, is_active={active!r})\n"
        f"k.set_key({key!r})\n"
        "k.save()\n"
    ))
