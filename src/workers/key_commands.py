"""`customers keys ...`: look after the key-encryption key that wraps the customers' data keys."""

from __future__ import annotations

from typing import Annotated

import typer

from infrastructure.eventstore import build_service
from infrastructure.logs import configure_logging
from infrastructure.settings import load_settings

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="The customers' data keys and their wrapping key.", no_args_is_help=True
)


@keys_app.command("rewrap")
def rewrap_command(
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Keys per transaction.")] = 1000,
) -> None:
    """Wrap every data key with CUSTOMERS_KEY_ENCRYPTION_KEY (the last step of a rotation).

    Run it once every process has the new key as CUSTOMERS_KEY_ENCRYPTION_KEY and the old one
    in CUSTOMERS_PREVIOUS_KEY_ENCRYPTION_KEYS; afterwards remove the old one. Safe to stop
    and run again.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        typer.echo("CUSTOMERS_DATABASE_URL: required by `customers keys`", err=True)
        raise typer.Exit(2)
    service = build_service(settings)
    try:
        rewrapped = service.key_ring.rewrap(batch=batch)  # type: ignore[attr-defined]
    finally:
        service.close()
    typer.echo(f"rewrapped {rewrapped} data keys with CUSTOMERS_KEY_ENCRYPTION_KEY")
