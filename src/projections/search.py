"""The search read model: one row per customer, and the one query that searches it.

Every Customer event that changes what search shows or filters on updates the customer's
row; every other event (notes, credits, reservations, idempotency records, whatever the
log grows later) is stepped over. A batch is applied set-wise: the rows it touches are
read in one SELECT, the events are applied in log order to those rows in memory, and the
changed rows are written back in one INSERT ... ON CONFLICT. The outcome is the same as
one statement per event, at a fraction of the round trips (rebuilds replay everything).

`q` is matched three ways, and a customer matching any of them is found:
  - text: every word of `q` is a substring of (LIKE), or typo-close to a word of
    (pg_trgm `<%`), the normalised first/last name, company, DBA name and email; typos
    are looked for in words of three or more characters with a letter and no "@";
  - phone: the digits of `q` are a substring of the digits of the mobile or other phone,
    whatever formatting either side used;
  - customer number: `q` is the number itself.
Best matches come first: the rank adds 8 for the customer number, 4 for a phone match, 2 when
a word of the record starts with `q`, and trigram word similarity (at most 1), so each tier
outranks everything below it; ties newest first, then by id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor, sql

from domain.customers import Customer
from projections.base import Batch, ReadModel

__all__ = [
    "SESSION_SETTINGS",
    "TRGM_SCHEMA_QUERY",
    "WORD_SIMILARITY_THRESHOLD",
    "SearchCriteria",
    "SearchModel",
    "digits",
    "normalise",
    "search_statement",
]

TRGM_SCHEMA_QUERY = (
    "SELECT n.nspname AS schema FROM pg_extension e"
    " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
)
"""Where pg_trgm lives in this database: its operators are named with that schema."""

WORD_SIMILARITY_THRESHOLD = 0.5
"""pg_trgm's `<%` cut-off (its default is 0.6): "Lovelase" is 0.67 from "Lovelace"."""
SESSION_SETTINGS = (
    "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true),"
    " set_config('statement_timeout', %s, true)"
)
"""Run first in the search's transaction: the `<%` cut-off and a time limit (ms)."""
MAX_WORDS = 8
MIN_PHONE_DIGITS = 3

_KEPT = ("first_name", "last_name", "email", "mobile_phone", "phone", "company_name", "dba_name")
_PROFILE_FIELDS = {**{name: name for name in _KEPT}, "group": "customer_group"}
"""Profile fields search keeps, and their columns."""
_STORED = ("id", "customer_number", *_PROFILE_FIELDS.values(), "registered_at", "deleted")
_STORED += ("blocked", "addresses", "systems")
_DERIVED = ("city", "search_text", "phone_digits", "facets")
_TYPES = {"id": "uuid", "customer_number": "bigint", "registered_at": "timestamptz"}
_TYPES |= {"deleted": "boolean", "blocked": "boolean", "addresses": "jsonb", "systems": "jsonb"}
_TYPES |= {"facets": "text[]"}
"""Column types other than text, for reading a batch's rows out of JSON."""
_LIST_COLUMNS = (*_STORED[:-2], "city", "systems")
"""What a search answers with."""

Row = dict[str, Any]
_NOT_DIGITS = re.compile(r"[^0-9]+")


def normalise(text: str) -> str:
    """Case-folded, accents stripped, whitespace collapsed: how search compares text."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


def digits(text: str) -> str:
    return _NOT_DIGITS.sub("", text)


class MissingRowError(LookupError):
    """An event about a customer the read model has no row for (its registration parked)."""


class SearchModel(ReadModel):
    """Customers as the list view searches, filters and shows them."""

    name = "search"

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        self.apply_events(cursor, [(position, event)])

    def wants(self, event_class: type[Any]) -> bool:
        return event_class is Customer.Registered or event_class in _CHANGES

    def apply_events(self, cursor: Cursor[Any], batch: Batch) -> None:
        """Apply the batch's relevant events, in order, reading and writing rows once."""
        relevant = [event for _, event in batch if _matters(event)]
        if not relevant:
            return
        registered: set[UUID] = set()
        wanted: set[UUID] = set()
        for event in relevant:
            if isinstance(event, Customer.Registered):
                registered.add(event.originator_id)
            elif event.originator_id not in registered:
                wanted.add(event.originator_id)
        rows = self._load(cursor, wanted)
        for event in relevant:
            if isinstance(event, Customer.Registered):
                rows[event.originator_id] = _registered(event)
                continue
            row = rows.get(event.originator_id)
            if row is None:
                raise MissingRowError(f"no search row for customer {event.originator_id}")
            _CHANGES[type(event)](row, event)
        self._save(cursor, list(rows.values()))

    def _load(self, cursor: Cursor[Any], ids: set[UUID]) -> dict[UUID, Row]:
        if not ids:
            return {}
        cursor.execute(
            sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, _STORED)), self.table("customers")
            ),
            (list(ids),),
        )
        return {row["id"]: row for row in cursor.fetchall()}

    def _save(self, cursor: Cursor[Any], rows: list[Row]) -> None:
        columns = (*_STORED, *_DERIVED)
        records = [{c: row[c] for c in _STORED} | _derived(row) for row in rows]
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        cursor.execute(
            sql.SQL(
                "INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_to_recordset(%s::jsonb)"
                " AS r({definitions}) ON CONFLICT (id) DO UPDATE SET {updates}"
            ).format(
                table=self.table("customers"),
                names=names,
                definitions=sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_TYPES.get(c, "text")))
                    for c in columns
                ),
                updates=sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
                ),
            ),
            (orjson.dumps(records).decode(),),
        )


# ---- how each event changes a row ----------------------------------------------------------


def _registered(event: Customer.Registered) -> Row:
    profile = event.profile
    row: Row = {column: getattr(profile, name) for name, column in _PROFILE_FIELDS.items()}
    row.update(
        id=event.originator_id,
        customer_number=event.customer_number,
        registered_at=event.timestamp,
        deleted=False,
        blocked=False,
        addresses=[[str(a.address_id), a.kind, a.city] for a in event.addresses],
        systems={},
    )
    return row


def _profile_changed(row: Row, event: Customer.ProfileChanged) -> None:
    for name, value in event.changes.items():
        if name in _PROFILE_FIELDS:
            row[_PROFILE_FIELDS[name]] = value


def _address_added(row: Row, event: Customer.AddressAdded) -> None:
    address = event.address
    row["addresses"] = [*row["addresses"], [str(address.address_id), address.kind, address.city]]


def _address_removed(row: Row, event: Customer.AddressRemoved) -> None:
    removed = str(event.address_id)
    row["addresses"] = [a for a in row["addresses"] if a[0] != removed]


def _system_installed(row: Row, event: Customer.SystemInstalled) -> None:
    row["systems"] = {**row["systems"], str(event.system.system_id): event.system.system_type}


def _system_changed(row: Row, event: Customer.SystemChanged) -> None:
    row["systems"] = {**row["systems"], str(event.system_id): event.changes["system_type"]}


def _system_removed(row: Row, event: Customer.SystemRemoved) -> None:
    row["systems"] = {k: v for k, v in row["systems"].items() if k != str(event.system_id)}


_CHANGES: dict[type, Callable[[Row, Any], None]] = {
    Customer.ProfileChanged: _profile_changed,
    Customer.AddressAdded: _address_added,
    Customer.AddressRemoved: _address_removed,
    Customer.SystemInstalled: _system_installed,
    Customer.SystemChanged: _system_changed,
    Customer.SystemRemoved: _system_removed,
    Customer.Deleted: lambda row, _: row.update(deleted=True),
    Customer.Restored: lambda row, _: row.update(deleted=False),
    Customer.Blocked: lambda row, _: row.update(blocked=True),
    Customer.Unblocked: lambda row, _: row.update(blocked=False),
}


def _matters(event: Any) -> bool:
    """Whether the event changes anything search shows or filters on."""
    kind = type(event)
    if kind is Customer.Registered:
        return True
    if kind not in _CHANGES:
        return False
    if kind is Customer.ProfileChanged:
        return not _PROFILE_FIELDS.keys().isdisjoint(event.changes)
    if kind is Customer.SystemChanged:
        return "system_type" in event.changes
    return True


def _derived(row: Row) -> Row:
    """The columns computed from the stored ones: display city, search text, facets."""
    addresses = row["addresses"]
    texts = ("first_name", "last_name", "company_name", "dba_name", "email")
    text = " ".join(row[name] for name in texts if row[name])
    facets = {f"c:{normalise(city)}" for _, _, city in addresses if city}
    facets.update(f"s:{normalise(kind)}" for kind in row["systems"].values())
    if row["customer_group"]:
        facets.add(f"g:{normalise(row['customer_group'])}")
    return {
        "city": _display_city(addresses),
        "search_text": normalise(text),
        "phone_digits": " ".join(digits(p) for p in (row["mobile_phone"], row["phone"]) if p),
        "facets": sorted(facets),
    }


def _display_city(addresses: list[list[Any]]) -> str | None:
    """The first billing address's city, else the first address's that has one."""
    cities = [(kind, city) for _, kind, city in addresses if city]
    billing = [city for kind, city in cities if kind == "billing"]
    return billing[0] if billing else (cities[0][1] if cities else None)


# ---- the query -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchCriteria:
    """A search, with its registration window already resolved to instants."""

    q: str | None = None
    city: str | None = None
    system_type: str | None = None
    group: str | None = None
    registered_from: datetime | None = None
    """Inclusive."""
    registered_to: datetime | None = None
    """Exclusive."""
    include_deleted: bool = False
    phone_digits: tuple[str, ...] = ()
    """Digit strings to look for in phone numbers (the gateway adds q's E.164 form)."""


def search_statement(
    schema: str,
    trgm_schema: str,
    criteria: SearchCriteria,
    *,
    after: tuple[Any, ...] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT for one page, and its parameters.

    Rows carry `rank` (with `q`) so the caller can build the next page's key: after a
    page, pass (rank, registered_at, id) of its last row with `q`, else (registered_at, id).
    """
    params: dict[str, Any] = {"limit": limit}
    where: list[sql.Composable] = []
    if not criteria.include_deleted:
        where.append(sql.SQL("NOT c.deleted"))
    if criteria.registered_from is not None:
        params["registered_from"] = criteria.registered_from
        where.append(sql.SQL("c.registered_at >= %(registered_from)s"))
    if criteria.registered_to is not None:
        params["registered_to"] = criteria.registered_to
        where.append(sql.SQL("c.registered_at < %(registered_to)s"))
    wanted = {"c": criteria.city, "s": criteria.system_type, "g": criteria.group}
    facets = [f"{prefix}:{normalise(value)}" for prefix, value in wanted.items() if value]
    if facets:
        params["facets"] = facets
        where.append(sql.SQL("c.facets @> %(facets)s::text[]"))
    columns = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in _LIST_COLUMNS)
    table = sql.Identifier(schema, "customers")
    q = normalise(criteria.q or "")
    if not q:
        if after is not None:
            params["after_at"], params["after_id"] = after
            where.append(sql.SQL("(c.registered_at, c.id) < (%(after_at)s, %(after_id)s)"))
        statement = sql.SQL(
            "SELECT {columns} FROM {table} c WHERE {where}"
            " ORDER BY c.registered_at DESC, c.id DESC LIMIT %(limit)s"
        ).format(columns=columns, table=table, where=_all(where))
        return statement, params
    match, rank = _q_match(q, criteria, sql.Identifier(trgm_schema), params)
    where.append(match)
    keyset = sql.SQL("")
    if after is not None:
        params["after_rank"], params["after_at"], params["after_id"] = after
        keyset = sql.SQL(
            " WHERE (m.rank, m.registered_at, m.id) < (%(after_rank)s, %(after_at)s, %(after_id)s)"
        )
    statement = sql.SQL(
        "SELECT * FROM (SELECT {columns}, ({rank})::float8 AS rank FROM {table} c WHERE {where}) m"
        "{keyset} ORDER BY m.rank DESC, m.registered_at DESC, m.id DESC LIMIT %(limit)s"
    ).format(columns=columns, rank=rank, table=table, where=_all(where), keyset=keyset)
    return statement, params


def _q_match(
    q: str, criteria: SearchCriteria, trgm: sql.Identifier, params: dict[str, Any]
) -> tuple[sql.Composable, sql.Composable]:
    """The WHERE condition for `q` (normalised) and its rank expression."""
    words = q.split()[:MAX_WORDS]
    each_word: list[sql.Composable] = []
    for i, word in enumerate(words):
        params[f"like{i}"] = f"%{_like_escaped(word)}%"
        condition = sql.SQL("c.search_text LIKE %({})s").format(sql.SQL(f"like{i}"))
        # Typos are looked for in words: digits are phone or customer numbers and an email
        # address is typed whole (its domain alone would be close to thousands of others);
        # shorter words have no trigram of their own to be close to.
        if len(word) >= 3 and "@" not in word and any(ch.isalpha() for ch in word):
            params[f"word{i}"] = word
            condition = sql.SQL("({} OR %({})s OPERATOR({}.<%%) c.search_text)").format(
                condition, sql.SQL(f"word{i}"), trgm
            )
        each_word.append(condition)
    arms: list[sql.Composable] = [_all(each_word)]
    params["q"] = " ".join(words)
    params["word_start"] = f"% {_like_escaped(params['q'])}%"
    rank: list[sql.Composable] = [
        sql.SQL("CASE WHEN ' ' || c.search_text LIKE %(word_start)s THEN 2 ELSE 0 END")
    ]
    if len(params["q"]) >= 3:  # a shorter q is close to everything that contains it
        rank.append(sql.SQL("{}.word_similarity(%(q)s, c.search_text)::float8").format(trgm))
    phones = [p for p in dict.fromkeys(criteria.phone_digits) if len(p) >= MIN_PHONE_DIGITS]
    if phones:
        phone_match = sql.SQL(" OR ").join(
            sql.SQL("c.phone_digits LIKE %({})s").format(sql.SQL(f"phone{i}"))
            for i in range(len(phones))
        )
        params.update({f"phone{i}": f"%{p}%" for i, p in enumerate(phones)})
        arms.append(phone_match)
        rank.append(sql.SQL("CASE WHEN {} THEN 4 ELSE 0 END").format(phone_match))
    number = q.removeprefix("#")
    if number.isascii() and number.isdigit() and len(number) <= 18:
        params["number"] = int(number)
        arms.append(sql.SQL("c.customer_number = %(number)s"))
        rank.append(sql.SQL("CASE WHEN c.customer_number = %(number)s THEN 8 ELSE 0 END"))
    match = sql.SQL("({})").format(sql.SQL(" OR ").join(arms))
    return match, sql.SQL(" + ").join(rank)


def _all(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("true")
    return sql.SQL(" AND ").join(conditions)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
