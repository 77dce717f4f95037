"""The history read model: one row per customer event, saying who changed which field, and how.

Each row keeps the event's position, customer, version, type (`customer.profile_changed`),
time, actor and correlation id, and its field-level `changes: [{field, from, to}]`. The
`from` side needs the state before the event, so the model keeps each customer's fields
(as history names them) in `snapshots`, written in the same transaction as the rows.

Field names (the `field` of a change):

    first_name, email, birthday, ...       profile fields, named as in the API
    assigned_staff_ids, notification_channels   the whole list
    custom_fields.<key>                    one custom field
    consent.newsletter, consent.promotional_sms
    customer_number                        (registration)
    deleted, blocked, block_reason, erased
    notes[<note_id>].text, .urgent
    contacts[<contact_id>].name, .role, .email, .phone
    addresses[<address_id>].kind, .line1, .line2, .city, .region, .postal_code, .country
    systems[<system_id>].system_type, .ip_address, .login, .secret, .version, .notes
    key_custody.holder_staff_id, key_custody.location
    custom_prices.<service_id>
    credits[<credit_id>].amount, .reason

An erasure (`erased: true`) nulls every `from` and `to` of the customer's earlier rows: what
changed, when and by whom stays; the values do not.

A key or service id is everything after the first dot of `custom_fields.` or
`custom_prices.`. Values are JSON: times and dates as ISO strings, money and percentages as
decimal strings, ids as strings. Empty values (null, "", [], {}) all read as null, so a
registration lists every non-empty field `from: null` and a removed part lists each of its
fields `to: null`. An equipment secret is never shown, sealed or not: `systems[<id>].secret`
is `"***"` when one is set and null when not, and every new secret is listed, `"***"` to
`"***"`. Changes follow the event's own order (profile fields in declaration order, the
others sorted), so replaying the log gives the same rows whatever the batch size.

Every customer event makes a row (one this module does not know yet, with no changes);
other aggregates' events (reservations, idempotent requests) are skipped for now. An
appointment's or ticket's event that carries a `customer_id` joins its customer's history
with one `@_records(EventClass)` method.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import orjson
from psycopg import Cursor, sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from domain.base import event_name
from domain.customers import CONSENT_TOPICS, Customer
from domain.values import Address, Contact, InstalledSystem, Profile
from projections.base import Batch, ReadModel

__all__ = ["MASK", "HistoryModel", "subject_of"]

MASK = "***"
"""What history shows for a secret that is set."""

Fields = dict[str, Any]
"""A customer's fields by history name; an absent name is null."""

_EMPTY_TYPES = frozenset({str, list, dict})
_UNSET = object()
_PLAIN = frozenset({str, bool, int})
_UNSET_MEANS = {"deleted": False, "blocked": False, "erased": False}
"""Fields a registration does not list but that have a value from the start."""
_PROFILE_RANK = {name: rank for rank, name in enumerate(Profile.field_names())}
_CUSTOM_FIELDS = len("custom_fields.")
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
_SYSTEM_FIELDS = tuple(f.name for f in dataclasses.fields(InstalledSystem))
_PART_FIELDS = {
    part: tuple(f.name for f in dataclasses.fields(part))[1:]  # the id comes first
    for part in (Address, Contact)
}


Recorder = Callable[["HistoryModel", Any, Fields], Fields]
_RECORDERS: dict[type[Any], Recorder] = {}
R = TypeVar("R", bound=Recorder)


def _records(event_type: type[Any]) -> Callable[[R], R]:
    """Make a HistoryModel method what `event_type` sets in its customer's history.

    A dict by exact type rather than singledispatch: dispatch runs once per event of a
    rebuild, and singledispatchmethod re-wraps the method on every call.
    """

    def register(method: R) -> R:
        _RECORDERS[event_type] = method
        return method

    return register


class Renewed(NamedTuple):
    """A value listed as changed even when it reads the same (a new secret behind the mask)."""

    value: Any


class HistoryModel(ReadModel):
    """Customers' change histories, field by field."""

    name = "history"

    # ---- what each event sets --------------------------------------------------------------

    def fields_set_by(self, event: Any, before: Fields) -> Fields | None:
        """The history fields `event` sets (None clears one), in the order to list them;
        None when the event is not part of a customer's history."""
        recorder = _RECORDERS.get(type(event))
        if recorder is not None:
            return recorder(self, event, before)
        # A customer event without a method here still happened: its row, with no changes.
        return {} if isinstance(event, Customer.Event) else None

    @_records(Customer.Registered)
    def _registered(self, event: Customer.Registered, before: Fields) -> Fields:
        fields: Fields = {"customer_number": event.customer_number}
        fields.update(_profile(vars(event.profile), before, in_order=True))
        for address in event.addresses:
            fields.update(_part("addresses", address.address_id, address))
        return fields

    @_records(Customer.ProfileChanged)
    def _profile_changed(self, event: Customer.ProfileChanged, before: Fields) -> Fields:
        return _profile(event.changes, before)

    @_records(Customer.ConsentChanged)
    def _consent_changed(self, event: Customer.ConsentChanged, before: Fields) -> Fields:
        return {f"consent.{event.topic}": event.granted}

    @_records(Customer.Deleted)
    def _deleted(self, event: Customer.Deleted, before: Fields) -> Fields:
        return {"deleted": True}

    @_records(Customer.Restored)
    def _restored(self, event: Customer.Restored, before: Fields) -> Fields:
        return {"deleted": False}

    @_records(Customer.Blocked)
    def _blocked(self, event: Customer.Blocked, before: Fields) -> Fields:
        return {"blocked": True, "block_reason": event.reason}

    @_records(Customer.Unblocked)
    def _unblocked(self, event: Customer.Unblocked, before: Fields) -> Fields:
        return {"blocked": False, "block_reason": None}

    @_records(Customer.NoteAdded)
    def _note_added(self, event: Customer.NoteAdded, before: Fields) -> Fields:
        prefix = f"notes[{event.note_id}]."
        return {f"{prefix}text": event.text, f"{prefix}urgent": event.urgent}

    @_records(Customer.NoteRemoved)
    def _note_removed(self, event: Customer.NoteRemoved, before: Fields) -> Fields:
        return _removed(before, f"notes[{event.note_id}].")

    @_records(Customer.ContactAdded)
    def _contact_added(self, event: Customer.ContactAdded, before: Fields) -> Fields:
        return _part("contacts", event.contact.contact_id, event.contact)

    @_records(Customer.ContactRemoved)
    def _contact_removed(self, event: Customer.ContactRemoved, before: Fields) -> Fields:
        return _removed(before, f"contacts[{event.contact_id}].")

    @_records(Customer.AddressAdded)
    def _address_added(self, event: Customer.AddressAdded, before: Fields) -> Fields:
        return _part("addresses", event.address.address_id, event.address)

    @_records(Customer.AddressRemoved)
    def _address_removed(self, event: Customer.AddressRemoved, before: Fields) -> Fields:
        return _removed(before, f"addresses[{event.address_id}].")

    @_records(Customer.SystemInstalled)
    def _system_installed(self, event: Customer.SystemInstalled, before: Fields) -> Fields:
        system = event.system
        return _system(system.system_id, {name: getattr(system, name) for name in _SYSTEM_FIELDS})

    @_records(Customer.SystemChanged)
    def _system_changed(self, event: Customer.SystemChanged, before: Fields) -> Fields:
        return _system(event.system_id, event.changes)

    @_records(Customer.SystemRemoved)
    def _system_removed(self, event: Customer.SystemRemoved, before: Fields) -> Fields:
        return _removed(before, f"systems[{event.system_id}].")

    @_records(Customer.KeyCustodyChanged)
    def _key_custody_changed(self, event: Customer.KeyCustodyChanged, before: Fields) -> Fields:
        return {
            "key_custody.holder_staff_id": event.holder_staff_id,
            "key_custody.location": event.location,
        }

    @_records(Customer.CustomPriceSet)
    def _custom_price_set(self, event: Customer.CustomPriceSet, before: Fields) -> Fields:
        return {f"custom_prices.{event.service_id}": _json(event.price)}

    @_records(Customer.Erased)
    def _erased(self, event: Customer.Erased, before: Fields) -> Fields:
        return {"erased": True}

    @_records(Customer.CreditAdded)
    def _credit_added(self, event: Customer.CreditAdded, before: Fields) -> Fields:
        prefix = f"credits[{event.credit_id}]."
        return {f"{prefix}amount": _json(event.amount), f"{prefix}reason": event.reason}

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
            "'field', item.change->'field', 'from', null, 'to', null)), '[]'::jsonb)"
            " FROM jsonb_array_elements(h.changes) AS item(change))"
            " FROM json_to_recordset(%s::json) AS e(c uuid, p bigint)"
            " WHERE h.customer_id = e.c AND h.position < e.p"
        ).format(self.table("history"))

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


def _profile(values: Mapping[str, Any], before: Fields, *, in_order: bool = False) -> Fields:
    """Profile values as history fields, in the profile's order (`in_order`: already so)."""
    fields: Fields = {}
    for name in values if in_order else sorted(values, key=_profile_rank):
        value = values[name]
        if name == "custom_fields":
            new = value or {}
            old = {k[_CUSTOM_FIELDS:] for k in before if k.startswith("custom_fields.")}
            for key in sorted(old | set(new)):
                fields[f"custom_fields.{key}"] = new.get(key)
        elif name in CONSENT_TOPICS:
            fields[f"consent.{name}"] = value
        else:
            fields[name] = _json(value)
    return fields


def _profile_rank(name: str) -> int:
    # A field no longer in the profile (old history) goes last.
    return _PROFILE_RANK.get(name, len(_PROFILE_RANK))


def _part(collection: str, part_id: UUID, part: Address | Contact) -> Fields:
    """A part's fields (all but its id) under `collection[<id>].`."""
    prefix = f"{collection}[{part_id}]."
    return {f"{prefix}{name}": _json(getattr(part, name)) for name in _PART_FIELDS[type(part)]}


def _system(system_id: UUID, values: Mapping[str, Any]) -> Fields:
    """An installed system's fields; the sealed secret only as the mask, every new one listed."""
    prefix = f"systems[{system_id}]."
    fields: Fields = {}
    for name, value in values.items():
        if name == "system_id":
            continue
        if name == "sealed_secret":
            fields[f"{prefix}secret"] = Renewed(MASK) if value else None
        else:
            fields[f"{prefix}{name}"] = _json(value)
    return fields


def _removed(before: Fields, prefix: str) -> Fields:
    return {name: None for name in sorted(before) if name.startswith(prefix)}


def _json(value: Any) -> Any:
    """A value as history stores it: JSON, with times, money and ids as strings."""
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    raise TypeError(f"history cannot show a {type(value).__name__}")
