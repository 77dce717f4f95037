"""`customers import FILE.csv` and `customers export`: the bulk endpoints from the shell.

Both talk to a running gateway over HTTP (the same API other services use), so a file is
validated by the same rules, and the import is processed by the import workers whatever
machine the command runs on. The gateway is `--url` (default: this machine's configured
`CUSTOMERS_HTTP_HOST`/`PORT`); the token is `--token` or `CUSTOMERS_TOKEN`, else a
short-lived staff token signed with the configured (or local mode's) JWT secret, as
`customers token` makes one.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from infrastructure.local_secrets import with_local_secrets
from infrastructure.settings import ENV_PREFIX, load_settings
from infrastructure.tokens import issue_token

__all__ = ["export_customers", "import_customers"]

_CHUNK = 1 << 18
_POLL_SECONDS = 0.5
_SHOWN_PROBLEMS = 20
_console = Console(stderr=True)

Url = Annotated[str | None, typer.Option(help="The gateway, e.g. http://127.0.0.1:8080.")]
Token = Annotated[
    str | None, typer.Option(help=f"Bearer token (default: ${ENV_PREFIX}TOKEN, else made here).")
]


def import_customers(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV file.")],
    send_registration_email: Annotated[
        bool, typer.Option(help="Send each imported customer the registration message.")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Upload a customer file, follow its import with a progress bar, print the report."""
    size = file.stat().st_size
    code = asyncio.run(_import(file, size, send_registration_email, _base_url(url), _token(token)))
    raise typer.Exit(code)


def export_customers(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default: the name sent).")
    ] = None,
    ndjson: Annotated[bool, typer.Option(help="One JSON object per line instead of CSV.")] = False,
    q: Annotated[str | None, typer.Option(help="Search text, as in the list view.")] = None,
    city: Annotated[str | None, typer.Option()] = None,
    group: Annotated[str | None, typer.Option()] = None,
    system_type: Annotated[str | None, typer.Option()] = None,
    registered_within_days: Annotated[int | None, typer.Option(min=1)] = None,
    registered_after: Annotated[str | None, typer.Option(help="YYYY-MM-DD or RFC 3339.")] = None,
    registered_before: Annotated[str | None, typer.Option(help="YYYY-MM-DD or RFC 3339.")] = None,
    include_deleted: Annotated[bool, typer.Option()] = False,
    all_: Annotated[
        bool, typer.Option("--all", help="Every registration date (the API's default is 30 days).")
    ] = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Download the customers a search finds (CSV or NDJSON) with a progress bar."""
    params: dict[str, str] = {
        name: str(value)
        for name, value in {
            "q": q,
            "city": city,
            "group": group,
            "system_type": system_type,
            "registered_within_days": registered_within_days,
            "registered_after": "1970-01-01" if all_ and not registered_after else registered_after,
            "registered_before": registered_before,
        }.items()
        if value is not None
    }
    if include_deleted:
        params["include_deleted"] = "true"
    code = asyncio.run(_export(params, ndjson, output, _base_url(url), _token(token)))
    raise typer.Exit(code)


# ---- import --------------------------------------------------------------------------------


async def _import(file: Path, size: int, send_email: bool, base_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        with _bytes_progress() as bar:
            task = bar.add_task(f"upload {file.name}", total=size)
            response = await session.post(
                "/v1/customers/imports",
                data=_chunks(file, lambda n: bar.advance(task, n)),
                params={"send_registration_email": str(send_email).lower()},
                headers={
                    "Content-Type": "text/csv",
                    "Content-Disposition": f'attachment; filename="{file.name}"',
                },
            )
        if response.status != 202:
            return await _refused(response)
        import_id = (await response.json())["import_id"]
        if response.headers.get("Idempotent-Replayed"):
            _console.print(f"This file was imported before: import {import_id}.")
        report = await _follow(session, import_id)
        _print_report(report)
        for status in ("invalid", "duplicate"):
            await _print_rows(session, import_id, status, report["counts"][status])
    return 0 if report["status"] == "done" else 1


async def _chunks(file: Path, sent: Any) -> AsyncIterator[bytes]:
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sent(len(chunk))
            yield chunk


async def _follow(session: aiohttp.ClientSession, import_id: str) -> dict[str, Any]:
    path = f"/v1/customers/imports/{import_id}"
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console) as bar:
        task = bar.add_task("import", total=None, counts="")
        while True:
            async with session.get(path, params={"limit": "0"}) as response:
                response.raise_for_status()
                report: dict[str, Any] = await response.json()
            counts = report["counts"]
            done = report["total_rows"] - counts["pending"]
            summary = ", ".join(f"{counts[k]:,} {k}" for k in ("created", "duplicate", "invalid"))
            bar.update(task, total=report["total_rows"], completed=done, counts=summary)
            if report["status"] != "running":
                return report
            await asyncio.sleep(_POLL_SECONDS)


def _print_report(report: dict[str, Any]) -> None:
    counts = report["counts"]
    custom = [c["header"] for c in report["columns"] if c["read_as"] == "custom_fields"]
    _console.print(
        f"import {report['import_id']}: {report['status']}; {report['total_rows']:,} rows,"
        f" {counts['created']:,} created, {counts['duplicate']:,} duplicate,"
        f" {counts['invalid']:,} invalid ({report['encoding']}, {report['delimiter']!r})"
    )
    if custom:
        _console.print("kept as custom fields: " + ", ".join(custom))
    if report["error"]:
        _console.print(f"[red]error: {report['error']}")


async def _print_rows(
    session: aiohttp.ClientSession, import_id: str, status: str, count: int
) -> None:
    if not count:
        return
    params = {"status": status, "limit": str(_SHOWN_PROBLEMS)}
    async with session.get(f"/v1/customers/imports/{import_id}", params=params) as response:
        rows = (await response.json())["rows"]
    _console.print(f"{status} rows ({count:,}; the report has them all):")
    for row in rows:
        errors = "; ".join(f"{e['field'] or 'row'}: {e['message']}" for e in row.get("errors", []))
        holder = f" (customer {row['customer_id']})" if row.get("customer_id") else ""
        _console.print(f"  row {row['row']}: {errors}{holder}")


# ---- export --------------------------------------------------------------------------------


async def _export(
    params: dict[str, str], ndjson: bool, output: Path | None, base_url: str, token: str
) -> int:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/x-ndjson" if ndjson else "text/csv",
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with (
        aiohttp.ClientSession(base_url, headers=headers, timeout=timeout) as session,
        session.get("/v1/customers/export", params=params) as response,
    ):
        if response.status != 200:
            return await _refused(response)
        sent_name = response.content_disposition and response.content_disposition.filename
        target = output or Path(sent_name or ("customers.ndjson" if ndjson else "customers.csv"))
        total = int(response.headers.get("X-Total-Count", "0"))
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        with Progress(*columns, console=_console) as bar, target.open("wb") as out:
            task = bar.add_task(f"export to {target}", total=total)
            lines = -1 if not ndjson else 0  # the CSV header is no customer
            async for chunk in response.content.iter_chunked(_CHUNK):
                out.write(chunk)
                # Line breaks, as rows: a quoted multi-line cell makes this run ahead a
                # little, so it is capped at the total the server announced.
                lines += chunk.count(b"\n")
                bar.update(task, completed=min(max(lines, 0), total))
            bar.update(task, completed=total)
    _console.print(f"{total:,} customers written to {target}")
    return 0


# ---- shared --------------------------------------------------------------------------------


def _bytes_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=_console,
    )


async def _refused(response: aiohttp.ClientResponse) -> int:
    """Print the problem the API answered with; the exit status."""
    try:
        problem = await response.json(content_type=None)
    except (aiohttp.ContentTypeError, ValueError):
        problem = {"detail": await response.text()}
    _console.print(f"[red]{response.status}: {problem.get('detail') or problem.get('title')}")
    for error in problem.get("errors") or []:
        _console.print(f"  {error.get('field') or 'file'}: {error.get('message')}")
    return 1


def _base_url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if env := os.environ.get(f"{ENV_PREFIX}URL"):
        return env.rstrip("/")
    settings = load_settings()
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host
    return f"http://{host}:{settings.http_port}"


def _token(token: str | None) -> str:
    if token or (token := os.environ.get(f"{ENV_PREFIX}TOKEN")):
        return token
    settings = load_settings()
    if settings.jwt_secret is None:
        settings = with_local_secrets(settings)
    assert settings.jwt_secret is not None
    return issue_token(
        settings.jwt_secret.get_secret_value(),
        sub=f"{getpass.getuser()}@cli",
        role="staff",
        ttl=timedelta(hours=1),
    )
