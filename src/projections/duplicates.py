"""The duplicates read model: pairs of customers that are likely one, with score and reasons.

Three tables: `customers` holds, per customer, the facts compared (profile values,
contacts' emails and phones, addresses) and what a list shows of it; `match_keys` the
normalised identifying values of every active customer (`domain.duplicates.match_keys`),
btree-indexed by (kind, key); `pairs` one row per unordered pair (low id < high id) with
its score (0 to 1) and reasons (`domain.duplicates.assess`).

A key held by more than `MAX_HOLDERS` customers is common (a company's name on all its
staff's records, a placeholder phone): it identifies nobody and no pair counts it.

A batch is applied set-wise, in five statements at most whatever its size: the customers
it touches are read once and changed in memory in log order; in one statement their
pairs and keys are deleted (an erased customer's row too) and the holders of the keys
they had or have counted; their rows and keys are written back; then the customers
sharing a usable key with them are found by one join on `match_keys` (an index lookup
per key), scored, and their pairs inserted. A key that became common, or stopped being
so, has its other holders (at most `MAX_HOLDERS` of them) re-paired too. So every pair
is recomputed whenever one of its customers or a key it counts changes, and a pair's
score depends on its two customers and whether their shared keys are common: the tables
are a function of the customers' current facts, and a rebuild gives what the increments
gave.

A deleted customer, or one merged into another, keeps its row but no keys: it leaves every
pair and comes back into them when restored (or unmerged). An erased one leaves nothing
here at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor, sql

from domain.customers import Customer
from domain.duplicates import assess, full_name, match_keys
from projections.base import Batch, ReadModel
from projections.search_query import TRGM_SCHEMA_QUERY

__all__ = [
    "COMPARED_FIELDS",
    "MAX_HOLDERS",
    "DuplicatesModel",
    "holder_limits",
    "holders_count",
    "row_keys",
    "trgm_schema",
]

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

MAX_HOLDERS = 20
"""A key more customers than this share (one company's name on the records of all its
staff, a placeholder phone) identifies none of them: no pair counts it. It also bounds
the work of a registration: a key never brings more than this many candidates."""

Row = dict[str, Any]
Key = tuple[str, str]
"""(kind, key) of a match key."""
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
        before = _holdings(rows.values())
        for event in relevant:
            if isinstance(event, Customer.Registered):
                rows[event.originator_id] = _registered(event)
                continue
            row = rows.get(event.originator_id)
            if row is None:
                raise MissingRowError(f"no duplicates row for customer {event.originator_id}")
            _CHANGES[type(event)](row, event)
        self._save(cursor, rows, before)

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

    def _save(self, cursor: Cursor[Any], rows: dict[UUID, Row], before: Counter[Key]) -> None:
        """Write the batch's customers back; re-pair them, and the holders of every key that
        became common or stopped being so. `before`: how many of them held each key."""
        changed = list(rows)
        erased = [i for i, row in rows.items() if row.get(_ERASED)]
        kept = [row for row in rows.values() if not row.get(_ERASED)]
        active_rows = [row for row in kept if row["active"]]
        after = _holdings(active_rows)
        touched = set(before) | set(after)
        # Counted up to `cap` in the state before the batch, in the statement that deletes
        # the batch's old rows (one snapshot): below `cap` the count after the batch is
        # exact arithmetic; at `cap` the key stays common however many of them left it.
        cap = MAX_HOLDERS + 1 + len(changed)
        counts = self._delete(cursor, changed, erased, touched, cap)
        if kept:
            self._write(cursor, kept, active_rows)
        crossed = set()
        for key in touched:
            held = counts.get(key, 0)
            if held < cap and (held > MAX_HOLDERS) != (
                held - before[key] + after[key] > MAX_HOLDERS
            ):
                crossed.add(key)
        others = self._holders(cursor, crossed) - set(changed)
        if others:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE low = ANY(%(ids)s) OR high = ANY(%(ids)s)").format(
                    self.table("pairs")
                ),
                {"ids": list(others)},
            )
        again = [row["customer_id"] for row in active_rows] + sorted(others)
        if again:
            self._pair(cursor, again)

    def _delete(
        self, cursor: Cursor[Any], ids: list[UUID], erased: list[UUID], keys: set[Key], cap: int
    ) -> dict[Key, int]:
        """Delete the customers' pairs and keys (and erased rows); how many customers held
        each of `keys` before, counted up to `cap`."""
        cursor.execute(
            sql.SQL(
                "WITH counts AS (SELECT t.kind, t.key, {holders} AS held"
                " FROM jsonb_to_recordset(%(keys)s::jsonb) AS t(kind text, key text)),"
                " pairs AS (DELETE FROM {pairs} WHERE low = ANY(%(ids)s) OR high = ANY(%(ids)s)),"
                " keys AS (DELETE FROM {keys} WHERE customer_id = ANY(%(ids)s)),"
                " rows AS (DELETE FROM {customers} WHERE customer_id = ANY(%(erased)s))"
                " SELECT kind, key, held FROM counts"
            ).format(
                holders=holders_count(self.table("match_keys"), "t"),
                pairs=self.table("pairs"),
                keys=self.table("match_keys"),
                customers=self.table("customers"),
            ),
            {
                "ids": ids,
                "erased": erased,
                "keys": _json([{"kind": k, "key": v} for k, v in sorted(keys)]),
                "cap": cap,
            },
        )
        return {(row["kind"], row["key"]): row["held"] for row in cursor.fetchall()}

    def _write(self, cursor: Cursor[Any], kept: list[Row], active_rows: list[Row]) -> None:
        records = [_record(row) for row in kept]
        keys = [
            {"customer_id": row["customer_id"], "kind": k.kind, "key": k.key, "source": k.source}
            for row in active_rows
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

    def _holders(self, cursor: Cursor[Any], keys: set[Key]) -> set[UUID]:
        if not keys:
            return set()
        cursor.execute(
            sql.SQL(
                "SELECT DISTINCT k.customer_id FROM {} k JOIN jsonb_to_recordset(%s::jsonb)"
                " AS t(kind text, key text) ON k.kind = t.kind AND k.key = t.key"
            ).format(self.table("match_keys")),
            (_json([{"kind": k, "key": v} for k, v in sorted(keys)]),),
        )
        return {row["customer_id"] for row in cursor.fetchall()}

    def _pair(self, cursor: Cursor[Any], ids: list[UUID]) -> None:
        """Find, score and insert the pairs of these (active) customers."""
        cursor.execute(
            sql.SQL(
                "WITH mine AS (SELECT kind, key, customer_id, source FROM {keys}"
                " WHERE customer_id = ANY(%(ids)s)),"
                " usable AS (SELECT kind, key FROM (SELECT DISTINCT kind, key FROM mine) m"
                " WHERE {holders} <= %(max)s)"
                " SELECT k1.customer_id AS one, k2.customer_id AS other,"
                " jsonb_agg(DISTINCT jsonb_build_array(k1.kind, k1.source, k2.source)) AS matches,"
                " {trgm}.similarity(c1.full_name, c2.full_name) AS name_similarity"
                " FROM mine k1 JOIN usable u ON u.kind = k1.kind AND u.key = k1.key"
                " CROSS JOIN LATERAL (SELECT customer_id, source FROM {keys} k"
                " WHERE k.kind = k1.kind AND k.key = k1.key LIMIT %(rows)s) k2"
                " JOIN {customers} c1 ON c1.customer_id = k1.customer_id"
                " JOIN {customers} c2 ON c2.customer_id = k2.customer_id"
                " WHERE k2.customer_id <> k1.customer_id"
                " GROUP BY k1.customer_id, k2.customer_id, c1.full_name, c2.full_name"
            ).format(
                trgm=sql.Identifier(self.trgm_schema(cursor)),
                keys=self.table("match_keys"),
                customers=self.table("customers"),
                holders=holders_count(self.table("match_keys"), "m"),
            ),
            {"ids": ids, **holder_limits()},
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


def _holdings(rows: Iterable[Row]) -> Counter[Key]:
    """How many of these customers hold each key (only active customers hold keys)."""
    return Counter((k.kind, k.key) for row in rows if row["active"] for k in row_keys(row))


def holder_limits() -> dict[str, int]:
    """The parameters `holders_count` and the common-key tests take; `rows`: the most
    `match_keys` rows of one usable key (a customer holds a phone key from at most three
    fields), the LIMIT that keeps a candidates' join an index lookup per key."""
    return {"max": MAX_HOLDERS, "cap": MAX_HOLDERS + 1, "rows": 3 * (MAX_HOLDERS + 1)}


def holders_count(keys_table: sql.Composable, alias: str) -> sql.Composed:
    """How many customers hold `alias`'s (kind, key), counted up to %(cap)s only: an index
    range of at most that many entries, however common the key."""
    return sql.SQL(
        "(SELECT count(*) FROM (SELECT DISTINCT h.customer_id FROM {} h"
        " WHERE h.kind = {alias}.kind AND h.key = {alias}.key LIMIT %(cap)s) n)"
    ).format(keys_table, alias=sql.Identifier(alias))


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


def _profile_changed(row: Row, changes: dict[str, Any]) -> None:
    row["values"] = {
        **row["values"],
        **{k: v for k, v in changes.items() if k in COMPARED_FIELDS},
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
    Customer.ProfileChanged: lambda row, event: _profile_changed(row, event.changes),
    Customer.ContactAdded: _contact_added,
    Customer.ContactRemoved: _contact_removed,
    Customer.AddressAdded: _address_added,
    Customer.AddressRemoved: _address_removed,
    Customer.Deleted: lambda row, _: row.update(active=False),
    Customer.Restored: lambda row, _: row.update(active=True),
    Customer.Erased: lambda row, _: row.update({_ERASED: True}),
    # A customer merged into another leaves every pair, as a deleted one does; the survivor
    # is compared with what it took over (contacts, addresses, filled profile fields).
    Customer.MergedInto: lambda row, _: row.update(active=False),
    Customer.UnmergedFrom: lambda row, _: row.update(active=True),
    Customer.Merged: lambda row, event: _absorbed(row, event),
    Customer.Unmerged: lambda row, event: _given_back(row, event),
}


def _absorbed(row: Row, event: Customer.Merged) -> None:
    _profile_changed(row, event.profile)
    contacts = {c[0] for c in row["contacts"]}
    row["contacts"] = [
        *row["contacts"],
        *(
            [str(c.contact_id), c.email, c.phone]
            for c in event.contacts
            if str(c.contact_id) not in contacts
        ),
    ]
    addresses = {a[0] for a in row["addresses"]}
    row["addresses"] = [
        *row["addresses"],
        *(
            [str(a.address_id), a.kind, a.line1, a.postal_code, a.city]
            for a in event.addresses
            if str(a.address_id) not in addresses
        ),
    ]


def _given_back(row: Row, event: Customer.Unmerged) -> None:
    _profile_changed(row, event.profile)
    contacts, addresses = set(map(str, event.contact_ids)), set(map(str, event.address_ids))
    row["contacts"] = [c for c in row["contacts"] if c[0] not in contacts]
    row["addresses"] = [a for a in row["addresses"] if a[0] not in addresses]


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
