"""The system under test, started as `make run` starts it, on a fresh schema.

PostgreSQL and NATS come from `local_servers` in a throwaway folder (or are the servers
named by CUSTOMERS_DATABASE_URL / CUSTOMERS_NATS_URL); the schema is new for every run
and dropped at the end; the service's processes are `workers.__main__.children()` (the
gateway, every follower in one workers process, the import worker), each a real process
with the environment `customers run` builds, logging to a file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
import psycopg
from cryptography.fernet import Fernet
from psycopg import sql
from pydantic import SecretStr

from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service
from infrastructure.servers import local_servers
from infrastructure.settings import Settings, load_settings
from infrastructure.tokens import issue_token
from workers.__main__ import child_environment, children, migrate_database

__all__ = ["System", "start_system"]

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 20.0
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class System:
    """A running service: where to reach it, and its processes for memory and CPU."""

    settings: Settings
    base_url: str
    token: str
    database_url: str
    schema: str
    events_table: str
    processes: dict[str, psutil.Process]
    """The service's processes by name (`gateway`, and later each worker)."""
    exited_at_start: dict[str, int]
    """Processes other than the gateway that stopped during start-up, with exit codes."""
    postmaster: psutil.Process | None
    """PostgreSQL's postmaster when it was started here (its CPU can then be counted)."""
    log_dir: Path

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A new autocommit connection to the run's database."""
        return psycopg.connect(self.database_url, autocommit=True)

    def checkpoint(self) -> bool:
        """Flush dirty pages now, so a phase does not pay for the previous phase's writes.

        False when the role may not (CHECKPOINT needs superuser or pg_checkpoint).
        """
        try:
            with self.connect() as connection:
                connection.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True

    def max_position(self) -> int:
        """The event store's highest notification id (0 when empty)."""
        statement = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}.{}").format(
            sql.Identifier(self.schema), sql.Identifier(self.events_table)
        )
        with self.connect() as connection:
            row = connection.execute(statement).fetchone()
        assert row is not None
        return int(str(row[0]))


@contextlib.contextmanager
def start_system() -> Iterator[System]:
    """Start servers (unless configured), migrate a fresh schema, start the processes."""
    configured = load_settings()
    folder = Path(tempfile.mkdtemp(prefix="customers-bench-"))
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        with local_servers(
            configured.model_copy(update={"data_dir": folder}), keep_data=False
        ) as urls:
            settings = configured.model_copy(
                update={
                    "data_dir": folder,
                    "database_url": urls.database_url,
                    "nats_url": urls.nats_url,
                    "db_schema": schema,
                    # Fresh secrets: the run must not depend on, or touch, a developer's.
                    "jwt_secret": SecretStr(secrets.token_urlsafe(48)),
                    "secret_key": SecretStr(Fernet.generate_key().decode()),
                    "notification_key": SecretStr(Fernet.generate_key().decode()),
                    "key_encryption_key": SecretStr(
                        base64.urlsafe_b64encode(os.urandom(32)).decode()
                    ),
                    "http_host": _LOOPBACK,
                    "http_port": _free_port(),
                }
            )
            # What customers run does: the event store's tables, then every read model's.
            migrate_database(settings)
            try:
                postmaster = None
                if urls.postgres is not None:
                    postmaster = psutil.Process(_postmaster_pid(urls.postgres.pgdata))
                with _processes(settings, folder / "logs") as (processes, exited):
                    yield System(
                        settings=settings,
                        base_url=f"http://{_LOOPBACK}:{settings.http_port}",
                        token=_token(settings),
                        database_url=urls.database_url,
                        schema=schema,
                        events_table=_events_table(settings),
                        processes=processes,
                        exited_at_start=exited,
                        postmaster=postmaster,
                        log_dir=folder / "logs",
                    )
            finally:
                # Only matters for a configured database: a local one is deleted whole.
                drop_schema(urls.database_url, schema)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _processes(
    settings: Settings, log_dir: Path
) -> Iterator[tuple[dict[str, psutil.Process], dict[str, int]]]:
    """Start `children()` as `customers run` does, wait for the gateway, stop them after.

    Yields the processes by name and those (other than the gateway) that already exited:
    a worker still being built may stop at once, which must not stop the HTTP phases.
    """
    log_dir.mkdir(parents=True)
    env = {
        **child_environment(settings),
        # child_environment passes only what it resolved; the rest comes from os.environ,
        # so the run's own schema and address are set here.
        "CUSTOMERS_DB_SCHEMA": settings.db_schema,
        "CUSTOMERS_HTTP_HOST": settings.http_host,
        "CUSTOMERS_HTTP_PORT": str(settings.http_port),
        "CUSTOMERS_DATA_DIR": str(settings.data_dir),
    }
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for child in children():
            with open(log_dir / f"{child.name}.log", "wb") as log:
                started[child.name] = subprocess.Popen(
                    list(child.argv),
                    # libpq's own variable, no service setting: each process's connections
                    # carry its name in pg_stat_activity and the server log (bench.anatomy).
                    env={**env, "PGAPPNAME": child.name},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                )
        _wait_until_healthy(f"http://{_LOOPBACK}:{settings.http_port}/healthz", started, log_dir)
        # A moment for a worker that fails at start to do so, so the run can say it did.
        time.sleep(1.0)
        exited = {
            name: process.returncode
            for name, process in started.items()
            if process.poll() is not None
        }
        if "gateway" in exited:
            raise RuntimeError(f"the gateway exited with {exited['gateway']} after starting")
        running = {n: psutil.Process(p.pid) for n, p in started.items() if n not in exited}
        yield running, exited
    finally:
        for process in reversed(list(started.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started.values():
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(
    url: str, started: dict[str, subprocess.Popen[bytes]], log_dir: Path
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        for name, process in started.items():
            if name == "gateway" and process.poll() is not None:
                tail = (log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode} at start:\n{tail}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the gateway did not answer {url} in {_START_TIMEOUT} s")


def _token(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    # The service role: the bench plays another service of the business calling the API.
    return issue_token(settings.jwt_secret, "bench@local", "service", ttl=timedelta(days=1))


def _events_table(settings: Settings) -> str:
    service = build_service(settings)
    try:
        return str(service.recorder.events_table_name)  # type: ignore[attr-defined]
    finally:
        service.close()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_LOOPBACK, 0))
        return int(probe.getsockname()[1])
