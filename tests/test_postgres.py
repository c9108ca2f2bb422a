"""The same server on PostgreSQL (DATABASE_URL=postgres://...)."""
import uuid

import openai
import psycopg
import pytest


@pytest.fixture
def postgres_database(postgres_url):
    """A fresh, empty database on the PostgreSQL server, dropped afterwards."""
    name = f"mockllm_test_{uuid.uuid4().hex[:10]}"
    admin_url = postgres_url.replace("postgres://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_server_on_postgres_loads_and_answers(new_server, postgres_database):
    srv = new_server(database_url=postgres_database)
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="k", max_retries=0)
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "what is 2+2?"}])
    assert reply.choices[0].message.content == "2+2 equals 9."
    again = srv.manage("loadresponses", str(srv.responses_file)).stdout
    assert "0 added, 0 updated, 0 removed, 8 unchanged" in again
