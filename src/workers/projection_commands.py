"""`customers worker` and `customers projections ...`: run, inspect and repair read models."""

from __future__ import annotations

from typing import Annotated

import typer

from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings
from projections.catalog import READ_MODELS, open_read_model
from workers.runners import follower_names, run_followers

__all__ = ["projections_app", "worker"]

projections_app = typer.Typer(help="Inspect and repair the read models.", no_args_is_help=True)


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
    names: Annotated[list[str], typer.Argument(help="Followers to run, or `all`.")],
) -> None:
    """Run read models and the relay, resuming from their positions; standby if another leads."""
    known = follower_names()
    chosen = known if names == ["all"] else names
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
