"""`GET /v1/customers/{id}/history`: who changed what on a customer, oldest first.

The rows come from the history read model (`projections.history`), one per event, on the
async read pool. Pages are keyset pages on the global position; the cursor is opaque:
the last position of the page, signed (HMAC keyed from the JWT secret) together with the
customer and the `type` filter it belongs to, so an edited or borrowed cursor answers 422.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import psycopg
from aiohttp import web
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from domain.errors import NotFoundError
from gateway.auth import can_see_customer, principal, requires
from gateway.keys import SETTINGS_KEY
from gateway.operations import operation
from gateway.problems import RETRY_AFTER_SECONDS, FieldError, Problem
from gateway.reads import ReadQuery, read_pool, wait_for_position
from gateway.requests import json_response, parse_query, path_uuid
from projections.base import read_model_schema

__all__ = ["FieldChange", "HistoryItem", "HistoryPage", "HistoryQuery", "add_routes"]

MAX_LIMIT = 500
_CURSOR = re.compile(r"[A-Za-z0-9_-]{32}")  # 8 bytes of position and a 16-byte tag
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z_]*\.[a-z][a-z_]*$", max_length=100)]

DESCRIPTION = """\
One item per event of the customer, **oldest first**: its position in the global log,
the customer's version after it, its type (`customer.profile_changed`), when, who (the
token's `sub`) and at whose request (the `X-Request-ID`), and the fields it changed as
`changes: [{field, from, to}]`.

Field names: profile fields as in the customer (`email`, `birthday`...),
`custom_fields.<key>`, `consent.newsletter`, `consent.promotional_sms`,
`customer_number`, `deleted`, `blocked`, `block_reason`, `notes[<note_id>].text`,
`contacts[<contact_id>].email`, `addresses[<address_id>].city`,
`systems[<system_id>].ip_address`, `key_custody.holder_staff_id`,
`custom_prices.<service_id>`, `credits[<credit_id>].amount`. Empty values read as null:
a registration lists its non-empty fields `from: null`, a removed part its fields `to: null`.
Money is a decimal string, dates and times ISO strings. An equipment secret is never shown:
`systems[<id>].secret` is `"***"` when set, null when not.

The view follows the event log: pass the `X-Event-Position` of a command as `min_position`
to see its row (else an id registered a moment ago may still answer 404). A `customer`
token sees its own history only."""


class HistoryQuery(ReadQuery):
    """The query string of `GET /v1/customers/{id}/history`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    """Items per page, at most 500."""
    cursor: Annotated[str, Field(max_length=100)] | None = None
    """`next_cursor` of the previous page (with the same `type` filter)."""
    type: list[EventType] | None = None
    """Only events of these types, e.g. `customer.consent_changed` (repeat for several)."""


class FieldChange(BaseModel):
    """One field an event changed."""

    model_config = ConfigDict(populate_by_name=True)

    field: str
    from_: JsonValue = Field(alias="from")
    to: JsonValue


class HistoryItem(BaseModel):
    """One event of the customer's history."""

    position: int
    version: int
    type: str
    at: datetime
    actor: str
    correlation_id: str
    changes: list[FieldChange]


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    """Oldest first."""
    next_cursor: str | None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/customers/{id}/history", customer_history)


@operation(
    "A customer's change history, oldest first",
    tag="customers",
    description=DESCRIPTION,
    query=HistoryQuery,
    responses={200: HistoryPage},
)
@requires("admin", "staff", "service", "customer")
async def customer_history(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    if not can_see_customer(principal(request), customer_id):
        raise NotFoundError("customer", customer_id)
    query = parse_query(request, HistoryQuery)
    types = sorted(set(query.type or ()))
    after = _read_cursor(request, query.cursor, customer_id, types) if query.cursor else 0
    await wait_for_position(request, "history", query)
    rows = await _fetch(request, customer_id, after, types, query.limit + 1)
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = _write_cursor(request, customer_id, types, page[-1]["position"])
    return json_response(
        HistoryPage(
            items=[HistoryItem.model_validate(row) for row in page], next_cursor=next_cursor
        )
    )


async def _fetch(
    request: web.Request, customer_id: UUID, after: int, types: list[str], limit: int
) -> list[dict[str, Any]]:
    """The page's rows; a 404 when there are none because the customer has no history."""
    table = sql.Identifier(
        read_model_schema(request.app[SETTINGS_KEY].db_schema, "history"), "history"
    )
    statement = sql.SQL(
        "SELECT position, version, type, at, actor, correlation_id, changes FROM {}"
        " WHERE customer_id = %s AND position > %s{} ORDER BY position LIMIT %s"
    ).format(table, sql.SQL(" AND type = ANY(%s)") if types else sql.SQL(""))
    params: tuple[Any, ...] = (customer_id, after, *((types,) if types else ()), limit)
    try:
        async with read_pool(request).connection() as connection:
            cursor = await connection.execute(statement, params)
            rows: list[dict[str, Any]] = await cursor.fetchall()
            if rows:
                return rows
            # No rows: a filtered or last page, or no such customer (no row at all).
            exists = sql.SQL("SELECT 1 FROM {} WHERE customer_id = %s LIMIT 1").format(table)
            if await (await connection.execute(exists, (customer_id,))).fetchone() is None:
                raise NotFoundError("customer", customer_id)
            return rows
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise Problem(
            503,
            "The history view is not built yet; a projection worker creates it.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None


# ---- cursors -----------------------------------------------------------------------------------


def _write_cursor(request: web.Request, customer_id: UUID, types: list[str], position: int) -> str:
    payload = position.to_bytes(8, "big")
    tag = _tag(request, customer_id, types, payload)
    return base64.urlsafe_b64encode(payload + tag).decode()


def _read_cursor(request: web.Request, cursor: str, customer_id: UUID, types: list[str]) -> int:
    """The last position of the previous page; a 422 for anything this listing did not give."""
    if not _CURSOR.fullmatch(cursor):
        raise _invalid_cursor()
    try:
        raw = base64.b64decode(cursor, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _invalid_cursor() from None
    payload, tag = raw[:8], raw[8:]
    if not hmac.compare_digest(tag, _tag(request, customer_id, types, payload)):
        raise _invalid_cursor()
    return int.from_bytes(payload, "big")


def _tag(request: web.Request, customer_id: UUID, types: list[str], payload: bytes) -> bytes:
    secret = request.app[SETTINGS_KEY].jwt_secret
    assert secret is not None  # protected routes answer 401 without one
    key = hmac.digest(secret.get_secret_value().encode(), b"history cursor", "sha256")
    bound = customer_id.bytes + "\n".join(types).encode() + b"\0" + payload
    return hmac.digest(key, bound, "sha256")[:16]


def _invalid_cursor() -> Problem:
    return Problem(
        422,
        "invalid query parameters: cursor",
        errors=[
            FieldError(field="cursor", message="not a cursor from a previous page of this listing")
        ],
    )
