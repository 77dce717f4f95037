"""The JSON shapes of the appointment endpoints, and how an appointment is shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.appointments import Appointment
from domain.timezones import in_zone
from gateway.listing import PageQuery
from gateway.schemas import LongText, StaffId
from gateway.text import RequestModel

__all__ = [
    "AppointmentIn",
    "AppointmentItem",
    "AppointmentOut",
    "AppointmentPage",
    "AppointmentsQuery",
    "BookedOut",
    "CancelIn",
    "ConfirmIn",
    "FeedPath",
    "RescheduleIn",
    "Status",
    "appointment_out",
]

Status = Literal["requested", "confirmed", "completed", "no_show", "cancelled"]
ServiceId = Annotated[str, Field(min_length=1, max_length=100)]


class _In(RequestModel):
    """Extra fields forbidden, strings stripped, control characters refused."""


class AppointmentIn(_In):
    """POST /v1/appointments."""

    customer_id: UUID
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    service_id: ServiceId | None = None
    staff_id: StaffId | None = None
    """Without one, the customer's preferred staff member is assigned (if any)."""
    notes: LongText | None = None


class ConfirmIn(_In):
    staff_id: StaffId | None = None
    """Confirm with this staff member instead of the assigned one."""


class RescheduleIn(_In):
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class CancelIn(_In):
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class BookedOut(BaseModel):
    id: UUID
    version: int
    staff_id: str | None
    """The staff member assigned: the one named, else the customer's preferred one."""
    conflicts: list[UUID]
    """The staff member's confirmed appointments this one overlaps: it cannot be confirmed
    at this time while they stand."""


class AppointmentOut(BaseModel):
    id: UUID
    customer_id: UUID
    staff_id: str | None
    staff_source: Literal["request", "preferred_staff", "none"]
    service_id: str | None
    status: Status
    allowed_transitions: list[Status]
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    """The business time zone, which the `*_local` times are in."""
    starts_at_local: datetime
    ends_at_local: datetime
    notes: str | None
    reschedules: int
    """How many times it was moved (the calendar's SEQUENCE)."""
    cancel_reason: str | None
    booked_at: datetime
    updated_at: datetime
    version: int


class AppointmentItem(BaseModel):
    id: UUID
    customer_id: UUID
    staff_id: str | None
    service_id: str | None
    status: Status
    starts_at: datetime
    ends_at: datetime
    reschedules: int
    cancel_reason: str | None
    booked_at: datetime
    updated_at: datetime
    version: int


class AppointmentPage(BaseModel):
    items: list[AppointmentItem]
    next_cursor: str | None


class AppointmentsQuery(PageQuery):
    """The filters of an appointment list; every given one applies."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    staff_id: StaffId | None = None
    customer_id: UUID | None = None
    status: list[Status] | None = None
    """Any of these statuses (repeat the parameter for several)."""
    from_: AwareDatetime | None = Field(default=None, alias="from")
    """Appointments that end after this time."""
    to: AwareDatetime | None = None
    """Appointments that start before this time."""


class FeedPath(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: StaffId


def appointment_out(appointment: Appointment, time_zone: str) -> AppointmentOut:
    return AppointmentOut(
        id=appointment.id,
        customer_id=appointment.customer_id,
        staff_id=appointment.staff_id,
        staff_source=appointment.staff_source,
        service_id=appointment.service_id,
        status=appointment.status,
        allowed_transitions=list(appointment.allowed_transitions),
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        time_zone=time_zone,
        starts_at_local=in_zone(appointment.starts_at, time_zone),
        ends_at_local=in_zone(appointment.ends_at, time_zone),
        notes=appointment.notes,
        reschedules=appointment.reschedules,
        cancel_reason=appointment.cancel_reason,
        booked_at=appointment.created_on,
        updated_at=appointment.modified_on,
        version=appointment.version,
    )
