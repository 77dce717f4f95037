"""The `customers` command: run the service locally, migrate, make tokens, start servers.

`customers run` is what `make run` calls: it starts embedded PostgreSQL and NATS for any
URL left unset, creates the schema and the event store's tables once, and then supervises
the service's processes (the gateway; later the projection workers and the NATS relay) as
child processes sharing one resolved environment. Nothing here imports the gateway: it
is a separate process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated
from uuid import UUID

import structlog
import typer

from infrastructure.eventstore import migrate_event_store
from infrastructure.local_secrets import with_local_secrets
from infrastructure.logs import configure_logging
from infrastructure.servers import local_servers
from infrastructure.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from infrastructure.tokens import issue_token
from projections.catalog import READ_MODELS, open_read_model
from workers.audit_commands import audit_app
from workers.file_commands import files_app
from workers.key_commands import keys_app
from workers.nats_commands import asyncapi, tail
from workers.projection_commands import projections_app, worker
from workers.transfer_commands import export_customers, import_customers

__all__ = ["Child", "Role", "app", "children", "main"]

log = structlog.get_logger("customers")

app = typer.Typer(
    name="customers",
    help="Event-sourced customer backend: run it locally, migrate, make tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Seconds a child gets to finish its in-flight work after SIGTERM before it is killed.
_CHILD_STOP_TIMEOUT = 20.0
_SETTINGS_EXIT_CODE = 2


class Role(StrEnum):
    """The roles a token can carry (API.md, Auth)."""

    admin = "admin"
    staff = "staff"
    service = "service"
    customer = "customer"


@dataclass(frozen=True)
class Child:
    """A process `customers run` starts and supervises."""

    name: str
    argv: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    """Set for this process only, over the environment all of them share."""


def children(worker_metrics_port: int | None = None) -> list[Child]:
    """The processes of the service, one line each, in start order.

    Both worker processes serve /metrics when `worker_metrics_port` is set: the workers'
    on it, the imports' on the next port (one port cannot be bound by two processes).
    """
    ports = (
        ({}, {})
        if worker_metrics_port is None
        else (
            {f"{ENV_PREFIX}WORKER_METRICS_PORT": str(worker_metrics_port)},
            {f"{ENV_PREFIX}WORKER_METRICS_PORT": str(worker_metrics_port + 1)},
        )
    )
    return [
        Child("gateway", [sys.executable, "-m", "gateway"]),
        Child("workers", [sys.executable, "-m", "workers", "worker", "all"], ports[0]),
        # Its own process: an import's CPU must not slow the read models' followers.
        Child("imports", [sys.executable, "-m", "workers", "worker", "import"], ports[1]),
    ]


@app.command()
def run() -> None:
    """Start the service: local servers for unset URLs, migrations, then the gateway."""
    with _exit_on_bad_settings():
        settings = with_local_secrets(load_settings())
    configure_logging(settings.log_level, settings.log_format)
    with _terminate_as_interrupt(), local_servers(settings, keep_data=True) as servers:
        settings = settings.model_copy(
            update={"database_url": servers.database_url, "nats_url": servers.nats_url}
        )
        log.info(
            "servers ready",
            embedded_postgres=servers.postgres is not None,
            embedded_nats=servers.nats is not None,
        )
        migrate_database(settings)
        _print_welcome(settings)
        code = supervise(children(settings.worker_metrics_port), child_environment(settings))
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Create the schema and the event store's tables in the configured database."""
    with _exit_on_bad_settings():
        settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        typer.echo(
            f"{ENV_PREFIX}DATABASE_URL: required by `customers migrate`"
            " (`customers run` migrates its local database itself)",
            err=True,
        )
        raise typer.Exit(_SETTINGS_EXIT_CODE)
    migrate_database(settings)


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="The token's role claim.")],
    sub: Annotated[str | None, typer.Option(help="The actor; default <role>@local.")] = None,
    customer_id: Annotated[
        UUID | None, typer.Option(help="The customer a `customer` token acts for.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days until the token expires.")] = 30,
) -> None:
    """Print a bearer token signed with the configured (or local) JWT secret."""
    if (role is Role.customer) != (customer_id is not None):
        typer.echo("--customer-id is required with --role customer, and only with it", err=True)
        raise typer.Exit(_SETTINGS_EXIT_CODE)
    with _exit_on_bad_settings():
        settings = load_settings()
        if settings.jwt_secret is None:
            settings = with_local_secrets(settings)
    assert settings.jwt_secret is not None
    typer.echo(
        issue_token(
            settings.jwt_secret.get_secret_value(),
            sub=sub or f"{role.value}@local",
            role=role.value,
            customer_id=customer_id,
            ttl=timedelta(days=days),
        )
    )


@app.command()
def servers(
    temp: Annotated[bool, typer.Option(help="Throwaway data, deleted on exit.")] = False,
) -> None:
    """Start the local servers only, print their URLs and wait for Ctrl-C."""
    with _exit_on_bad_settings():
        settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if temp:
        settings = settings.model_copy(
            update={"data_dir": Path(tempfile.mkdtemp(prefix="customers-"))}
        )
    with (
        _terminate_as_interrupt(),
        local_servers(settings, keep_data=not temp) as urls,
        _stop_requested() as stop,
    ):
        typer.echo(f"export {ENV_PREFIX}DATABASE_URL='{urls.database_url}'")
        typer.echo(f"export {ENV_PREFIX}NATS_URL='{urls.nats_url}'")
        while not stop.wait(0.5):
            pass
    if temp:
        with contextlib.suppress(OSError):
            settings.data_dir.rmdir()


app.command()(worker)
app.command()(tail)
app.command()(asyncapi)
app.command("import")(import_customers)
app.command("export")(export_customers)
app.add_typer(projections_app, name="projections")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(files_app, name="files")


def migrate_database(settings: Settings) -> None:
    """Create the schema, the event store's tables and every read model's schema."""
    assert settings.database_url is not None
    migrate_event_store(settings)
    for name in READ_MODELS:
        model = open_read_model(settings, name)
        try:
            model.migrate()
        finally:
            model.datastore.close()
    log.info("database migrated", schema=settings.db_schema, read_models=sorted(READ_MODELS))


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with the resolved URLs and secrets, for the children."""
    assert settings.jwt_secret is not None and settings.secret_key is not None
    assert settings.key_encryption_key is not None
    assert settings.database_url is not None and settings.nats_url is not None
    return {
        **os.environ,
        f"{ENV_PREFIX}DATABASE_URL": settings.database_url,
        f"{ENV_PREFIX}NATS_URL": settings.nats_url,
        f"{ENV_PREFIX}JWT_SECRET": settings.jwt_secret.get_secret_value(),
        f"{ENV_PREFIX}SECRET_KEY": settings.secret_key.get_secret_value(),
        f"{ENV_PREFIX}KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        f"{ENV_PREFIX}DB_SCHEMA": settings.db_schema,
        **(
            {f"{ENV_PREFIX}NOTIFICATION_KEY": settings.notification_key.get_secret_value()}
            if settings.notification_key is not None
            else {}
        ),
    }


def supervise(processes: Sequence[Child], env: Mapping[str, str]) -> int:
    """Run `processes` until one exits or SIGINT/SIGTERM arrives; stop them all; exit code."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    with _stop_requested(forward_to=started) as stop:
        for child in processes:
            if stop.is_set():
                break
            # A process group of its own: Ctrl-C reaches the children once, forwarded from
            # here, not also from the terminal, so a second signal cannot cut a clean stop.
            started[child.name] = subprocess.Popen(
                child.argv, env={**env, **child.environment}, process_group=0
            )
            log.info("process started", process=child.name, pid=started[child.name].pid)
        code = 0
        while not stop.wait(0.2):
            exited = {name: p.returncode for name, p in started.items() if p.poll() is not None}
            if exited:
                log.error("process exited, stopping the others", exit_codes=exited)
                # A service process must not stop on its own, so even a 0 is a failure here.
                code = _exit_status(next((c for c in exited.values() if c), 1))
                break
        # Still inside: a second Ctrl-C while the children stop is forwarded to them too,
        # instead of interrupting the wait and stopping the servers under their feet.
        _stop_children(started, signal_sent=stop.is_set())
    return code


def main() -> None:
    """The console script's entry point."""
    app()


def _stop_children(started: Mapping[str, subprocess.Popen[bytes]], *, signal_sent: bool) -> None:
    """Stop the children in reverse start order, killing any that outlive the timeout."""
    for name, process in reversed(list(started.items())):
        if process.poll() is None and not signal_sent:
            process.terminate()
        try:
            process.wait(_CHILD_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("process did not stop in time, killing it", process=name)
            process.kill()
            process.wait()
        log.info("process stopped", process=name, exit_code=process.returncode)


@contextlib.contextmanager
def _stop_requested(
    forward_to: Mapping[str, subprocess.Popen[bytes]] | None = None,
) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, which are also forwarded to `forward_to`."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        for process in (forward_to or {}).values():
            if process.poll() is None:
                process.send_signal(signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the servers started so far are stopped, not orphaned."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _exit_on_bad_settings() -> Iterator[None]:
    """Turn a `SettingsError` into its lines on stderr and exit status 2, not a traceback."""
    try:
        yield
    except SettingsError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(_SETTINGS_EXIT_CODE) from None


def _exit_status(returncode: int) -> int:
    # A child killed by signal N has returncode -N; shells report that as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _print_welcome(settings: Settings) -> None:
    assert settings.jwt_secret is not None
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host
    base_url = f"http://{host}:{settings.http_port}"
    admin_token = issue_token(
        settings.jwt_secret.get_secret_value(), "admin@local", "admin", ttl=timedelta(days=30)
    )
    typer.echo(f"\nCustomers service on {base_url}  (Ctrl-C stops it)\nIn another shell:\n")
    typer.echo(f"export BASE={base_url}")
    typer.echo(f"export TOKEN={admin_token}")
    typer.echo(
        'curl -i -X POST "$BASE/v1/customers" -H "Authorization: Bearer $TOKEN"'
        """ -H 'Content-Type: application/json' -d '{"first_name": "Ada"}'"""
    )
    typer.echo("API docs: " + base_url + "/docs\n")


if __name__ == "__main__":
    main()
