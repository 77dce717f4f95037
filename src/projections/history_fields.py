"""The vocabulary of a history row: field names and values, shared by every part's recorders.

A recorder says what one event type sets in its customer's history: a function
`(event, before) -> Fields`, where `before` is the customer's fields as history knows them
and the result lists the fields the event sets (None clears one), in the order to show them.
Each aggregate keeps its recorders in a module of its own (`customer_history` for the
customer's own events) in a `Recorders` table, and `history.HistoryModel` joins the tables.

Names: a part of the record is `collection[<id>].field` (`notes[<id>].text`, `pets[<id>].name`);
a keyed value is `collection.<key>` (`custom_fields.po`, `custom_prices.<service_id>`).
Values are JSON: times and dates as ISO strings, money and percentages as decimal strings,
ids as strings (`as_json`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

__all__ = [
    "MASK",
    "Fields",
    "Recorder",
    "Recorders",
    "Renewed",
    "as_json",
    "field_patterns",
    "part_fields",
    "removed_fields",
]

MASK = "***"
"""What history shows for a secret that is set."""

Fields = dict[str, Any]
"""A customer's fields by history name; an absent name is null."""

Recorder = Callable[[Any, Fields], Fields | None]
"""None: the event is no row of the history (a merge's mark that moved nothing)."""
R = TypeVar("R", bound=Recorder)

_PLAIN = frozenset({str, bool, int})


class Recorders(dict[type[Any], Recorder]):
    """Recorders by the exact event type they record; `@table(EventType)` adds one.

    A dict by exact type rather than singledispatch: dispatch runs once per event of a
    rebuild, and singledispatch walks the class's MRO on every call.

    `personal` names the fields whose values are personal data (`domain.personal_data`),
    as patterns: `[*]` any part id, a final `*` any key (`pets[*].vet.*`). An erasure drops
    them from the customer's earlier rows: rebuilt from the redacted events they would not
    be there at all (a redacted value is empty), so kept-up and rebuilt rows stay equal.
    """

    def __init__(self, *, personal: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.personal = personal

    def __call__(self, event_type: type[Any]) -> Callable[[R], R]:
        def register(recorder: R) -> R:
            if event_type in self:
                raise ValueError(f"two history recorders for {event_type.__qualname__}")
            self[event_type] = recorder
            return recorder

        return register


class Renewed(NamedTuple):
    """A value listed as changed even when it reads the same (a new secret behind the mask)."""

    value: Any


def field_patterns(patterns: tuple[str, ...]) -> str:
    """One regular expression (PostgreSQL's and Python's) matching any of `patterns`."""
    alternatives = [
        re.escape(p).replace(re.escape("[*]"), r"\[[^]]+\]").replace(re.escape("*"), ".+")
        for p in patterns
    ]
    return "^(" + "|".join(alternatives) + ")$" if alternatives else "^$.^"


def part_fields(collection: str, part_id: UUID, part: Any) -> Fields:
    """A part's fields (all but its id, the dataclass's first field) under `collection[<id>].`."""
    prefix = f"{collection}[{part_id}]."
    names = [f.name for f in dataclasses.fields(part)][1:]
    return {f"{prefix}{name}": as_json(getattr(part, name)) for name in names}


def removed_fields(before: Fields, prefix: str) -> Fields:
    """Every field under `prefix` (`pets[<id>].`) cleared: a removed part."""
    return {name: None for name in sorted(before) if name.startswith(prefix)}


def as_json(value: Any) -> Any:
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
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    raise TypeError(f"history cannot show a {type(value).__name__}")
