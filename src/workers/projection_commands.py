"""`customers worker` and `customers projections ...`: run, inspect and repair read models."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from infrastructure.eventstore import build_service
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings
from projections.base import read_model_schema
from projections.catalog import READ_MODELS, open_read_model
from projections.rebuild import rebuild
from workers.runners import IMPORT_WORKER, follower_names, run_followers

__all__ = ["projections_app", "settings_or_exit", "worker"]

projections_app = typer.Typer(help="Inspect and repair the read models.", no_args_is_help=True)


def settings_or_exit() -> Settings:
    """The settings, logging configured; exit 2 without a database URL."""
    return _settings()


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        typer.echo(
            "CUSTOMERS_DATABASE_URL: required (customers run sets it for its workers)", err=True
        )
        raise typer.Exit(2)
    return settings


def worker(
    names: Annotated[
        list[str], typer.Argument(help="Followers to run, or `all` of them; `import` for imports.")
    ],
) -> None:
    """Run read models and the relay, resuming from their positions; standby if another leads.

    `import` runs the import worker, which registers uploaded customer files; `all` means
    every follower (`customers run` starts the import worker as a process of its own).
    """
    known = [*follower_names(), IMPORT_WORKER]
    chosen = follower_names() if names == ["all"] else names
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        typer.echo(f"unknown: {', '.join(unknown)}; known: {', '.join(known)}, all", err=True)
        raise typer.Exit(2)
    run_followers(_settings(), chosen)


@projections_app.command("status")
def status() -> None:
    """Each read model's position and parked events."""
    settings = _settings()
    for name in sorted(READ_MODELS):
        model = open_read_model(settings, name)
        model.migrate()
        typer.echo(f"{name}: position {model.position()}, parked {len(model.parked_positions())}")


@projections_app.command("rebuild")
def rebuild_command(
    name: Annotated[str, typer.Argument(help="The read model to rebuild.")],
) -> None:
    """Replay the log from 0 into fresh tables and swap them in once caught up."""
    settings = _settings()
    _known(name)
    service = build_service(settings)
    head = service.recorder.max_notification_id() or 0
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    try:
        with Progress(*columns) as bar:
            task = bar.add_task(f"rebuild {name}", total=head, rate="-")

            def progress(position: int) -> None:
                rate = position / max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=min(position, head), rate=f"{rate:,.0f}")

            position = rebuild(
                service,
                lambda schema: open_read_model(settings, name, schema=schema),
                read_model_schema(settings.db_schema, name),
                progress=progress,
            )
    finally:
        service.close()
    elapsed = time.monotonic() - started
    typer.echo(f"{name}: rebuilt to position {position} in {elapsed:.1f} s")


@projections_app.command("retry")
def retry_command(name: Annotated[str, typer.Argument(help="The read model.")]) -> None:
    """Apply the read model's parked events again (after a fix); report what still fails."""
    settings = _settings()
    _known(name)
    service = build_service(settings)
    model = open_read_model(settings, name)
    try:
        positions = model.parked_positions()
        events = [
            (n.id, service.mapper.to_domain_event(n))
            for p in positions
            for n in service.recorder.select_notifications(start=p, limit=1)
        ]
        failing = model.retry_parked(events)
    finally:
        model.datastore.close()
        service.close()
    typer.echo(f"{name}: retried {len(events)}, still failing {len(failing)}")
    if failing:
        typer.echo("still failing at positions: " + ", ".join(map(str, failing)), err=True)
        raise typer.Exit(1)


def _known(name: str) -> None:
    if name not in READ_MODELS:
        typer.echo(
            f"unknown read model {name!r}; known: {', '.join(sorted(READ_MODELS))}", err=True
        )
        raise typer.Exit(2)
