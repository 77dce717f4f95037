"""PostgreSQL plumbing: from a libpq URL to the event store's settings, schema, readiness.

The `eventsourcing` library reads its Postgres connection from separate `POSTGRES_*`
keys, not a URL; `postgres_env` translates one into the other so the rest of the service
deals in one `CUSTOMERS_DATABASE_URL`. The schema is created here, before any recorder
starts, because the library's `CREATE_TABLE` assumes it exists.
"""

from __future__ import annotations

import contextlib
import getpass
import math

import psycopg
import psycopg_pool
from eventsourcing import persistence
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

__all__ = [
    "DATABASE_UNAVAILABLE",
    "check_postgres",
    "drop_schema",
    "ensure_schema",
    "parse_database_url",
    "postgres_env",
]

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    persistence.OperationalError,
    persistence.InterfaceError,
)
"""Unreachable or failing storage: worth a retry, and never the client's fault."""

# The connection parameters the library's recorder can be given; anything else in a URL
# (sslmode, options...) would be silently dropped, so it is refused instead. libpq's own
# PG* environment variables (PGSSLMODE...) still reach every connection.
_SUPPORTED_PARAMETERS = frozenset({"host", "port", "user", "password", "dbname", "connect_timeout"})

# Seconds a writer waits for the events table's lock before failing: a stuck writer
# should surface as an error, not as every request hanging behind it.
_LOCK_TIMEOUT_SECONDS = 5


def parse_database_url(database_url: str) -> dict[str, str]:
    """The URL's connection parameters, with libpq's defaults for user and database name."""
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("should be a postgresql:// URL")
    try:
        params = {key: str(value) for key, value in conninfo_to_dict(database_url).items()}
    except psycopg.ProgrammingError as error:
        raise ValueError(f"is not a valid libpq URL: {error}") from None
    unsupported = sorted(set(params) - _SUPPORTED_PARAMETERS)
    if unsupported:
        raise ValueError(
            f"has parameters the event store cannot pass on: {', '.join(unsupported)}"
            " (use libpq's PG* environment variables for those)"
        )
    if not params.get("host"):
        raise ValueError("names no host (add @host:port, or ?host=/socket/dir for a unix socket)")
    # The same defaults libpq applies when connecting with this URL.
    params.setdefault("user", getpass.getuser())
    params.setdefault("dbname", params["user"])
    return params


def postgres_env(
    database_url: str, schema: str, *, pool_size: int = 5, max_overflow: int = 10
) -> dict[str, str]:
    """The `eventsourcing` library's environment for the database at `database_url`."""
    params = parse_database_url(database_url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": params["dbname"],
        # A host starting with "/" is a unix socket directory; libpq handles both alike.
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": params.get("port") or "5432",
        "POSTGRES_USER": params["user"],
        # The library refuses to start without the key, even for trust authentication.
        "POSTGRES_PASSWORD": params.get("password", ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(_LOCK_TIMEOUT_SECONDS),
        # Tables are created once by the migrate step: several processes creating them at
        # once fail with "tuple concurrently updated" (DESIGN.md). POSTGRES_ENABLE_DB_FUNCTIONS
        # stays unset on purpose: it skips the table lock that keeps the global order gap-free.
        "CREATE_TABLE": "n",
    }
    if "connect_timeout" in params:
        env["POSTGRES_CONNECT_TIMEOUT"] = params["connect_timeout"]
    return env


def ensure_schema(database_url: str, schema: str) -> None:
    """Create `schema` unless it exists."""
    statement = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
    # IF NOT EXISTS is not atomic: a process racing this one may create it first.
    with (
        psycopg.connect(database_url, autocommit=True) as connection,
        contextlib.suppress(psycopg.errors.UniqueViolation),
    ):
        connection.execute(statement)


def drop_schema(database_url: str, schema: str) -> None:
    """Drop `schema` and its read models' schemas (`<schema>_<model>`, see
    `projections.base.read_model_schema`), with everything in them: the throwaway schemas
    of tests and benchmarks, which must not leave read models behind on a shared server."""
    read_models = schema.replace("_", r"\_") + r"\_%"
    with psycopg.connect(database_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (read_models,)
        ).fetchall()
        for name in [schema, *(str(row[0]) for row in found)]:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )


def check_postgres(database_url: str, timeout: float = 2.0) -> bool:
    """Whether the database accepts a connection and answers a query within `timeout` seconds."""
    # libpq's connect_timeout counts whole seconds and treats 1 as 2.
    connect_timeout = max(2, math.ceil(timeout))
    try:
        with psycopg.connect(
            database_url, autocommit=True, connect_timeout=connect_timeout
        ) as connection:
            connection.execute(
                sql.SQL("SET statement_timeout = {}").format(
                    sql.Literal(max(1, int(timeout * 1000)))
                )
            )
            connection.execute("SELECT 1")
    except (psycopg.Error, OSError):
        return False
    return True
