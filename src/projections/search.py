"""The search read model: one row per customer, and the one query that searches it.

Every Customer event that changes what search shows or filters on updates the customer's
row; every other event (notes, credits, reservations, idempotency records, whatever the
log grows later) is stepped over. A batch is applied set-wise: the rows it touches are
read in one SELECT, the events are applied in log order to those rows in memory, and the
changed rows are written back in one INSERT ... ON CONFLICT. The outcome is the same as
one statement per event, at a fraction of the round trips (rebuilds replay everything).

The query that searches these rows, and how it compares text, is in
`projections.search_query` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor, sql

from domain.customers import Customer
from projections.base import Batch, ReadModel
from projections.search_query import (
    SESSION_SETTINGS,
    TRGM_SCHEMA_QUERY,
    SearchCriteria,
    digits,
    normalise,
    search_statement,
)
from projections.search_words import WordChanges, words_of

__all__ = [
    "SESSION_SETTINGS",
    "TRGM_SCHEMA_QUERY",
    "SearchCriteria",
    "SearchModel",
    "digits",
    "normalise",
    "search_statement",
]

_KEPT = ("first_name", "last_name", "email", "mobile_phone", "phone", "company_name", "dba_name")
_PROFILE_FIELDS = {**{name: name for name in _KEPT}, "group": "customer_group"}
"""Profile fields search keeps, and their columns."""
_STORED = ("id", "customer_number", *_PROFILE_FIELDS.values(), "registered_at", "deleted")
_STORED += ("blocked", "addresses", "systems", "merged_into")
_DERIVED = ("city", "search_text", "phone_digits", "facets")
_TYPES = {"id": "uuid", "customer_number": "bigint", "registered_at": "timestamptz"}
_TYPES |= {"deleted": "boolean", "blocked": "boolean", "addresses": "jsonb", "systems": "jsonb"}
_TYPES |= {"facets": "text[]", "merged_into": "uuid"}
"""Column types other than text, for reading a batch's rows out of JSON."""

Row = dict[str, Any]
_ERASED = "_erased"
"""Marks a row to delete rather than write back."""


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
        words_before = {id: words_of(_search_text(row)) for id, row in rows.items()}
        for event in relevant:
            if isinstance(event, Customer.Registered):
                rows[event.originator_id] = _registered(event)
                continue
            row = rows.get(event.originator_id)
            if row is None:
                raise MissingRowError(f"no search row for customer {event.originator_id}")
            _CHANGES[type(event)](row, event)
        words = WordChanges()
        texts: dict[UUID, str] = {}
        for id, row in rows.items():
            if not row.get(_ERASED):
                texts[id] = _search_text(row)
            after = words_of(texts[id]) if id in texts else set()
            words.change(id, row["registered_at"], words_before.get(id, set()), after)
        self._save(cursor, list(rows.values()), texts)
        words.save(cursor, self.schema)

    def _load(self, cursor: Cursor[Any], ids: set[UUID]) -> dict[UUID, Row]:
        if not ids:
            return {}
        cursor.execute(
            sql.SQL("SELECT {} FROM {} WHERE id = ANY(%b::uuid[])").format(
                sql.SQL(", ").join(map(sql.Identifier, _STORED)), self.table("customers")
            ),
            (list(ids),),
        )
        return {row["id"]: row for row in cursor.fetchall()}

    def _save(self, cursor: Cursor[Any], rows: list[Row], texts: dict[UUID, str]) -> None:
        erased = [row["id"] for row in rows if row.get(_ERASED)]
        if erased:
            # An erased customer is no longer found at all: its row goes.
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%b::uuid[])").format(
                    self.table("customers")
                ),
                (erased,),
            )
            rows = [row for row in rows if not row.get(_ERASED)]
            if not rows:
                return
        columns = (*_STORED, *_DERIVED)
        records = [{c: row[c] for c in _STORED} | _derived(row, texts[row["id"]]) for row in rows]
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
        merged_into=None,
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


def _merged(row: Row, event: Customer.Merged) -> None:
    for name, value in event.profile.items():
        if name in _PROFILE_FIELDS:
            row[_PROFILE_FIELDS[name]] = value
    added = [[str(a.address_id), a.kind, a.city] for a in event.addresses]
    row["addresses"] = [*row["addresses"], *added]
    row["systems"] = {**row["systems"], **{str(s.system_id): s.system_type for s in event.systems}}


def _unmerged(row: Row, event: Customer.Unmerged) -> None:
    for name, value in event.profile.items():
        if name in _PROFILE_FIELDS:
            row[_PROFILE_FIELDS[name]] = value
    gone = {str(i) for i in (*event.address_ids, *event.system_ids)}
    row["addresses"] = [a for a in row["addresses"] if a[0] not in gone]
    row["systems"] = {k: v for k, v in row["systems"].items() if k not in gone}


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
    Customer.Erased: lambda row, _: row.update({_ERASED: True}),
    Customer.Merged: _merged,
    Customer.Unmerged: _unmerged,
    Customer.MergedInto: lambda row, event: row.update(merged_into=event.survivor_id),
    Customer.UnmergedFrom: lambda row, _: row.update(merged_into=None),
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


def _derived(row: Row, search_text: str) -> Row:
    """The columns computed from the stored ones: display city, search text, facets."""
    addresses = row["addresses"]
    facets = {f"c:{normalise(city)}" for _, _, city in addresses if city}
    facets.update(f"s:{normalise(kind)}" for kind in row["systems"].values())
    if row["customer_group"]:
        facets.add(f"g:{normalise(row['customer_group'])}")
    return {
        "city": _display_city(addresses),
        "search_text": search_text,
        "phone_digits": " ".join(digits(p) for p in (row["mobile_phone"], row["phone"]) if p),
        "facets": sorted(facets),
    }


def _search_text(row: Row) -> str:
    texts = ("first_name", "last_name", "company_name", "dba_name", "email")
    return normalise(" ".join(row[name] for name in texts if row[name]))


def _display_city(addresses: list[list[Any]]) -> str | None:
    """The first billing address's city, else the first address's that has one."""
    cities = [(kind, city) for _, kind, city in addresses if city]
    billing = [city for kind, city in cities if kind == "billing"]
    return billing[0] if billing else (cities[0][1] if cities else None)
