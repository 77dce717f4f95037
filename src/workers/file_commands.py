"""`customers files sweep`: collect customer file content that nothing live uses any more.

Content is stored before its upload's event; an upload whose event was then never saved,
or a delete or erasure cut short before its content was let go, leaves content behind.
The sweep drops those references and the content no reference names (see
`infrastructure.file_contents`). Run it now and then (a daily cron job is plenty): it is
safe at any time and alongside uploads, and only touches what is older than the grace.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from infrastructure.eventstore import build_service
from infrastructure.file_contents import FileContents
from workers.projection_commands import settings_or_exit

__all__ = ["files_app"]

files_app = typer.Typer(help="Customer files' content store.", no_args_is_help=True)


@files_app.command("sweep")
def sweep(
    grace_minutes: Annotated[
        int,
        typer.Option(min=0, help="Leave what is younger: an upload may still be saving it."),
    ] = 60,
) -> None:
    """Delete file content that no live file uses (failed uploads, interrupted deletes)."""
    settings = settings_or_exit()
    service = build_service(settings)
    try:
        contents = FileContents(
            service.recorder.datastore,  # type: ignore[attr-defined]
            settings.db_schema,
            service.recorder.events_table_name,  # type: ignore[attr-defined]
        )
        result = contents.sweep(timedelta(minutes=grace_minutes))
    finally:
        service.close()
    typer.echo(f"references dropped: {result.references}, contents deleted: {result.contents}")
