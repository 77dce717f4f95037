"""Every command and query about appointments, with the staff schedules they keep exact.

A command that makes an appointment hold its staff member's time (confirm), moves held
time (reschedule a confirmed one) or frees it (cancel, complete, no-show) saves the
appointment and the touched `StaffDay`s in one atomic save (see `domain.schedules`).

Commands a customer may give about their own appointments take `customer_scope`
(see `domain.references.load_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.appointments import Appointment, utc_days
from domain.references import active_customer, follow_merges, load_for
from domain.schedules import StaffDay, staff_day_id
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["AppointmentCommands", "Span"]

Span = tuple[str, datetime, datetime]
"""(staff id, start, end) of time an appointment holds."""


class AppointmentCommands(WritePath):
    """The appointment part of the service; `clock` is set by the service."""

    clock: Callable[[], datetime]

    def book_appointment(
        self,
        customer_id: UUID,
        starts_at: datetime,
        ends_at: datetime,
        *,
        staff_id: str | None = None,
        service_id: str | None = None,
        notes: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Request an appointment; without a named staff member, the customer's preferred one.

        The answer lists (as `conflicts`) the staff member's confirmed appointments the new
        one overlaps: a request may overlap, its confirmation may not.
        """

        seen: list[int] = []

        def attempt() -> Change:
            customer = active_customer(self, customer_id)
            seen[:] = [customer.version]
            preferred = customer.profile.preferred_staff_id
            appointment = Appointment.book(
                customer_id=customer.id,
                starts_at=starts_at,
                ends_at=ends_at,
                now=self.clock(),
                staff_id=staff_id or preferred,
                staff_source="request" if staff_id else "preferred_staff",
                service_id=service_id,
                notes=notes,
            )
            change = _changed(appointment)
            change.result["staff_id"] = appointment.staff_id
            change.result["conflicts"] = [str(c) for c in self.staff_clashes(appointment)]
            return change

        receipt = self.execute(attempt, idempotency)
        if not receipt.replayed:
            follow_merges(self, receipt.aggregate_id, customer_id, seen[0])
        return receipt

    def confirm_appointment(
        self,
        appointment_id: UUID,
        *,
        expected_version: int,
        staff_id: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Confirm (optionally with another staff member): the staff member's time is taken."""

        def attempt() -> Change:
            appointment = self._appointment(appointment_id, expected_version)
            appointment.confirm(staff_id)
            return _changed(appointment, self._move_time(appointment, None))

        return self.execute(attempt, idempotency, key=appointment_id)

    def reschedule_appointment(
        self,
        appointment_id: UUID,
        starts_at: datetime,
        ends_at: datetime,
        *,
        expected_version: int,
        customer_scope: UUID | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Move the appointment, refused once its current start time has passed."""

        def attempt() -> Change:
            appointment = self._appointment(appointment_id, expected_version, customer_scope)
            before = _held(appointment)
            appointment.reschedule(starts_at, ends_at, self.clock())
            return _changed(appointment, self._move_time(appointment, before))

        return self.execute(attempt, idempotency, key=appointment_id)

    def cancel_appointment(
        self,
        appointment_id: UUID,
        reason: str,
        *,
        expected_version: int,
        customer_scope: UUID | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._transition(
            appointment_id,
            expected_version,
            lambda a: a.cancel(reason),
            idempotency,
            customer_scope,
        )

    def complete_appointment(
        self,
        appointment_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        return self._transition(appointment_id, expected_version, Appointment.complete, idempotency)

    def mark_appointment_no_show(
        self,
        appointment_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Record that the customer did not come (once the appointment has started)."""
        return self._transition(
            appointment_id,
            expected_version,
            lambda a: a.mark_no_show(self.clock()),
            idempotency,
        )

    # ---- queries --------------------------------------------------------------------------

    def get_appointment(
        self, appointment_id: UUID, *, customer_scope: UUID | None = None
    ) -> Appointment:
        """The appointment now (NotFoundError for another customer's, under a scope)."""
        return self._appointment(appointment_id, None, customer_scope)

    def staff_clashes(self, appointment: Appointment) -> list[UUID]:
        """Confirmed appointments of its staff member that overlap it (read, not held)."""
        if appointment.staff_id is None:
            return []
        clashes: set[UUID] = set()
        for day in utc_days(appointment.starts_at, appointment.ends_at):
            staff_day = self._staff_day(appointment.staff_id, day)
            if staff_day is not None:
                clashes.update(
                    staff_day.clashes(appointment.id, appointment.starts_at, appointment.ends_at)
                )
        return sorted(clashes, key=str)

    # ---- the write path -------------------------------------------------------------------

    def _transition(
        self,
        appointment_id: UUID,
        expected_version: int,
        decide: Callable[[Appointment], Any],
        idempotency: Idempotency | None,
        customer_scope: UUID | None = None,
    ) -> Receipt:
        def attempt() -> Change:
            appointment = self._appointment(appointment_id, expected_version, customer_scope)
            before = _held(appointment)
            decide(appointment)
            return _changed(appointment, self._move_time(appointment, before))

        return self.execute(attempt, idempotency, key=appointment_id)

    def _appointment(
        self,
        appointment_id: UUID,
        expected_version: int | None,
        customer_scope: UUID | None = None,
    ) -> Appointment:
        appointment: Appointment = load_for(
            self, appointment_id, Appointment, expected_version, customer_scope
        )
        return appointment

    def _move_time(self, appointment: Appointment, before: Span | None) -> list[StaffDay]:
        """Release the time it held and take the time it holds now; the days to save."""
        after = _held(appointment)
        if before == after:
            return []
        days: dict[UUID, StaffDay] = {}
        if before is not None:
            staff_id, starts_at, ends_at = before
            for day in utc_days(starts_at, ends_at):
                staff_day = self._staff_day(staff_id, day)
                if staff_day is not None:
                    staff_day.release(appointment.id)
                    days[staff_day.id] = staff_day
        if after is not None:
            staff_id, starts_at, ends_at = after
            for day in utc_days(starts_at, ends_at):
                key = staff_day_id(staff_id, day)
                staff_day = (
                    days.get(key) or self._staff_day(staff_id, day) or StaffDay.open(staff_id, day)
                )
                staff_day.take(appointment.id, starts_at, ends_at)
                days[key] = staff_day
        return list(days.values())

    def _staff_day(self, staff_id: str, day: date) -> StaffDay | None:
        try:
            staff_day: StaffDay = self.repository.get(staff_day_id(staff_id, day))
        except AggregateNotFoundError:
            return None
        return staff_day


def _held(appointment: Appointment) -> Span | None:
    if not appointment.holds_staff_time or appointment.staff_id is None:
        return None
    return (appointment.staff_id, appointment.starts_at, appointment.ends_at)


def _changed(appointment: Appointment, others: list[StaffDay] | None = None) -> Change:
    return Change(
        appointment.id,
        appointment.version,
        {"id": appointment.id, "version": appointment.version},
        [appointment, *(others or [])],
    )
