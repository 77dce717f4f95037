"""Likely duplicate customers, from the duplicates read model, for staff to review and merge.

`GET /v1/duplicates` lists every likely pair, highest score first; `GET
/v1/customers/{id}/duplicates` one customer's. Staff only: a customer token gets 404, as
for any staff resource. Scores are 0 to 1; reasons name the fields that matched, never
their values (the customers' summaries show those).
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import psycopg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.auth import Role, requires
from gateway.keys import SETTINGS_KEY
from gateway.listing import PageQuery, not_ready
from gateway.operations import operation
from gateway.problems import FieldError, Problem
from gateway.reads import read_pool, wait_for_position
from gateway.requests import json_response, parse_query, path_uuid
from gateway.schemas import DuplicateReasonOut
from projections.base import read_model_schema
from projections.duplicate_queries import SUMMARY, PairCriteria, pairs_statement

__all__ = ["add_routes"]

STAFF: tuple[Role, ...] = ("admin", "staff", "service")
_READ_MODEL = "duplicates"
_KEY = TypeAdapter(tuple[Decimal, UUID, UUID])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/duplicates", list_duplicates)
    app.router.add_get("/v1/customers/{id}/duplicates", customer_duplicates)


class DuplicatesQuery(PageQuery):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    min_score: float = Field(default=0, ge=0, le=1)
    """Only pairs scoring at least this (0 to 1)."""


class CustomerSummary(BaseModel):
    id: UUID
    customer_number: int
    first_name: str | None
    last_name: str | None
    email: str | None
    mobile_phone: str | None
    city: str | None


class DuplicatePair(BaseModel):
    customer: CustomerSummary
    """In a customer's list, that customer; in the list of all, the one registered first
    (the lower customer number), the usual survivor of a merge."""
    duplicate: CustomerSummary
    score: float = Field(ge=0, le=1)
    """0 to 1: how likely the two records are one customer."""
    reasons: list[DuplicateReasonOut]


class DuplicatePage(BaseModel):
    items: list[DuplicatePair]
    next_cursor: str | None


@operation(
    "List likely duplicate customers (read model)",
    tag="customers",
    description="Pairs of customers that are likely one, highest score first: same phone"
    " (mobile, other phone or a contact's, in E.164), same email (case-insensitive, a"
    " contact's too), same tax id, or similar names at the same postal address or company."
    " Deleted, merged-away and erased customers are in no pair.",
    query=DuplicatesQuery,
    responses={200: DuplicatePage},
)
@requires(*STAFF)
async def list_duplicates(request: web.Request) -> web.Response:
    query = parse_query(request, DuplicatesQuery)
    return await _page(request, query, None)


@operation(
    "A customer's likely duplicates (read model)",
    tag="customers",
    description="The pairs this customer is in, highest score first, this customer as"
    " `customer`. An unknown customer has none (an empty list).",
    query=DuplicatesQuery,
    responses={200: DuplicatePage},
)
@requires(*STAFF)
async def customer_duplicates(request: web.Request) -> web.Response:
    customer_id = path_uuid(request)
    query = parse_query(request, DuplicatesQuery)
    return await _page(request, query, customer_id)


async def _page(
    request: web.Request, query: DuplicatesQuery, customer_id: UUID | None
) -> web.Response:
    after = _read_cursor(query.cursor)
    await wait_for_position(request, _READ_MODEL, query)
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, _READ_MODEL)
    criteria = PairCriteria(customer_id=customer_id, min_score=Decimal(str(query.min_score)))
    select, params = pairs_statement(schema, criteria, after=after, limit=query.limit + 1)
    try:
        async with read_pool(request).connection() as connection:
            rows: list[dict[str, Any]] = await (await connection.execute(select, params)).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise not_ready(_READ_MODEL) from None
    page = rows[: query.limit]
    items = [_pair(row, oriented=customer_id is not None) for row in page]
    last = page[-1] if page else None
    next_cursor = (
        _write_cursor(last["score"], last["k1"], last["k2"])
        if last is not None and len(rows) > query.limit
        else None
    )
    return json_response(DuplicatePage(items=items, next_cursor=next_cursor))


def _pair(row: dict[str, Any], *, oriented: bool) -> DuplicatePair:
    one, two = (
        CustomerSummary(id=row[f"{side}_id"], **{c: row[f"{side}_{c}"] for c in SUMMARY})
        for side in ("one", "two")
    )
    if not oriented and one.customer_number > two.customer_number:
        one, two = two, one
    return DuplicatePair(
        customer=one, duplicate=two, score=float(row["score"]), reasons=row["reasons"]
    )


def _write_cursor(score: Decimal, k1: UUID, k2: UUID) -> str:
    raw = orjson.dumps([str(score), str(k1), str(k2)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str | None) -> tuple[Decimal, UUID, UUID] | None:
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
