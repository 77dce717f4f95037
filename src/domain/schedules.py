"""Staff schedules: the rule that one staff member's confirmed appointments never overlap.

The rule spans many appointments, so no single Appointment can keep it. A check against
the appointments read model would not be exact: the view lags the log, and two
confirmations racing for one slot would both find it free and both commit. Instead each
staff member's confirmed time is held, one UTC day at a time, by a `StaffDay` aggregate
whose id is derived from (staff id, day). Confirming (or moving a confirmed appointment)
saves the appointment's event and the slot in every day it touches in ONE atomic save, so
two overlapping confirmations write the same StaffDay version and the event store lets
only one of them commit; the other is retried on fresh state and refused, naming the
appointment that holds the time. The cost is that confirmations of one staff member on
one day take turns, which is what a scheduler does anyway.

Days are UTC days, not the business time zone's: the partition must never change under
stored history, and the business time zone is a setting that can. An appointment over
midnight takes a slot in each day it touches. Requested appointments hold no slot: a
request may overlap anything (booking only reports the clash); confirmation decides.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from domain.base import TracedAggregate
from domain.errors import ConflictError

__all__ = ["StaffDay", "StaffUnavailableError", "staff_day_id"]

_NAMESPACE = UUID("4d7e2b1c-93a5-4f60-8c2e-1b5a7d9e3f04")


def staff_day_id(staff_id: str, day: date) -> UUID:
    return uuid5(_NAMESPACE, f"{staff_id}\n{day.isoformat()}")


class StaffUnavailableError(ConflictError):
    """The staff member already has a confirmed appointment at that time."""

    def __init__(self, staff_id: str, clashes: list[UUID]) -> None:
        ids = ", ".join(str(c) for c in clashes)
        super().__init__(
            f"staff member {staff_id} already has a confirmed appointment at that time ({ids})",
            field="starts_at",
        )
        self.staff_id = staff_id
        self.clashes = clashes


class StaffDay(TracedAggregate):
    """One staff member's confirmed appointments on one UTC day."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        staff_id: str
        day: date
        slots: dict[UUID, tuple[datetime, datetime]]
        """Confirmed appointment id -> its [start, end), the whole span even past midnight."""

    class Opened(TracedAggregate.Created):
        staff_id: str
        day: date

        def apply(self, staff_day: StaffDay) -> None:
            staff_day.staff_id, staff_day.day = self.staff_id, self.day
            staff_day.slots = {}

    class SlotTaken(TracedAggregate.Event):
        appointment_id: UUID
        starts_at: datetime
        ends_at: datetime

        def apply(self, staff_day: StaffDay) -> None:
            staff_day.slots[self.appointment_id] = (self.starts_at, self.ends_at)

    class SlotReleased(TracedAggregate.Event):
        appointment_id: UUID

        def apply(self, staff_day: StaffDay) -> None:
            del staff_day.slots[self.appointment_id]

    @classmethod
    def open(cls, staff_id: str, day: date) -> StaffDay:
        return cls._create(cls.Opened, id=staff_day_id(staff_id, day), staff_id=staff_id, day=day)

    def clashes(self, appointment_id: UUID, starts_at: datetime, ends_at: datetime) -> list[UUID]:
        """Other appointments whose time overlaps [starts_at, ends_at)."""
        return sorted(
            (
                other
                for other, (start, end) in self.slots.items()
                if other != appointment_id and start < ends_at and starts_at < end
            ),
            key=str,
        )

    def take(self, appointment_id: UUID, starts_at: datetime, ends_at: datetime) -> None:
        """Hold the time for the appointment, refused when another one holds part of it."""
        clashes = self.clashes(appointment_id, starts_at, ends_at)
        if clashes:
            raise StaffUnavailableError(self.staff_id, clashes)
        if self.slots.get(appointment_id) != (starts_at, ends_at):
            self.trigger_event(
                self.SlotTaken, appointment_id=appointment_id, starts_at=starts_at, ends_at=ends_at
            )

    def release(self, appointment_id: UUID) -> None:
        if appointment_id in self.slots:
            self.trigger_event(self.SlotReleased, appointment_id=appointment_id)
