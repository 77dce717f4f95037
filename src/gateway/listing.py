"""Keyset pages of the read models: the query, cursors, the fetch (and a query's one row).

A page asks for one row more than its limit: if that row comes, the page's last key
becomes the opaque `next_cursor`. Cursors carry only the sort key (a time and an id); a
cursor that was tampered with at worst starts the page elsewhere, so it is checked for
shape (422 when it is not one of ours) but not signed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
import psycopg
from aiohttp import web
from psycopg import sql
from pydantic import Field, TypeAdapter, ValidationError

from gateway.keys import SETTINGS_KEY
from gateway.problems import RETRY_AFTER_SECONDS, FieldError, Problem
from gateway.reads import ReadQuery, read_pool, wait_for_position
from projections.base import read_model_schema

__all__ = ["MAX_LIMIT", "PageQuery", "Statement", "fetch_page", "fetch_row", "not_ready"]

MAX_LIMIT = 200
_KEY = TypeAdapter(tuple[datetime, UUID])

Statement = Callable[..., tuple[sql.Composed, dict[str, Any]]]
"""`statement(schema, criteria, after=key, limit=n)` of a read model's module."""


class PageQuery(ReadQuery):
    """Paging parameters of a list (with `min_position` and `wait_ms`)."""

    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    """Items per page, at most 200."""
    cursor: Annotated[str, Field(max_length=200)] | None = None
    """`next_cursor` of the previous page, with the same filters."""


async def fetch_page(
    request: web.Request,
    read_model: str,
    statement: Statement,
    criteria: Any,
    query: PageQuery,
    *,
    key_column: str,
) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of one page and the cursor of the next (None on the last page)."""
    after = _read_cursor(query.cursor)
    await wait_for_position(request, read_model, query)
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, read_model)
    select, params = statement(schema, criteria, after=after, limit=query.limit + 1)
    async with _reading(read_model), read_pool(request).connection() as connection:
        rows: list[dict[str, Any]] = await (await connection.execute(select, params)).fetchall()
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return page, _write_cursor(page[-1][key_column], page[-1]["id"]) if more else None


async def fetch_row(
    request: web.Request, read_model: str, statement: Callable[..., Any], *args: Any
) -> dict[str, Any] | None:
    """The one row (or None) of `statement(schema, *args)`, such as a tab's balance."""
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, read_model)
    select, params = statement(schema, *args)
    async with _reading(read_model), read_pool(request).connection() as connection:
        row: dict[str, Any] | None = await (await connection.execute(select, params)).fetchone()
    return row


def not_ready(read_model: str) -> Problem:
    return Problem(
        503,
        f"The {read_model} view is not built yet; a projection worker creates it.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@contextlib.asynccontextmanager
async def _reading(read_model: str) -> AsyncIterator[None]:
    """503 while the read model's tables are not there yet."""
    try:
        yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise not_ready(read_model) from None


def _write_cursor(at: datetime, row_id: UUID) -> str:
    raw = orjson.dumps([at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _KEY.validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise Problem(
            422,
            "invalid query parameters: cursor",
            errors=[FieldError(field="cursor", message="not a cursor from a previous page")],
        ) from None
