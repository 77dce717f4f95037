"""How values that JSON does not know are stored in events.

The library's transcoder knows UUID, Decimal and datetime; dates and the value objects of
`domain.values` are registered here. Names are part of the stored data: never rename one.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from eventsourcing.persistence import Transcoding

from domain.invoices import InvoiceLine
from domain.pets import Vet
from domain.tickets import Device
from domain.values import Address, Contact, Credit, InstalledSystem, KeyCustody, Note, Profile

__all__ = ["TRANSCODINGS"]


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ValueObjectAsDict(Transcoding):
    """A frozen dataclass stored as its fields; nested values go through the transcoder."""

    def __init__(self, value_type: type[Any]) -> None:
        self.type = value_type
        self.name = value_type.__name__
        self._from_dict = getattr(value_type, "from_dict", None) or (lambda d: value_type(**d))

    def encode(self, obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

    def decode(self, data: dict[str, Any]) -> Any:
        return self._from_dict(data)


TRANSCODINGS: tuple[Transcoding, ...] = (
    DateAsISO(),
    ValueObjectAsDict(Profile),
    ValueObjectAsDict(Address),
    ValueObjectAsDict(Contact),
    ValueObjectAsDict(InstalledSystem),
    ValueObjectAsDict(Device),
    ValueObjectAsDict(Vet),
    # Kept whole in a merge's events (the survivor's Customer.Merged):
    ValueObjectAsDict(Note),
    ValueObjectAsDict(Credit),
    ValueObjectAsDict(KeyCustody),
    ValueObjectAsDict(InvoiceLine),
)
