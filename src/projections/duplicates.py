"""The duplicates read model: pairs of customers that are likely one, with score and reasons.

Three tables: `customers` holds, per customer, the facts compared (profile values,
contacts' emails and phones, addresses) and what a list shows of it; `match_keys` the
normalised identifying values of every active customer (`domain.duplicates.match_keys`),
btree-indexed by (kind, key); `pairs` one row per unordered pair (low id < high id) with
its score (0 to 1) and reasons (`domain.duplicates.assess`).

A batch is applied set-wise, in four statements whatever its size: the customers it
touches are read once and changed in memory in log order; then their pairs and keys are
deleted (an erased customer's row too), their rows and keys written back, the customers
sharing a key with them found by one join on `match_keys`, scored, and their pairs
inserted. Every pair of a customer is recomputed whenever the customer changes and a
pair's score depends on its two customers alone, so the tables are a function of the
customers' current facts: a rebuild gives what the increments gave.

A deleted customer keeps its row but no keys: it leaves every pair and comes back into
them when restored. An erased one leaves nothing here at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor, sql

from domain.customers import Customer
from domain.duplicates import assess, full_name, match_keys
from projections.base import Batch, ReadModel
from projections.search_query import TRGM_SCHEMA_QUERY

__all__ = ["COMPARED_FIELDS", "DuplicatesModel", "row_keys", "trgm_schema"]

COMPARED_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "mobile_phone",
    "phone",
    "company_name",
    "dba_name",
    "tax_id",
)
"""Profile fields the match keys and names come from."""

Row = dict[str, Any]
_ERASED = "_erased"
"""Marks a row to delete rather than write back."""


class MissingRowError(LookupError):
    """An event about a customer the read model has no row for (its registration parked)."""


class DuplicatesModel(ReadModel):
    """Likely duplicate customers, as staff review them before a merge."""

    name = "duplicates"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trgm: str | None = None

    def wants(self, event_class: type[Any]) -> bool:
        return event_class is Customer.Registered or event_class in _CHANGES

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        self.apply_events(cursor, [(position, event)])

    def apply_events(self, cursor: Cursor[Any], batch: Batch) -> None:
        relevant = [event for _, event in batch if _matters(event)]
        if not relevant:
            return
        registered = {e.originator_id for e in relevant if isinstance(e, Customer.Registered)}
        rows = self._load(cursor, {e.originator_id for e in relevant} - registered)
        for event in relevant:
            if isinstance(event, Customer.Registered):
                rows[event.originator_id] = _registered(event)
                continue
            row = rows.get(event.originator_id)
            if row is None:
                raise MissingRowError(f"no duplicates row for customer {event.originator_id}")
            _CHANGES[type(event)](row, event)
        self._save(cursor, rows)

    # ---- reading and writing a batch's customers ---------------------------------------------

    def _load(self, cursor: Cursor[Any], ids: set[UUID]) -> dict[UUID, Row]:
        if not ids:
            return {}
        cursor.execute(
            sql.SQL(
                "SELECT customer_id, customer_number, active, facts FROM {}"
                " WHERE customer_id = ANY(%s)"
            ).format(self.table("customers")),
            (list(ids),),
        )
        return {
            row["customer_id"]: {
                "customer_id": row["customer_id"],
                "customer_number": row["customer_number"],
                "active": row["active"],
                **row["facts"],
            }
            for row in cursor.fetchall()
        }

    def _save(self, cursor: Cursor[Any], rows: dict[UUID, Row]) -> None:
        changed = list(rows)
        erased = [i for i, row in rows.items() if row.get(_ERASED)]
        kept = [row for row in rows.values() if not row.get(_ERASED)]
        cursor.execute(
            sql.SQL(
                "WITH pairs AS (DELETE FROM {pairs}"
                " WHERE low = ANY(%(ids)s) OR high = ANY(%(ids)s)),"
                " keys AS (DELETE FROM {keys} WHERE customer_id = ANY(%(ids)s))"
                " DELETE FROM {customers} WHERE customer_id = ANY(%(erased)s)"
            ).format(
                pairs=self.table("pairs"),
                keys=self.table("match_keys"),
                customers=self.table("customers"),
            ),
            {"ids": changed, "erased": erased},
        )
        if not kept:
            return
        records = [_record(row) for row in kept]
        keys = [
            {"customer_id": row["customer_id"], "kind": k.kind, "key": k.key, "source": k.source}
            for row in kept
            if row["active"]
            for k in sorted(row_keys(row))
        ]
        cursor.execute(
            sql.SQL(
                "WITH written AS (INSERT INTO {customers} (customer_id, customer_number, active,"
                " first_name, last_name, email, mobile_phone, city, full_name, facts)"
                " SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(customer_id uuid,"
                " customer_number bigint, active boolean, first_name text, last_name text,"
                " email text, mobile_phone text, city text, full_name text, facts jsonb)"
                " ON CONFLICT (customer_id) DO UPDATE SET active = EXCLUDED.active,"
                " first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,"
                " email = EXCLUDED.email, mobile_phone = EXCLUDED.mobile_phone,"
                " city = EXCLUDED.city, full_name = EXCLUDED.full_name, facts = EXCLUDED.facts)"
                " INSERT INTO {keys} (customer_id, kind, key, source)"
                " SELECT * FROM jsonb_to_recordset(%(keys)s::jsonb)"
                " AS k(customer_id uuid, kind text, key text, source text)"
            ).format(customers=self.table("customers"), keys=self.table("match_keys")),
            {"rows": _json(records), "keys": _json(keys)},
        )
        active = [row["customer_id"] for row in kept if row["active"]]
        if active:
            self._pair(cursor, active)

    def _pair(self, cursor: Cursor[Any], ids: list[UUID]) -> None:
        """Find, score and insert the pairs of these (active) customers."""
        cursor.execute(
            sql.SQL(
                "SELECT k1.customer_id AS one, k2.customer_id AS other,"
                " jsonb_agg(DISTINCT jsonb_build_array(k1.kind, k1.source, k2.source)) AS matches,"
                " {trgm}.similarity(c1.full_name, c2.full_name) AS name_similarity"
                " FROM {keys} k1 JOIN {keys} k2 ON k2.kind = k1.kind AND k2.key = k1.key"
                " AND k2.customer_id <> k1.customer_id"
                " JOIN {customers} c1 ON c1.customer_id = k1.customer_id"
                " JOIN {customers} c2 ON c2.customer_id = k2.customer_id"
                " WHERE k1.customer_id = ANY(%s)"
                " GROUP BY k1.customer_id, k2.customer_id, c1.full_name, c2.full_name"
            ).format(
                trgm=sql.Identifier(self.trgm_schema(cursor)),
                keys=self.table("match_keys"),
                customers=self.table("customers"),
            ),
            (ids,),
        )
        pairs: dict[tuple[UUID, UUID], Row] = {}
        for found in cursor.fetchall():
            low, high = sorted((found["one"], found["other"]))
            if (low, high) in pairs:
                continue  # both of the pair changed in this batch: found from either side
            assessment = assess(map(tuple, found["matches"]), found["name_similarity"])
            if assessment is not None:
                pairs[low, high] = {
                    "low": low,
                    "high": high,
                    "score": assessment.score,
                    "reasons": assessment.reasons,
                }
        if pairs:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (low, high, score, reasons) SELECT * FROM"
                    " jsonb_to_recordset(%s::jsonb)"
                    " AS p(low uuid, high uuid, score numeric, reasons jsonb)"
                ).format(self.table("pairs")),
                (_json(list(pairs.values())),),
            )

    def trgm_schema(self, cursor: Cursor[Any]) -> str:
        if self._trgm is None:
            self._trgm = trgm_schema(cursor)
        return self._trgm


def trgm_schema(cursor: Cursor[Any]) -> str:
    """The schema pg_trgm's functions live in (wherever the first migrator created it)."""
    cursor.execute(TRGM_SCHEMA_QUERY)
    found = cursor.fetchone()
    if found is None:
        raise LookupError("the pg_trgm extension is not installed")
    return str(found["schema"])


def row_keys(row: Row) -> set[Any]:
    """The match keys of a customer's facts."""
    return match_keys(
        row["values"],
        contacts=[(email, phone) for _, email, phone in row["contacts"]],
        addresses=[(line1, postal, city) for _, _, line1, postal, city in row["addresses"]],
    )


# ---- how each event changes a customer's facts ----------------------------------------------


def _registered(event: Customer.Registered) -> Row:
    profile = event.profile
    return {
        "customer_id": event.originator_id,
        "customer_number": event.customer_number,
        "active": True,
        "values": {name: getattr(profile, name) for name in COMPARED_FIELDS},
        "contacts": [],
        "addresses": [
            [str(a.address_id), a.kind, a.line1, a.postal_code, a.city] for a in event.addresses
        ],
    }


def _profile_changed(row: Row, event: Customer.ProfileChanged) -> None:
    row["values"] = {
        **row["values"],
        **{k: v for k, v in event.changes.items() if k in COMPARED_FIELDS},
    }


def _contact_added(row: Row, event: Customer.ContactAdded) -> None:
    contact = event.contact
    row["contacts"] = [*row["contacts"], [str(contact.contact_id), contact.email, contact.phone]]


def _contact_removed(row: Row, event: Customer.ContactRemoved) -> None:
    row["contacts"] = [c for c in row["contacts"] if c[0] != str(event.contact_id)]


def _address_added(row: Row, event: Customer.AddressAdded) -> None:
    a = event.address
    row["addresses"] = [
        *row["addresses"],
        [str(a.address_id), a.kind, a.line1, a.postal_code, a.city],
    ]


def _address_removed(row: Row, event: Customer.AddressRemoved) -> None:
    row["addresses"] = [a for a in row["addresses"] if a[0] != str(event.address_id)]


_CHANGES: dict[type, Callable[[Row, Any], None]] = {
    Customer.ProfileChanged: _profile_changed,
    Customer.ContactAdded: _contact_added,
    Customer.ContactRemoved: _contact_removed,
    Customer.AddressAdded: _address_added,
    Customer.AddressRemoved: _address_removed,
    Customer.Deleted: lambda row, _: row.update(active=False),
    Customer.Restored: lambda row, _: row.update(active=True),
    Customer.Erased: lambda row, _: row.update({_ERASED: True}),
    # Merge hook: a customer merged into another leaves every pair, as a deleted one does
    # (`Customer.Merged: lambda row, _: row.update(active=False)`), once that event exists.
}


def _matters(event: Any) -> bool:
    kind = type(event)
    if kind is Customer.ProfileChanged:
        return not set(COMPARED_FIELDS).isdisjoint(event.changes)
    return kind is Customer.Registered or kind in _CHANGES


def _record(row: Row) -> Row:
    """The stored columns of a customer's row: what lists show, and the facts."""
    values = row["values"]
    return {
        "customer_id": row["customer_id"],
        "customer_number": row["customer_number"],
        "active": row["active"],
        "first_name": values["first_name"],
        "last_name": values["last_name"],
        "email": values["email"],
        "mobile_phone": values["mobile_phone"],
        "city": _display_city(row["addresses"]),
        "full_name": full_name(values["first_name"], values["last_name"]),
        "facts": {k: row[k] for k in ("values", "contacts", "addresses")},
    }


def _display_city(addresses: list[list[Any]]) -> str | None:
    """The first billing address's city, else the first address's that has one (as search)."""
    cities = [(kind, city) for _, kind, _, _, city in addresses if city]
    billing = [city for kind, city in cities if kind == "billing"]
    return billing[0] if billing else (cities[0][1] if cities else None)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
