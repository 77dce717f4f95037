"""Values that must be unique across customers, kept exact by reservation aggregates.

A reservation's id is derived from the normalised value (uuid5), so two registrations
racing for one email both try to create the same aggregate and the event store lets only
one win. The reservation is saved in the same atomic save as the customer's event. It
stores the owner and the kind, never the value itself (which is personal data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import UniqueValueTakenError

__all__ = ["UNIQUE_FIELDS", "Reservation", "reservation_id"]

UNIQUE_FIELDS = ("email", "mobile_phone", "username", "customer_number")

_NAMESPACE = UUID("6f1c3d52-2b7e-4f0c-9a43-6a1d7f0e9b21")


def reservation_id(field: str, value: str | int) -> UUID:
    """The id of the reservation for a value; emails and usernames compare case-insensitively."""
    key = str(value).casefold() if field in ("email", "username") else str(value)
    return uuid5(_NAMESPACE, f"{field}:{key}")


class Reservation(TracedAggregate):
    """One unique value, held by one customer or released."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        field: str
        owner_id: UUID | None

    class Claimed(TracedAggregate.Created):
        field: str
        owner_id: UUID

        def apply(self, reservation: Reservation) -> None:
            reservation.field, reservation.owner_id = self.field, self.owner_id

    class Released(TracedAggregate.Event):
        def apply(self, reservation: Reservation) -> None:
            reservation.owner_id = None

    class Reclaimed(TracedAggregate.Event):
        owner_id: UUID

        def apply(self, reservation: Reservation) -> None:
            reservation.owner_id = self.owner_id

    class Transferred(TracedAggregate.Event):
        """The value moved with its customer into a merge's survivor, or back out of it."""

        owner_id: UUID
        previous_owner_id: UUID

        def apply(self, reservation: Reservation) -> None:
            reservation.owner_id = self.owner_id

    @classmethod
    def claim_new(cls, field: str, value: str | int, owner_id: UUID) -> Reservation:
        return cls._create(
            cls.Claimed, id=reservation_id(field, value), field=field, owner_id=owner_id
        )

    def claim(self, owner_id: UUID) -> None:
        """Take a released value; refuse one another customer holds."""
        if self.owner_id == owner_id:
            return
        if self.owner_id is not None:
            raise UniqueValueTakenError(self.field, self.owner_id)
        self.trigger_event(self.Reclaimed, owner_id=owner_id)

    def transfer(self, from_owner: UUID, to_owner: UUID) -> None:
        """Move the value from one customer to another (a merge, or its undoing): a value
        released meanwhile is claimed again; one another customer took refuses."""
        if self.owner_id == to_owner:
            return
        if self.owner_id is None:
            self.trigger_event(self.Reclaimed, owner_id=to_owner)
        elif self.owner_id == from_owner:
            self.trigger_event(self.Transferred, owner_id=to_owner, previous_owner_id=from_owner)
        else:
            raise UniqueValueTakenError(self.field, self.owner_id)

    def release(self, owner_id: UUID) -> None:
        if self.owner_id == owner_id:
            self.trigger_event(self.Released)
