"""`GET /v1/customers`: search the search read model, one keyset page at a time.

The handler validates the query string, checks the cursor, waits for `min_position`, and
runs the one statement `projections.search` builds on the async read pool. Cursors are
opaque: the page's last sort key, the search they belong to and the moment the first page
was asked (so a relative window does not slide between pages), signed with an HMAC keyed
from the JWT secret, so a forged or edited cursor is refused (422) instead of trusted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID

import orjson
import psycopg
from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from domain.errors import RuleViolationError
from domain.values import normalise_phone
from gateway.auth import requires
from gateway.keys import SETTINGS_KEY
from gateway.operations import operation
from gateway.problems import RETRY_AFTER_SECONDS, FieldError, Problem
from gateway.reads import ReadQuery, read_pool, wait_for_position
from gateway.requests import json_response, parse_query
from projections.base import read_model_schema
from projections.search import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    SearchCriteria,
    digits,
    normalise,
    search_statement,
)

__all__ = [
    "SearchFilters",
    "SearchItem",
    "SearchPage",
    "SearchQuery",
    "add_routes",
    "effective_q",
    "search_criteria",
]

DEFAULT_WINDOW_DAYS = 30
MAX_LIMIT = 200
STATEMENT_TIMEOUT_MS = 5000
_PHONE_LIKE = re.compile(r"[\d\s()+\-./]+")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,1000}\.[A-Za-z0-9_-]{22}")
_FILTERS = (
    "q",
    "city",
    "system_type",
    "group",
    "registered_within_days",
    "registered_after",
    "registered_before",
    "include_deleted",
)
"""What a cursor is bound to: the same search, whatever the page size or the wait."""


def _instant(value: Any) -> Any:
    """A date (midnight UTC) or an RFC 3339 time with an offset, from a query string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise ValueError("not a valid date") from None
    # An unencoded "+02:00" arrives as " 02:00" (a query string's "+" is a space).
    text = re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date (YYYY-MM-DD) or an RFC 3339 time with an offset") from None
    if parsed.tzinfo is None:
        raise ValueError("a time needs an offset, such as Z or +02:00")
    return parsed


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [{"format": "date"}, {"format": "date-time"}],
            "examples": ["2025-01-31", "2025-01-31T09:00:00+01:00"],
        }
    ),
]
Text = Annotated[str, Field(max_length=200)]


class SearchFilters(ReadQuery):
    """Which customers a search covers: the filters search and export share."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, use_attribute_docstrings=True
    )

    q: Text | None = None
    """Name, email, phone (any formatting), customer number, company or DBA name."""
    city: Text | None = None
    """The city of any of the customer's addresses (case and accents ignored)."""
    system_type: Text | None = None
    """The type of any installed system (case and accents ignored)."""
    group: Text | None = None
    """The customer's group (case and accents ignored)."""
    registered_within_days: int | None = Field(default=None, ge=1, le=36_500)
    """Registered in the last n days (30 without q and without another window)."""
    registered_after: Instant | None = None
    """Registered at or after this time (a date means its midnight UTC)."""
    registered_before: Instant | None = None
    """Registered before this time (a date means its midnight UTC)."""
    include_deleted: bool = False
    """Also list soft-deleted customers."""

    @field_validator("q", "city", "system_type", "group")
    @classmethod
    def _blank_is_absent(cls, value: str | None) -> str | None:
        if value and "\x00" in value:  # PostgreSQL text cannot hold it
            raise ValueError("must not contain NUL characters")
        return value or None


class SearchQuery(SearchFilters):
    """The query string of `GET /v1/customers`."""

    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    """Items per page, at most 200."""
    cursor: Annotated[str, Field(max_length=1100)] | None = None
    """`next_cursor` of the previous page, with the same search parameters."""

    @field_validator("cursor")
    @classmethod
    def _blank_cursor_is_absent(cls, value: str | None) -> str | None:
        if value and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value or None


class SearchItem(BaseModel):
    """One customer as the list view shows it."""

    id: UUID
    customer_number: int
    first_name: str
    last_name: str | None
    email: str | None
    mobile_phone: str | None
    phone: str | None
    company_name: str | None
    dba_name: str | None
    group: str | None
    city: str | None
    """The first billing address's city, else the first address's that has one."""
    system_types: list[str]
    registered_at: datetime
    deleted: bool
    blocked: bool


class SearchPage(BaseModel):
    items: list[SearchItem]
    next_cursor: str | None
    """Pass as `cursor` (with the same parameters) for the next page; null on the last."""


DESCRIPTION = f"""\
Searches the search read model (eventually consistent: pass `min_position` to read your writes).

**q** finds a customer when every word of it is a substring of the first or last name, company
name, DBA name or email, or (a word of four or more letters) a typo away from ONE word of the
names, company or DBA name: one letter wrong, missing, added or moved (two letters swapped),
never more ("Lovelase", "Lovleace", "Lovelce" and "Loveleace" find "Lovelace", "jonh" finds
"John", "Hertwell" finds "Hartwell" but not "Hartwelling"; "jon smiht" finds Jon Smith; one
typo'd word a query), never letters spread over several words; or when its digits appear in
the mobile or other phone number, however either was formatted ("(415) 555-2671",
"415-555-2671" and "+14155552671" find the same customer); or when it is the customer number.
With q, best matches come first: the customer number, then a phone match, then q as whole
words, then a word starting with q, then the rest by how close q is to whole words of the
customer (pg_trgm strict word similarity; a word with q's letters in another order first);
equal matches newest first.

**Without q, the list is newest first and covers the last {DEFAULT_WINDOW_DAYS} days of
registrations by default**: when none of `registered_within_days`, `registered_after` and
`registered_before` is given, `registered_within_days={DEFAULT_WINDOW_DAYS}` applies (the list
view's default). Give any of them (e.g. `registered_after=1970-01-01`) to choose another window.
With q there is no default window. Windows combine: all given bounds apply.
`registered_after` is inclusive and `registered_before` exclusive; a date means its midnight
UTC. The days of `registered_within_days` are counted back from the first page's request.

`city`, `system_type` and `group` match exactly, ignoring case and accents; `city` matches
any of the customer's addresses. Soft-deleted customers are left out unless
`include_deleted=true`. `limit` is 1 to {MAX_LIMIT} (default 50); `next_cursor` is opaque and
only valid with the same search parameters. Unknown parameters and bad values answer 422
naming the parameter.
"""


@dataclass
class _SearchState:
    """What the handler learns once per app: where pg_trgm's operators live."""

    trgm_schema: str | None = None


_STATE = web.AppKey("search_state", _SearchState)
_CURSOR_KEY = TypeAdapter(tuple[str, AwareDatetime, float | None, AwareDatetime, UUID])


def add_routes(app: web.Application) -> None:
    app[_STATE] = _SearchState()
    app.router.add_get("/v1/customers", search_customers)


@operation(
    "Search customers",
    tag="customers",
    description=DESCRIPTION,
    query=SearchQuery,
    responses={200: SearchPage},
)
@requires("admin", "staff", "service")
async def search_customers(request: web.Request) -> web.Response:
    query = parse_query(request, SearchQuery)
    q = effective_q(query)
    fingerprint = _fingerprint(query)
    anchor, after = datetime.now(UTC), None
    if query.cursor is not None:
        anchor, after = _read_cursor(request, query.cursor, fingerprint, has_q=q is not None)
    criteria = search_criteria(request, query, anchor)
    await wait_for_position(request, "search", query)
    rows = await _fetch(request, criteria, after, query.limit + 1)
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        key = (last.get("rank"), last["registered_at"], last["id"])
        next_cursor = _write_cursor(request, fingerprint, anchor, key)
    return json_response(SearchPage(items=[_item(r) for r in page], next_cursor=next_cursor))


def effective_q(query: SearchFilters) -> str | None:
    """The search's q, after checking the window (422 for an empty one)."""
    if (
        query.registered_after is not None
        and query.registered_before is not None
        and query.registered_before <= query.registered_after
    ):
        raise _invalid("registered_before", "must be later than registered_after")
    # A q of only accents or spaces is no q at all, for the window as for the ranking.
    return query.q if query.q and normalise(query.q) else None


def search_criteria(request: web.Request, query: SearchFilters, anchor: datetime) -> SearchCriteria:
    """The filters resolved to a `SearchCriteria`; windows are counted back from `anchor`."""
    q = effective_q(query)
    days = query.registered_within_days
    windowed = days is not None or query.registered_after or query.registered_before
    if not windowed and q is None:
        days = DEFAULT_WINDOW_DAYS
    lower = [b for b in (query.registered_after,) if b is not None]
    if days is not None:
        lower.append(anchor - timedelta(days=days))
    return SearchCriteria(
        q=q,
        city=query.city,
        system_type=query.system_type,
        group=query.group,
        registered_from=max(lower) if lower else None,
        registered_to=query.registered_before,
        include_deleted=query.include_deleted,
        phone_digits=_phone_digits(request, q),
    )


def _phone_digits(request: web.Request, q: str | None) -> tuple[str, ...]:
    """The digits to look for in phone numbers: as typed, and as E.164 when q is a number."""
    if not q or not _PHONE_LIKE.fullmatch(q):
        return ()
    candidates = [digits(q)]
    region = getattr(request.app[SETTINGS_KEY], "default_phone_region", "US")
    with contextlib.suppress(RuleViolationError):  # not a valid number: as typed only
        candidates.append(digits(normalise_phone(q, region, field_name="q")))
    return tuple(dict.fromkeys(candidates))


async def _fetch(
    request: web.Request, criteria: SearchCriteria, after: tuple[Any, ...] | None, limit: int
) -> list[dict[str, Any]]:
    schema = read_model_schema(request.app[SETTINGS_KEY].db_schema, "search")
    state = request.app[_STATE]
    try:
        async with read_pool(request).connection() as connection:
            if state.trgm_schema is None:
                found = await (await connection.execute(TRGM_SCHEMA_QUERY)).fetchone()
                if found is None:
                    raise _not_ready()
                state.trgm_schema = found["schema"]
            statement, params = search_statement(
                schema, state.trgm_schema, criteria, after=after, limit=limit
            )
            async with connection.transaction():
                await connection.execute(SESSION_SETTINGS, (str(STATEMENT_TIMEOUT_MS),))
                cursor = await connection.execute(statement, params)
                rows: list[dict[str, Any]] = await cursor.fetchall()
                return rows
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise _not_ready() from None


def _item(row: dict[str, Any]) -> SearchItem:
    return SearchItem(
        **{k: v for k, v in row.items() if k not in ("customer_group", "systems", "rank")},
        group=row["customer_group"],
        system_types=sorted(set(row["systems"].values())),
    )


# ---- cursors -----------------------------------------------------------------------------------


def _fingerprint(query: SearchQuery) -> str:
    search = query.model_dump(mode="json", include=set(_FILTERS))
    return hashlib.sha256(orjson.dumps(search, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _write_cursor(
    request: web.Request, fingerprint: str, anchor: datetime, key: tuple[Any, ...]
) -> str:
    payload = orjson.dumps([fingerprint, anchor, *key[:2], str(key[2])])
    tag = hmac.digest(_cursor_key(request), payload, "sha256")[:16]
    return f"{_b64(payload)}.{_b64(tag)}"


def _read_cursor(
    request: web.Request, cursor: str, fingerprint: str, *, has_q: bool
) -> tuple[datetime, tuple[Any, ...]]:
    """The first page's moment and the last sort key of the previous page; else a 422."""
    if not _CURSOR.fullmatch(cursor):
        raise _invalid("cursor", "not a cursor from a previous page")
    encoded, _, encoded_tag = cursor.partition(".")
    try:
        payload, tag = _unb64(encoded), _unb64(encoded_tag)
    except (binascii.Error, ValueError):
        raise _invalid("cursor", "not a cursor from a previous page") from None
    if not hmac.compare_digest(tag, hmac.digest(_cursor_key(request), payload, "sha256")[:16]):
        raise _invalid("cursor", "not a cursor from a previous page")
    try:
        bound_to, anchor, rank, registered_at, last_id = _CURSOR_KEY.validate_json(payload)
    except ValidationError:
        raise _invalid("cursor", "not a cursor from a previous page") from None
    if bound_to != fingerprint or (rank is not None) != has_q:
        raise _invalid("cursor", "belongs to a search with other parameters")
    if rank is None:
        return anchor, (registered_at, last_id)
    return anchor, (rank, registered_at, last_id)


def _cursor_key(request: web.Request) -> bytes:
    secret = request.app[SETTINGS_KEY].jwt_secret
    assert secret is not None  # protected routes answer 401 without one
    return hmac.digest(secret.get_secret_value().encode(), b"search cursor", "sha256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        f"invalid query parameters: {field}",
        errors=[FieldError(field=field, message=message)],
    )


def _not_ready() -> Problem:
    return Problem(
        503,
        "The search view is not built yet; a projection worker creates it.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
