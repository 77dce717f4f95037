"""The history read model: one row per customer event, saying who changed which field, and how.

Each row keeps the event's position, customer, version, type (`customer.profile_changed`),
time, actor and correlation id, and its field-level `changes: [{field, from, to}]`. The
`from` side needs the state before the event, so the model keeps each customer's fields
(as history names them) in `snapshots`, written in the same transaction as the rows.

The field names and what each event type sets come from recorders (`history_fields`): the
customer's own events in `customer_history`, each other aggregate's in a module of its own,
joined in `_RECORDERS` below.

An erasure (`erased: true`) nulls every `from` and `to` of the customer's earlier rows and
drops their personal fields (each recorders' table names them): what changed, when and by
whom stays; the values do not. A rebuild, reading the redacted events, writes the same rows.

Empty values (null, "", [], {}) all read as null, so a registration lists every non-empty
field `from: null` and a removed part lists each of its fields `to: null`. Changes follow
the event's own order, so replaying the log gives the same rows whatever the batch size.

Every customer event makes a row (one this module does not know yet, with no changes);
other aggregates' events (reservations, idempotent requests) are skipped. Another aggregate's
event that carries a `customer_id` joins its customer's history through its recorder.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor, sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from domain.base import event_name
from domain.customers import Customer
from projections import (
    account_history,
    billing_history,
    conversation_history,
    customer_history,
    file_history,
    merge_history,
    pet_history,
)
from projections.base import Batch, ReadModel
from projections.history_fields import MASK, Fields, Recorder, Recorders, Renewed, field_patterns

__all__ = ["MASK", "HistoryModel", "subject_of"]

_TABLES: tuple[Recorders, ...] = (
    customer_history.RECORDERS,
    pet_history.RECORDERS,
    conversation_history.RECORDERS,
    merge_history.RECORDERS,
    file_history.RECORDERS,
    account_history.RECORDERS,
    billing_history.RECORDERS,
)
"""Every aggregate's recorders: one line per recorders' module."""
_RECORDERS: dict[type[Any], Recorder] = {k: v for table in _TABLES for k, v in table.items()}
"""What each event type sets in its customer's history."""
_PERSONAL = field_patterns(tuple(p for table in _TABLES for p in table.personal))
"""The fields an erasure drops from the customer's earlier rows (the others lose values)."""

_EMPTY_TYPES = frozenset({str, list, dict})
_UNSET = object()
_UNSET_MEANS = {"deleted": False, "blocked": False, "erased": False}
"""Fields a registration does not list but that have a value from the start."""
_ROW_COLUMNS = (
    "position",
    "customer_id",
    "version",
    "type",
    "at",
    "actor",
    "correlation_id",
    "changes",
)
_ROW_TYPES = ("int8", "uuid", "int4", "text", "timestamptz", "text", "text", "jsonb")


class HistoryModel(ReadModel):
    """Customers' change histories, field by field."""

    name = "history"

    # ---- what each event sets --------------------------------------------------------------

    def fields_set_by(self, event: Any, before: Fields) -> Fields | None:
        """The history fields `event` sets (None clears one), in the order to list them;
        None when the event is not part of a customer's history."""
        recorder = _RECORDERS.get(type(event))
        if recorder is not None:
            return recorder(event, before)
        # A customer event without a method here still happened: its row, with no changes.
        return {} if isinstance(event, Customer.Event) else None

    # ---- batches ---------------------------------------------------------------------------

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        self.apply_events(cursor, [(position, event)])

    def wants(self, event_class: type[Any]) -> bool:
        return issubclass(event_class, Customer.Event) or event_class in _RECORDERS

    def apply_events(self, cursor: Cursor[Any], batch: Batch) -> None:
        """A few statements per batch, however many events and customers it holds: read
        its customers' snapshots, COPY its rows, upsert the snapshots."""
        subjects = [(position, event, subject_of(event)) for position, event in batch]
        first_events: dict[UUID, Any] = {}
        for _, event, customer_id in subjects:
            if customer_id is not None:
                first_events.setdefault(customer_id, event)
        # A customer registered in this batch has no snapshot yet: most of a rebuild's.
        known = [c for c, event in first_events.items() if type(event) is not Customer.Registered]
        snapshots = self._snapshots(cursor, known) if known else {}
        rows: list[tuple[Any, ...]] = []
        touched: dict[UUID, int] = {}
        erased: dict[UUID, int] = {}
        for position, event, customer_id in subjects:
            if customer_id is None:
                continue
            before = snapshots.setdefault(customer_id, {})
            after = self.fields_set_by(event, before)
            if after is None:
                continue
            changes = _apply_changes(before, after)
            if type(event) is Customer.Erased:
                erased[customer_id] = position
                before.clear()  # what the customer's next events change "from": unknown
            rows.append(
                (
                    position,
                    customer_id,
                    event.originator_version,
                    _type_name(event),
                    event.timestamp,
                    event.actor,
                    event.correlation_id,
                    Jsonb(changes, orjson.dumps),
                )
            )
            touched[customer_id] = position
        if not rows:
            return
        # A read model is rebuilt from the log: a commit lost in a crash takes its
        # tracking position with it and is simply done again, so no wait for the flush.
        cursor.execute("SET LOCAL synchronous_commit = off")
        with cursor.copy(self._copy_rows) as copy:
            copy.set_types(_ROW_TYPES)
            for row in rows:
                copy.write_row(row)
        snapshot_rows = [
            {"customer_id": c, "position": p, "fields": snapshots[c]} for c, p in touched.items()
        ]
        cursor.execute(self._upsert_snapshots, (orjson.dumps(snapshot_rows).decode(),))
        if erased:
            # What changed stays (who, when, which field); the values before go.
            cursor.execute(
                self._redact_rows,
                (orjson.dumps([{"c": c, "p": p} for c, p in erased.items()]).decode(),),
            )

    @functools.cached_property
    def _redact_rows(self) -> sql.Composed:
        return sql.SQL(
            "UPDATE {} AS h SET changes = (SELECT coalesce(jsonb_agg(jsonb_build_object("
            "'field', item.change->'field', 'from', null, 'to', null) ORDER BY item.n),"
            " '[]'::jsonb)"
            " FROM jsonb_array_elements(h.changes) WITH ORDINALITY AS item(change, n)"
            " WHERE item.change->>'field' !~ {})"
            " FROM json_to_recordset(%s::json) AS e(c uuid, p bigint)"
            " WHERE h.customer_id = e.c AND h.position < e.p"
        ).format(self.table("history"), sql.Literal(_PERSONAL))

    def _snapshots(self, cursor: Cursor[Any], customer_ids: Iterable[UUID]) -> dict[UUID, Fields]:
        # An array literal built here (psycopg's list adaptation costs more than the query)
        # and plain tuples back, on the same connection and so in the same transaction.
        with cursor.connection.cursor(row_factory=tuple_row) as plain:
            plain.execute(self._select_snapshots, ("{" + ",".join(map(str, customer_ids)) + "}",))
            return {customer_id: orjson.loads(fields) for customer_id, fields in plain}

    @functools.cached_property
    def _select_snapshots(self) -> sql.Composed:
        return sql.SQL(
            "SELECT customer_id, fields::text FROM {} WHERE customer_id = ANY(%s::uuid[])"
        ).format(self.table("snapshots"))

    @functools.cached_property
    def _copy_rows(self) -> sql.Composed:
        # Binary COPY: the cheapest way in for both sides (a third of the server's work
        # of an INSERT from a JSON document, measured).
        return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self.table("history"), sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS))
        )

    @functools.cached_property
    def _upsert_snapshots(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (customer_id, position, fields)"
            " SELECT * FROM json_to_recordset(%s::json)"
            " AS r(customer_id uuid, position bigint, fields json)"
            " ON CONFLICT (customer_id) DO UPDATE"
            " SET position = EXCLUDED.position, fields = EXCLUDED.fields"
        ).format(self.table("snapshots"))


_TYPE_NAMES: dict[type[Any], str] = {}


def _type_name(event: Any) -> str:
    # event_name parses the class name with a regex: once per class, not once per event.
    name = _TYPE_NAMES.get(type(event))
    if name is None:
        name = _TYPE_NAMES[type(event)] = event_name(event)
    return name


def subject_of(event: Any) -> UUID | None:
    """The customer whose history `event` belongs in: a customer's own events, or another
    aggregate's event that names its customer (appointments and tickets, later)."""
    if isinstance(event, Customer.Event):
        return event.originator_id
    customer_id = getattr(event, "customer_id", None)
    return customer_id if isinstance(customer_id, UUID) else None


def _apply_changes(before: Fields, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Set `after` on `before` (in place); the changes, in `after`'s order."""
    changes = []
    for name, given in after.items():
        renewed = type(given) is Renewed
        value = given.value if renewed else given
        if not value and type(value) in _EMPTY_TYPES:  # "", [], {}: not set
            value = None
        old = before.get(name, _UNSET)
        if old is _UNSET:
            old = _UNSET_MEANS.get(name)
        if old == value and not renewed:
            continue
        changes.append({"field": name, "from": old, "to": value})
        if value is None:
            before.pop(name, None)
        else:
            before[name] = value
    return changes
