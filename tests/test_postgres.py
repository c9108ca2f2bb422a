"""The same server on PostgreSQL (DATABASE_URL=postgres://...)."""
import pytest

from .support import openai_client

pytestmark = pytest.mark.slow  # migrates a PostgreSQL database


def test_server_on_postgres_loads_and_answers(new_server, postgres_database):
    srv = new_server(database_url=postgres_database)
    client = openai_client(srv)
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "what is 2+2?"}])
    assert reply.choices[0].message.content == "2+2 equals 9."
    again = srv.manage("loadresponses", str(srv.responses_file)).stdout
    assert "0 added, 0 updated, 0 removed, 8 unchanged" in again
