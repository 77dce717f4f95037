"""`customers audit ...`: verify the hash chain, replay a stream, export the log as NDJSON.

What the HTTP audit routes offer, for an auditor at a shell with database access. The
export is resumable: each line is one whole event, written in log order, so after a crash
or Ctrl-C re-running the same command drops a half-written last line and continues after
the last complete one. Every line carries the event's chain hashes, so a copy can be
checked against the store later.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from uuid import UUID

import typer
from eventsourcing.persistence import StoredEvent
from pydantic_core import to_jsonable_python
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.base import event_name, qualname_event_name
from domain.service import CustomerService
from infrastructure.audit_log import event_payload, iter_log, masked, verify_chain
from infrastructure.eventstore import build_service, event_positions, recorder
from infrastructure.logs import configure_logging
from infrastructure.settings import Settings, load_settings

__all__ = ["audit_app"]

audit_app = typer.Typer(help="Audit the event store: verify, replay, export.", no_args_is_help=True)

_EXPORT_PAGE = 2000
_TAIL_BLOCK = 65536


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        typer.echo("CUSTOMERS_DATABASE_URL: required by `customers audit`", err=True)
        raise typer.Exit(2)
    return settings


def _service() -> CustomerService:
    return build_service(_settings())


def _json(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(to_jsonable_python(value), indent=indent, ensure_ascii=False)


@audit_app.command("verify")
def verify_command(
    stream_id: Annotated[
        UUID | None, typer.Option(help="Check this stream only (default: every stream).")
    ] = None,
) -> None:
    """Check the hash chain; print the result as JSON. Exit status 1 on a break."""
    service = _service()
    try:
        chained = recorder(service)
        assert chained.chain_key is not None
        result = verify_chain(chained, chained.chain_key, stream_id)
    finally:
        service.close()
    typer.echo(
        _json(
            {
                "ok": result.ok,
                "streams_checked": result.streams_checked,
                "events_checked": result.events_checked,
                "first_break": vars(result.first_break) if result.first_break else None,
                "backfilled_through": result.backfilled_through,
                "head": vars(result.head) if result.head else None,
            },
            indent=2,
        )
    )
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("replay")
def replay_command(
    stream_id: Annotated[UUID, typer.Argument(help="The aggregate (customer, ticket...) id.")],
    as_of: Annotated[
        str | None, typer.Option(help="Stop at this moment (RFC 3339 with an offset).")
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Stop at this version.")] = None,
) -> None:
    """Print each event of a stream as it is applied, then the state it leads to."""
    if as_of is not None and version is not None:
        typer.echo("give --as-of or --version, not both", err=True)
        raise typer.Exit(2)
    moment = _moment(as_of) if as_of is not None else None
    service = _service()
    try:
        positions = event_positions(service, stream_id)
        state: Any = None
        event: Any
        for event in service.events.get(stream_id):
            if (moment is not None and event.timestamp > moment) or (
                version is not None and event.originator_version > version
            ):
                break
            state = event.mutate(state)
            typer.echo(
                f"v{event.originator_version} at position {positions.get(event.originator_version)}"
                f" {event.timestamp.isoformat()} {event_name(event)}"
                f" by {getattr(event, 'actor', '?')}: {_json(event_payload(event))}"
            )
    finally:
        service.close()
    if state is None:
        typer.echo(f"no events for {stream_id} (at that point)", err=True)
        raise typer.Exit(1)
    typer.echo(f"state at version {state.version}:")
    typer.echo(_json(_state(state), indent=2))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        typer.echo(f"--as-of: not an RFC 3339 time with an offset: {text!r}", err=True)
        raise typer.Exit(2)
    return moment


def _state(aggregate: Any) -> dict[str, Any]:
    """The aggregate's attributes as plain data, secrets masked."""
    fields = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    return {
        "type": type(aggregate).__name__,
        "id": aggregate.id,
        "version": aggregate.version,
        "created_on": aggregate.created_on,
        "modified_on": aggregate.modified_on,
        **masked(fields),
    }


@audit_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option(help="The NDJSON file; an existing one is continued.")],
    after: Annotated[
        int, typer.Option(min=0, help="Start after this position (for a new file).")
    ] = 0,
) -> None:
    """Export the log as NDJSON, one event a line, resuming an interrupted export."""
    resumed = _resume_point(out)
    start = resumed if resumed is not None else after
    service = _service()
    written = 0
    started = time.monotonic()
    try:
        head = service.recorder.max_notification_id() or 0
        columns = (
            TextColumn("[bold]export"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeRemainingColumn(),
        )
        with out.open("a", encoding="utf-8") as file, Progress(*columns) as bar:
            task = bar.add_task("export", total=max(head - start, 0), rate="-")
            for line, position in _lines(service, start):
                file.write(line + "\n")
                written += 1
                if written % _EXPORT_PAGE == 0:
                    file.flush()
                    rate = written / max(time.monotonic() - started, 1e-6)
                    bar.update(task, completed=min(position, head) - start, rate=f"{rate:,.0f}")
            bar.update(task, completed=max(head - start, 0))
    finally:
        service.close()
    note = f" (resumed after position {resumed})" if resumed is not None else ""
    typer.echo(f"exported {written} events to {out}{note}")


def _lines(service: CustomerService, after: int) -> Iterator[tuple[str, int]]:
    """Each event after `after` as one NDJSON line, with its position."""
    chained = recorder(service)
    for row in iter_log(chained, after, hashes=True):
        stored = StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        line: dict[str, Any] = {
            "position": row["notification_id"],
            "stream_id": row["originator_id"],
            "version": row["originator_version"],
            "type": qualname_event_name(row["topic"].rpartition(":")[2]),
        }
        try:
            event: Any = service.mapper.to_domain_event(stored)
        except Exception as error:  # an unreadable row is exported as such, not skipped
            line["error"] = f"cannot decode the stored event: {type(error).__name__}"
        else:
            line["at"] = event.timestamp
            line["actor"] = getattr(event, "actor", None)
            line["correlation_id"] = getattr(event, "correlation_id", None)
            line["payload"] = event_payload(event)
        line["stream_hash"] = _hex(row["stream_hash"])
        line["log_hash"] = _hex(row["log_hash"])
        yield _json(line), row["notification_id"]


def _hex(value: Any) -> str | None:
    return None if value is None else bytes(value).hex()


def _resume_point(out: Path) -> int | None:
    """The position of the file's last complete line, after cutting off a partial one."""
    if not out.exists():
        return None
    with out.open("rb+") as file:
        last = _cut_to_last_line(file)
    if last is None:
        return None
    try:
        position = int(json.loads(last)["position"])
    except (ValueError, KeyError, TypeError):
        typer.echo(f"{out}: its last line is not an exported event; use a new file", err=True)
        raise typer.Exit(2) from None
    return position


def _cut_to_last_line(file: BinaryIO) -> bytes | None:
    """Truncate `file` after its last newline; that last complete line (None: none).

    Reads backwards a block at a time: an export can be far larger than memory."""
    last = _newline_before(file, file.seek(0, io.SEEK_END))
    file.truncate(last + 1)
    if last < 0:
        return None
    previous = _newline_before(file, last)
    file.seek(previous + 1)
    return file.read(last - previous - 1)


def _newline_before(file: BinaryIO, end: int) -> int:
    """The offset of the last newline before `end`, or -1."""
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        file.seek(start)
        found = file.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found
        end = start
    return -1
