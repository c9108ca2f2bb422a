"""Fixtures and hooks only: the harness itself (servers, clients, helpers) is in tests/support.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from .support import (
    CONTROL_TOKEN,
    POSTGRES_URL,
    QA_BOT_KEY,
    REDIS_URL,
    Server,
    create_api_key,
    finish_stopping,
    leave_out_or_fail,
    make_server,
    postgres_available,
    redis_available,
    scratch_database,
)


def pytest_sessionfinish(session, exitstatus):
    finish_stopping()  # the servers whose teardown did not wait for them to exit


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One running server with the default responses, shared by the read-only HTTP tests."""
    srv = make_server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop(wait=False)


@pytest.fixture(scope="session")
def control_server(tmp_path_factory: pytest.TempPathFactory):
    """A server under daphne (the production command) with the control API on (CONTROL_TOKEN) and one
    API key, "qa-bot" (not required), shared by the control API's and the journal's tests; they keep
    to test runs (X-Mock-Test-Id) of their own."""
    srv = make_server(tmp_path_factory.mktemp("control"), MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    create_api_key(srv, "qa-bot", QA_BOT_KEY)
    srv.start(daphne=True)
    yield srv
    srv.stop(wait=False)


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
        srv.stop(wait=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not postgres_available():
        leave_out_or_fail(f"PostgreSQL does not answer at {POSTGRES_URL} (start it to run this test)")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not redis_available():
        leave_out_or_fail(f"Redis does not answer at {REDIS_URL} (start it to run this test)")
    return REDIS_URL


@pytest.fixture
def postgres_database(postgres_url):
    """A fresh, empty database on the PostgreSQL server, dropped afterwards; its URL."""
    with scratch_database(postgres_url) as url:
        yield url


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
