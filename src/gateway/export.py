"""`GET /v1/customers/export`: the customers a search finds, streamed as CSV or NDJSON.

The same filters as `GET /v1/customers` (the same model, the same statement from
`projections.search`), without pages: one server-side cursor reads the rows a thousand at
a time inside one REPEATABLE READ transaction (so the `X-Total-Count` sent first and the
rows that follow are the same snapshot), and each batch is written to the response
before the next is fetched. Memory stays flat however many customers there are.

The CSV is spreadsheet-safe (OWASP, CSV injection): a text cell starting with `=`, `+`,
`-`, `@`, a tab or a carriage return is prefixed with `'`, so a spreadsheet shows it as
text instead of running it as a formula; the import strips that prefix again. It starts
with a UTF-8 byte order mark, without which Excel reads UTF-8 as the local code page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from aiohttp import web
from psycopg import sql

from gateway.auth import requires
from gateway.keys import SETTINGS_KEY
from gateway.operations import Body, operation
from gateway.problems import RETRY_AFTER_SECONDS, Problem
from gateway.reads import read_pool, wait_for_position
from gateway.requests import parse_query
from gateway.search import SearchFilters, search_criteria
from projections.base import read_model_schema
from projections.search import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    search_statement,
)

__all__ = ["COLUMNS", "NDJSON", "add_routes", "spreadsheet_safe"]

NDJSON = "application/x-ndjson"
COLUMNS = (
    "id",
    "customer_number",
    "first_name",
    "last_name",
    "email",
    "mobile_phone",
    "phone",
    "company_name",
    "dba_name",
    "group",
    "city",
    "system_types",
    "registered_at",
    "deleted",
    "blocked",
)
"""The export's columns: a search item's fields. Their names are the import's headers."""
FETCH_ROWS = 1000
FLUSH_BYTES = 1 << 16
STATEMENT_TIMEOUT_MS = 60_000
"""Per fetch: a q export sorts every match before the first row comes."""
_NO_LIMIT = 2**62
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/customers/export", export_customers)


class ExportQuery(SearchFilters):
    """The query string of `GET /v1/customers/export`: the search filters."""


DESCRIPTION = """\
Streams every customer the same search (`GET /v1/customers` without `limit` and `cursor`)
finds, in the same order: CSV by default, one JSON object per line with
`Accept: application/x-ndjson`. Without `q` and without a window the last 30 days are
exported, as the list view shows; `registered_after=1970-01-01` exports everyone.
`X-Total-Count` says how many rows follow. CSV cells that a spreadsheet would run as a
formula (starting with `=`, `+`, `-`, `@`, tab or CR) are prefixed with `'`.
"""


@operation(
    "Export customers (CSV or NDJSON)",
    tag="customers",
    description=DESCRIPTION,
    query=ExportQuery,
    responses={
        200: Body(
            media_type="text/csv",
            schema={"type": "string"},
            description=f"CSV with the header {','.join(COLUMNS)}; NDJSON when asked.",
            also_as=(NDJSON,),
        )
    },
    response_headers=("X-Total-Count",),
)
@requires("admin", "staff", "service")
async def export_customers(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, ExportQuery)
    criteria = search_criteria(request, query, datetime.now(UTC))
    await wait_for_position(request, "search", query)
    ndjson = NDJSON in request.headers.get("Accept", "")
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, "search")
    try:
        async with read_pool(request).connection() as connection:
            found = await (await connection.execute(TRGM_SCHEMA_QUERY)).fetchone()
            if found is None:
                raise _not_ready()
            statement, params = search_statement(
                schema, found["schema"], criteria, after=None, limit=_NO_LIMIT
            )
            async with connection.transaction():
                await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await connection.execute(SESSION_SETTINGS, (str(STATEMENT_TIMEOUT_MS),))
                counted = await connection.execute(
                    sql.SQL("SELECT count(*) AS total FROM ({}) matches").format(statement), params
                )
                total = (await counted.fetchone())["total"]
                response = _response(ndjson, total)
                await response.prepare(request)
                async with connection.cursor(name="customers_export") as cursor:
                    await cursor.execute(statement, params)
                    await _stream(response, _rows(cursor), ndjson)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise _not_ready() from None
    await response.write_eof()
    return response


def spreadsheet_safe(value: str) -> str:
    """The cell as a spreadsheet will show it as text, never run it as a formula."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


async def _rows(cursor: Any) -> Any:
    while batch := await cursor.fetchmany(FETCH_ROWS):
        for row in batch:
            yield row


def _response(ndjson: bool, total: int) -> web.StreamResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    extension, content_type = ("ndjson", NDJSON) if ndjson else ("csv", "text/csv")
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="customers-{stamp}.{extension}"',
            "X-Total-Count": str(total),
            "Cache-Control": "no-store",
        }
    )
    response.content_type = content_type
    response.charset = "utf-8"
    return response


async def _stream(response: web.StreamResponse, rows: Any, ndjson: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if not ndjson:
        buffer.write("\ufeff")
        writer.writerow(COLUMNS)
    chunks: list[bytes] = []
    size = 0
    async for row in rows:
        item = _item(row)
        if ndjson:
            chunk = orjson.dumps(item, option=orjson.OPT_UTC_Z) + b"\n"
        else:
            writer.writerow(_csv_cells(item))
            chunk = buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        chunks.append(chunk)
        size += len(chunk)
        if size >= FLUSH_BYTES:
            # Awaiting the write is the back-pressure: a slow client slows the fetches.
            await response.write(b"".join(chunks))
            chunks, size = [], 0
    if not ndjson and not chunks and buffer.tell():
        chunks.append(buffer.getvalue().encode())
    if chunks:
        await response.write(b"".join(chunks))


def _item(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row.get(name) for name in COLUMNS}
    item["group"] = row["customer_group"]
    item["system_types"] = sorted(set(row["systems"].values()))
    return item


def _csv_cells(item: dict[str, Any]) -> Iterable[Any]:
    for name in COLUMNS:
        value = item[name]
        if value is None:
            yield ""
        elif isinstance(value, bool):
            yield "true" if value else "false"
        elif isinstance(value, datetime):
            yield value.isoformat()
        elif isinstance(value, list):
            yield spreadsheet_safe("; ".join(value))
        elif isinstance(value, str):
            yield spreadsheet_safe(value)
        else:
            yield value


def _not_ready() -> Problem:
    return Problem(
        503,
        "The search view is not built yet; a projection worker creates it.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
