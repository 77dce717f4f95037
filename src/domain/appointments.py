"""Appointments: a customer's time with a staff member, and the graph its status follows.

    requested ──confirm──▶ confirmed ──complete──▶ completed
        │                     │   └───no-show───▶ no_show
        └──cancel──▶ cancelled ◀──cancel──┘

A requested or confirmed appointment can be rescheduled until its current start time;
from then on the time is history. `no_show` needs the start to have passed. Each
reschedule counts: the count is the calendar SEQUENCE, so a moved appointment updates in
the customer's calendar instead of appearing twice.

Public methods decide (they check the rules and read the time they are given); the nested
event classes only apply. Every event carries `customer_id` (for the per-customer views
and the history) and the appointment's time and staff, so a consumer can render it alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import ConflictError, InvalidTransitionError, RuleViolationError
from domain.relinking import Relinkable

__all__ = [
    "FINAL_STATUSES",
    "MAX_DURATION",
    "STATUSES",
    "TRANSITIONS",
    "Appointment",
    "AppointmentStartedError",
    "utc_days",
]

STATUSES = ("requested", "confirmed", "completed", "no_show", "cancelled")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "requested": ("confirmed", "cancelled"),
    "confirmed": ("completed", "no_show", "cancelled"),
    "completed": (),
    "no_show": (),
    "cancelled": (),
}
"""Each status and the statuses it may go to (API.md)."""
FINAL_STATUSES = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)
MAX_DURATION = timedelta(days=7)
"""Longer bookings are almost certainly a typo in the end date."""
STAFF_SOURCES = ("request", "preferred_staff", "none")
"""How the staff member was chosen: named in the request, the customer's preferred staff
(the seed's forwarding of requests), or nobody yet."""


class AppointmentStartedError(ConflictError):
    """The appointment's start time has passed: its time can no longer be moved."""

    def __init__(self, starts_at: datetime) -> None:
        super().__init__(
            f"the appointment started at {starts_at.isoformat()}; it can no longer be rescheduled",
            field="starts_at",
        )


class Appointment(Relinkable, TracedAggregate):
    """A booked time for one customer, with one staff member once assigned."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        staff_id: str | None
        """Who serves it; None until someone is assigned (at the latest when confirmed)."""
        staff_source: str
        service_id: str | None
        starts_at: datetime
        """UTC, inclusive."""
        ends_at: datetime
        """UTC, exclusive."""
        notes: str | None
        status: str
        reschedules: int
        """How many times the time was moved: the calendar's SEQUENCE."""
        cancel_reason: str | None

    # ---- booking ---------------------------------------------------------------------------

    class Booked(TracedAggregate.Created):
        customer_id: UUID
        staff_id: str | None
        staff_source: str
        service_id: str | None
        starts_at: datetime
        ends_at: datetime
        notes: str | None

        def apply(self, appointment: Appointment) -> None:
            appointment.customer_id = self.customer_id
            appointment.staff_id = self.staff_id
            appointment.staff_source = self.staff_source
            appointment.service_id = self.service_id
            appointment.starts_at, appointment.ends_at = self.starts_at, self.ends_at
            appointment.notes = self.notes
            appointment.status = "requested"
            appointment.reschedules = 0
            appointment.cancel_reason = None

    @classmethod
    def book(
        cls,
        *,
        customer_id: UUID,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        staff_id: str | None = None,
        staff_source: str = "request",
        service_id: str | None = None,
        notes: str | None = None,
    ) -> Appointment:
        """Request an appointment; it starts in the future and ends after it starts."""
        starts_at, ends_at = check_times(starts_at, ends_at, now)
        if staff_source not in STAFF_SOURCES:
            raise RuleViolationError("staff_source", f"must be one of {list(STAFF_SOURCES)}")
        staff = _blank_is_none(staff_id)
        return cls._create(
            cls.Booked,
            id=uuid4(),
            customer_id=customer_id,
            staff_id=staff,
            staff_source=staff_source if staff else "none",
            service_id=_blank_is_none(service_id),
            starts_at=starts_at,
            ends_at=ends_at,
            notes=_blank_is_none(notes),
        )

    # ---- merges of its customer --------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    # ---- the status graph ------------------------------------------------------------------

    class Confirmed(TracedAggregate.Event):
        customer_id: UUID
        staff_id: str
        service_id: str | None
        starts_at: datetime
        ends_at: datetime

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "confirmed"
            appointment.staff_id = self.staff_id

    class Rescheduled(TracedAggregate.Event):
        customer_id: UUID
        staff_id: str | None
        service_id: str | None
        starts_at: datetime
        ends_at: datetime
        previous_starts_at: datetime
        previous_ends_at: datetime

        def apply(self, appointment: Appointment) -> None:
            appointment.starts_at, appointment.ends_at = self.starts_at, self.ends_at
            appointment.reschedules += 1

    class Cancelled(TracedAggregate.Event):
        customer_id: UUID
        staff_id: str | None
        service_id: str | None
        starts_at: datetime
        ends_at: datetime
        reason: str

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "cancelled"
            appointment.cancel_reason = self.reason

    class Completed(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "completed"

    class MarkedNoShow(TracedAggregate.Event):
        customer_id: UUID

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "no_show"

    def confirm(self, staff_id: str | None = None) -> None:
        """Confirm with the assigned staff member, or with `staff_id` (which reassigns)."""
        self._check_transition("confirmed")
        staff = _blank_is_none(staff_id) or self.staff_id
        if staff is None:
            raise ConflictError(
                "nobody is assigned to this appointment: name the staff_id to confirm it with",
                field="staff_id",
            )
        self.trigger_event(self.Confirmed, staff_id=staff, **self._when())

    def reschedule(self, starts_at: datetime, ends_at: datetime, now: datetime) -> bool:
        """Move the appointment until its current start; False when the time is unchanged."""
        if self.status in FINAL_STATUSES:
            raise ConflictError(
                f"a {self.status} appointment cannot be rescheduled", field="status"
            )
        if self.starts_at <= now:
            raise AppointmentStartedError(self.starts_at)
        starts_at, ends_at = check_times(starts_at, ends_at, now)
        if (starts_at, ends_at) == (self.starts_at, self.ends_at):
            return False
        self.trigger_event(
            self.Rescheduled,
            customer_id=self.customer_id,
            staff_id=self.staff_id,
            service_id=self.service_id,
            starts_at=starts_at,
            ends_at=ends_at,
            previous_starts_at=self.starts_at,
            previous_ends_at=self.ends_at,
        )
        return True

    def cancel(self, reason: str) -> None:
        self._check_transition("cancelled")
        if not reason or not reason.strip():
            raise RuleViolationError("reason", "a cancellation needs a reason")
        self.trigger_event(
            self.Cancelled, staff_id=self.staff_id, reason=reason.strip(), **self._when()
        )

    def complete(self) -> None:
        self._check_transition("completed")
        self.trigger_event(self.Completed, customer_id=self.customer_id)

    def mark_no_show(self, now: datetime) -> None:
        """Record that the customer did not come; only once the appointment has started."""
        self._check_transition("no_show")
        if now < self.starts_at:
            raise ConflictError(
                "the appointment has not started yet: it cannot be a no-show", field="starts_at"
            )
        self.trigger_event(self.MarkedNoShow, customer_id=self.customer_id)

    @property
    def allowed_transitions(self) -> tuple[str, ...]:
        return TRANSITIONS[self.status]

    @property
    def holds_staff_time(self) -> bool:
        """Whether it occupies its staff member's time (only confirmed appointments do)."""
        return self.status == "confirmed"

    def _check_transition(self, target: str) -> None:
        if target not in TRANSITIONS[self.status]:
            raise InvalidTransitionError(self.status, target, list(TRANSITIONS[self.status]))

    def _when(self) -> dict[str, object]:
        return {
            "customer_id": self.customer_id,
            "service_id": self.service_id,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


def check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The times as UTC instants, refused (422) when they make no appointment."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        field = "starts_at" if starts_at.tzinfo is None else "ends_at"
        raise RuleViolationError(field, "a time needs an offset, such as Z or +02:00")
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    if ends_at <= starts_at:
        raise RuleViolationError("ends_at", "ends_at must be after starts_at")
    if ends_at - starts_at > MAX_DURATION:
        raise RuleViolationError(
            "ends_at", f"an appointment lasts at most {MAX_DURATION.days} days"
        )
    if starts_at <= now:
        raise RuleViolationError("starts_at", "an appointment cannot start in the past")
    return starts_at, ends_at


def utc_days(starts_at: datetime, ends_at: datetime) -> list[date]:
    """The UTC calendar days that the half-open span [starts_at, ends_at) touches."""
    first = starts_at.astimezone(UTC).date()
    last = (ends_at.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _blank_is_none(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()
