"""The appointments read model: one row per appointment, and the query of its list views.

Lists by staff member, customer, status and time window, in time order, one keyset page
at a time: `GET /v1/appointments`, a customer's appointments, and the per-staff calendar
feed. Every update is guarded by the aggregate version, so applying an event twice (a
parked event retried after a fix) changes nothing. Other events are stepped over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql

from domain.appointments import Appointment
from domain.customers import Customer
from projections.base import ReadModel

__all__ = ["COLUMNS", "AppointmentCriteria", "AppointmentsModel", "appointments_statement"]

COLUMNS = (
    "id",
    "customer_id",
    "staff_id",
    "service_id",
    "status",
    "starts_at",
    "ends_at",
    "reschedules",
    "cancel_reason",
    "booked_at",
    "updated_at",
    "version",
)


class AppointmentsModel(ReadModel):
    """Appointments as the list views and calendar feeds show them."""

    name = "appointments"

    def wants(self, event_class: type[Any]) -> bool:
        return (
            issubclass(event_class, Appointment.Booked)
            or event_class in _CHANGES
            or event_class is Customer.Erased
        )

    def apply(self, cursor: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Customer.Erased):
            # A cancellation's reason is the customer's words; times and staff are not.
            cursor.execute(
                sql.SQL("UPDATE {} SET cancel_reason = NULL WHERE customer_id = %s").format(
                    self.table("appointments")
                ),
                (event.originator_id,),
            )
            return
        if isinstance(event, Appointment.Booked):
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (id, customer_id, staff_id, service_id, status, starts_at,"
                    " ends_at, booked_at, updated_at, version) VALUES (%(id)s, %(customer_id)s,"
                    " %(staff_id)s, %(service_id)s, 'requested', %(starts_at)s, %(ends_at)s,"
                    " %(at)s, %(at)s, %(version)s) ON CONFLICT (id) DO NOTHING"
                ).format(self.table("appointments")),
                {
                    "id": event.originator_id,
                    "customer_id": event.customer_id,
                    "staff_id": event.staff_id,
                    "service_id": event.service_id,
                    "starts_at": event.starts_at,
                    "ends_at": event.ends_at,
                    "at": event.timestamp,
                    "version": event.originator_version,
                },
            )
            return
        change = _CHANGES.get(type(event))
        if change is None:
            return
        assignments, values = change(event)
        cursor.execute(
            sql.SQL(
                "UPDATE {} SET {}, updated_at = %(at)s, version = %(version)s"
                " WHERE id = %(id)s AND version < %(version)s"
            ).format(self.table("appointments"), sql.SQL(assignments)),
            {
                **values,
                "id": event.originator_id,
                "at": event.timestamp,
                "version": event.originator_version,
            },
        )


Change = Callable[[Any], tuple[str, dict[str, Any]]]
"""An event's SET clause (named parameters) and its values."""

_CHANGES: dict[type, Change] = {
    Appointment.Confirmed: lambda e: (
        "status = 'confirmed', staff_id = %(staff_id)s",
        {"staff_id": e.staff_id},
    ),
    Appointment.Rescheduled: lambda e: (
        "starts_at = %(starts_at)s, ends_at = %(ends_at)s, reschedules = reschedules + 1",
        {"starts_at": e.starts_at, "ends_at": e.ends_at},
    ),
    Appointment.Cancelled: lambda e: (
        "status = 'cancelled', cancel_reason = %(reason)s",
        {"reason": e.reason},
    ),
    Appointment.Completed: lambda e: ("status = 'completed'", {}),
    Appointment.MarkedNoShow: lambda e: ("status = 'no_show'", {}),
    # A merge of its customer moves it to the survivor (and its undoing back).
    Appointment.Relinked: lambda e: (
        "customer_id = %(customer_id)s",
        {"customer_id": e.customer_id},
    ),
}


@dataclass(frozen=True)
class AppointmentCriteria:
    """Which appointments a list shows; every given filter applies."""

    staff_id: str | None = None
    customer_id: UUID | None = None
    statuses: tuple[str, ...] = ()
    starts_before: datetime | None = None
    """`to`: appointments that start before it (exclusive)."""
    ends_after: datetime | None = None
    """`from`: appointments that end after it, so one running across `from` is listed."""


def appointments_statement(
    schema: str,
    criteria: AppointmentCriteria,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT of one page in (starts_at, id) order, after the previous page's last key."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit}
    for column, value in (("staff_id", criteria.staff_id), ("customer_id", criteria.customer_id)):
        if value is not None:
            params[column] = value
            where.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
    if criteria.statuses:
        params["statuses"] = list(criteria.statuses)
        where.append(sql.SQL("status = ANY(%(statuses)s)"))
    if criteria.starts_before is not None:
        params["starts_before"] = criteria.starts_before
        where.append(sql.SQL("starts_at < %(starts_before)s"))
    if criteria.ends_after is not None:
        params["ends_after"] = criteria.ends_after
        where.append(sql.SQL("ends_at > %(ends_after)s"))
    if after is not None:
        params["after_at"], params["after_id"] = after
        where.append(sql.SQL("(starts_at, id) > (%(after_at)s, %(after_id)s)"))
    statement = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {where} ORDER BY starts_at, id LIMIT %(limit)s"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        table=sql.Identifier(schema, "appointments"),
        where=sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
    )
    return statement, params
