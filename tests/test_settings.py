import pytest
from django.core.exceptions import ImproperlyConfigured

from mockllm_site.settings import BASE_DIR, database_from_url, env_bool


def test_sqlite_url_is_relative_to_the_project_and_uses_wal_with_immediate_writes():
    db = database_from_url("sqlite:///data/mock.sqlite3")
    assert db["NAME"] == str(BASE_DIR / "data/mock.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert database_from_url("sqlite:////tmp/abs.db")["NAME"] == "/tmp/abs.db"


def test_postgres_url_is_split_into_its_parts():
    db = database_from_url("postgres://me:p%40ss@db.example:6543/mock?sslmode=require")
    assert (db["ENGINE"], db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "django.db.backends.postgresql", "mock", "me", "p@ss", "db.example", "6543")
    assert db["OPTIONS"]["sslmode"] == "require"
    assert db["OPTIONS"]["pool"]["max_size"] == 8 and db["CONN_MAX_AGE"] == 0  # a pool by default


def test_the_postgres_pool_can_be_sized_or_turned_off(monkeypatch):
    monkeypatch.setenv("MOCKLLM_DB_POOL", "3")
    assert database_from_url("postgres://db/mock")["OPTIONS"]["pool"]["max_size"] == 3
    monkeypatch.setenv("MOCKLLM_DB_POOL", "0")
    assert "pool" not in database_from_url("postgres://db/mock")["OPTIONS"]


def test_unknown_database_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        database_from_url("mysql://x/y")


def test_malformed_boolean_is_refused(monkeypatch):
    monkeypatch.setenv("MOCKLLM_TEST_FLAG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="MOCKLLM_TEST_FLAG"):
        env_bool("MOCKLLM_TEST_FLAG", False)
    monkeypatch.setenv("MOCKLLM_TEST_FLAG", "off")
    assert env_bool("MOCKLLM_TEST_FLAG", True) is False
