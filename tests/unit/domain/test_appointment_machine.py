"""A Hypothesis state machine walking appointments through their graph while time passes.

Rules book, confirm, reschedule, cancel, complete and mark no-shows on a few appointments
of two customers and two staff members, with stale versions, times in the past, overlaps
and a clock that moves. A simple model predicts every refusal; the invariants check that
no appointment ever reaches a state the graph does not allow, that a staff member's
confirmed appointments never overlap, that the staff schedules hold exactly the confirmed
time, and that replaying the recorded events gives the live state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.appointments import (
    FINAL_STATUSES,
    STATUSES,
    TRANSITIONS,
    Appointment,
    AppointmentStartedError,
    utc_days,
)
from domain.errors import (
    ConflictError,
    DomainError,
    InvalidTransitionError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.schedules import StaffDay, StaffUnavailableError, staff_day_id
from domain.sealing import SecretSealer
from domain.service import CustomerService, Receipt

SETTINGS = settings(max_examples=100, stateful_step_count=30, deadline=None)
T0 = datetime(2025, 3, 29, 21, 0, tzinfo=UTC)
"""Late evening before a daylight-saving night in Europe: bookings cross midnight."""
STAFF = ["pat", "sam"]
OFFSETS = [-60, 0, 30, 60, 90, 120, 180, 300]
"""Minutes from now a generated time starts at: some in the past, many overlapping."""
DURATIONS = [-30, 0, 30, 60, 120, 240]

Reason = tuple[type[DomainError], str | None]


@dataclass
class Expected:
    customer: UUID
    staff: str | None
    status: str
    starts_at: datetime
    ends_at: datetime
    reschedules: int = 0
    version: int = 1

    def holds(
        self, staff: str | None, start: datetime, end: datetime, other: UUID, me: UUID
    ) -> bool:
        return (
            other != me
            and self.status == "confirmed"
            and self.staff == staff
            and self.starts_at < end
            and start < self.ends_at
        )


def outcome(command: Callable[[], Receipt], reasons: set[Reason]) -> Receipt | None:
    """Run a command: it succeeds when no reason to refuse it exists, else fails for one of them."""
    try:
        receipt = command()
    except DomainError as error:
        assert reasons, f"refused without a reason: {error!r}"
        assert (type(error), error.field) in reasons, f"{error!r} is none of {reasons}"
        return None
    assert not reasons, f"accepted although {reasons}"
    return receipt


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class AppointmentGraph(RuleBasedStateMachine):
    """Appointments of two customers with two staff members, as time goes by."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.service = CustomerService(
            sealer=SecretSealer(SecretSealer.generate_key()), clock=self.clock
        )
        self.customers: dict[UUID, str | None] = {}
        """Customer id -> preferred staff (or None); the deleted one is left out."""
        self.deleted = uuid4()
        self.expected: dict[UUID, Expected] = {}
        self.days: set[UUID] = set()
        """Every staff day a confirmed appointment ever held time in."""

    @initialize()
    def customers_exist(self) -> None:
        pat_fan = self.service.register_customer({"first_name": "A", "preferred_staff_id": "pat"})
        nobody = self.service.register_customer({"first_name": "B"})
        gone = self.service.register_customer({"first_name": "C"})
        self.service.delete_customer(gone.aggregate_id, expected_version=1)
        self.customers = {pat_fan.aggregate_id: "pat", nobody.aggregate_id: None}
        self.deleted = gone.aggregate_id
        # Two requests to start from, so every rule has an appointment to act on.
        for minutes, staff in ((60, "pat"), (90, None)):
            start, end = self.times(minutes, 60)
            receipt = self.service.book_appointment(
                pat_fan.aggregate_id, start, end, staff_id=staff
            )
            self.expected[receipt.aggregate_id] = Expected(
                pat_fan.aggregate_id, "pat", "requested", start, end
            )

    # ---- helpers --------------------------------------------------------------------------

    def times(self, offset: int, duration: int) -> tuple[datetime, datetime]:
        start = self.clock.now + timedelta(minutes=offset)
        return start, start + timedelta(minutes=duration)

    def time_reasons(self, start: datetime, end: datetime) -> set[Reason]:
        reasons: set[Reason] = set()
        if end <= start:
            reasons.add((RuleViolationError, "ends_at"))
        if start <= self.clock.now:
            reasons.add((RuleViolationError, "starts_at"))
        return reasons

    def clashes(self, me: UUID, staff: str | None, start: datetime, end: datetime) -> list[UUID]:
        return sorted(
            (i for i, e in self.expected.items() if e.holds(staff, start, end, i, me)), key=str
        )

    def hold(self, expected: Expected) -> None:
        if expected.status == "confirmed" and expected.staff is not None:
            for day in utc_days(expected.starts_at, expected.ends_at):
                self.days.add(staff_day_id(expected.staff, day))

    def pick(self, data: st.DataObject) -> UUID:
        return data.draw(st.sampled_from(sorted(self.expected, key=str)))

    def version(self, expected: Expected, stale: bool) -> int:
        return expected.version - 1 if stale else expected.version

    def transition_reasons(self, expected: Expected, target: str, stale: bool) -> set[Reason]:
        if stale:
            return {(VersionMismatchError, None)}
        if target not in TRANSITIONS[expected.status]:
            return {(InvalidTransitionError, "status")}
        return set()

    # ---- rules ----------------------------------------------------------------------------

    @rule(
        who=st.sampled_from(["pat_fan", "nobody", "deleted", "unknown"]),
        staff=st.sampled_from([None, *STAFF]),
        offset=st.sampled_from(OFFSETS),
        duration=st.sampled_from(DURATIONS),
    )
    def book(self, who: str, staff: str | None, offset: int, duration: int) -> None:
        ids = list(self.customers)
        customer = {
            "pat_fan": ids[0],
            "nobody": ids[1],
            "deleted": self.deleted,
            "unknown": uuid4(),
        }[who]
        start, end = self.times(offset, duration)
        reasons = self.time_reasons(start, end)
        if who == "unknown":
            reasons.add((RuleViolationError, "customer_id"))
        if who == "deleted":
            reasons.add((ConflictError, "customer_id"))
        receipt = outcome(
            lambda: self.service.book_appointment(customer, start, end, staff_id=staff), reasons
        )
        if receipt is None:
            return
        assigned = staff or self.customers[customer]
        self.expected[receipt.aggregate_id] = Expected(customer, assigned, "requested", start, end)
        assert receipt.result["staff_id"] == assigned
        clashes = self.clashes(receipt.aggregate_id, assigned, start, end)
        assert receipt.result["conflicts"] == [str(c) for c in clashes]

    @rule(data=st.data(), staff=st.sampled_from([None, *STAFF]), stale=st.booleans())
    def confirm(self, data: st.DataObject, staff: str | None, stale: bool) -> None:
        appointment_id = self.pick(data)
        expected = self.expected[appointment_id]
        reasons = self.transition_reasons(expected, "confirmed", stale)
        assigned = staff or expected.staff
        if not reasons and assigned is None:
            reasons.add((ConflictError, "staff_id"))
        if not reasons and self.clashes(
            appointment_id, assigned, expected.starts_at, expected.ends_at
        ):
            reasons.add((StaffUnavailableError, "starts_at"))
        receipt = outcome(
            lambda: self.service.confirm_appointment(
                appointment_id, expected_version=self.version(expected, stale), staff_id=staff
            ),
            reasons,
        )
        if receipt is not None:
            expected.status, expected.staff = "confirmed", assigned
            expected.version += 1
            self.hold(expected)

    @rule(
        data=st.data(),
        offset=st.sampled_from(OFFSETS),
        duration=st.sampled_from(DURATIONS),
        stale=st.booleans(),
    )
    def reschedule(self, data: st.DataObject, offset: int, duration: int, stale: bool) -> None:
        appointment_id = self.pick(data)
        expected = self.expected[appointment_id]
        start, end = self.times(offset, duration)
        reasons: set[Reason] = set()
        if stale:
            reasons.add((VersionMismatchError, None))
        elif expected.status in FINAL_STATUSES:
            reasons.add((ConflictError, "status"))
        elif expected.starts_at <= self.clock.now:
            reasons.add((AppointmentStartedError, "starts_at"))
        else:
            reasons = self.time_reasons(start, end)
            moved = (start, end) != (expected.starts_at, expected.ends_at)
            if (
                not reasons
                and moved
                and expected.status == "confirmed"
                and self.clashes(appointment_id, expected.staff, start, end)
            ):
                reasons.add((StaffUnavailableError, "starts_at"))
        receipt = outcome(
            lambda: self.service.reschedule_appointment(
                appointment_id, start, end, expected_version=self.version(expected, stale)
            ),
            reasons,
        )
        if receipt is not None and (start, end) != (expected.starts_at, expected.ends_at):
            expected.starts_at, expected.ends_at = start, end
            expected.reschedules += 1
            expected.version += 1
            self.hold(expected)

    @rule(data=st.data(), reason=st.sampled_from(["ill", " "]), stale=st.booleans())
    def cancel(self, data: st.DataObject, reason: str, stale: bool) -> None:
        appointment_id = self.pick(data)
        expected = self.expected[appointment_id]
        reasons = self.transition_reasons(expected, "cancelled", stale)
        if not reasons and not reason.strip():
            reasons.add((RuleViolationError, "reason"))
        receipt = outcome(
            lambda: self.service.cancel_appointment(
                appointment_id, reason, expected_version=self.version(expected, stale)
            ),
            reasons,
        )
        if receipt is not None:
            expected.status = "cancelled"
            expected.version += 1

    @rule(data=st.data(), stale=st.booleans())
    def complete(self, data: st.DataObject, stale: bool) -> None:
        appointment_id = self.pick(data)
        expected = self.expected[appointment_id]
        receipt = outcome(
            lambda: self.service.complete_appointment(
                appointment_id, expected_version=self.version(expected, stale)
            ),
            self.transition_reasons(expected, "completed", stale),
        )
        if receipt is not None:
            expected.status = "completed"
            expected.version += 1

    @rule(data=st.data(), stale=st.booleans())
    def mark_no_show(self, data: st.DataObject, stale: bool) -> None:
        appointment_id = self.pick(data)
        expected = self.expected[appointment_id]
        reasons = self.transition_reasons(expected, "no_show", stale)
        if not reasons and self.clock.now < expected.starts_at:
            reasons.add((ConflictError, "starts_at"))
        receipt = outcome(
            lambda: self.service.mark_appointment_no_show(
                appointment_id, expected_version=self.version(expected, stale)
            ),
            reasons,
        )
        if receipt is not None:
            expected.status = "no_show"
            expected.version += 1

    @rule(minutes=st.sampled_from([15, 60, 180]))
    def time_passes(self, minutes: int) -> None:
        self.clock.now += timedelta(minutes=minutes)

    # ---- invariants -----------------------------------------------------------------------

    def actual(self) -> dict[UUID, Appointment]:
        return {i: self.service.get_appointment(i) for i in self.expected}

    @invariant()
    def every_appointment_is_as_the_model_expects(self) -> None:
        for appointment_id, appointment in self.actual().items():
            e = self.expected[appointment_id]
            assert appointment.status in STATUSES
            assert (appointment.status, appointment.staff_id, appointment.version) == (
                e.status,
                e.staff,
                e.version,
            )
            assert (appointment.starts_at, appointment.ends_at) == (e.starts_at, e.ends_at)
            assert appointment.reschedules == e.reschedules
            assert appointment.customer_id == e.customer

    @invariant()
    def the_recorded_statuses_walk_the_graph(self) -> None:
        moves = {
            Appointment.Confirmed: "confirmed",
            Appointment.Cancelled: "cancelled",
            Appointment.Completed: "completed",
            Appointment.MarkedNoShow: "no_show",
        }
        for appointment_id in self.expected:
            status = "requested"
            for event in list(self.service.events.get(appointment_id))[1:]:
                target = moves.get(type(event))
                if target is None:
                    assert status not in FINAL_STATUSES  # a reschedule after the end
                    continue
                assert target in TRANSITIONS[status], f"{status} -> {target}"
                status = target

    @invariant()
    def confirmed_appointments_of_a_staff_member_never_overlap(self) -> None:
        confirmed = [a for a in self.actual().values() if a.status == "confirmed"]
        for a in confirmed:
            for b in confirmed:
                if a.id != b.id and a.staff_id == b.staff_id:
                    assert not (a.starts_at < b.ends_at and b.starts_at < a.ends_at)

    @invariant()
    def staff_schedules_hold_exactly_the_confirmed_time(self) -> None:
        held: dict[UUID, dict[UUID, tuple[datetime, datetime]]] = {}
        for a in self.actual().values():
            if a.status == "confirmed" and a.staff_id is not None:
                for day in utc_days(a.starts_at, a.ends_at):
                    held.setdefault(staff_day_id(a.staff_id, day), {})[a.id] = (
                        a.starts_at,
                        a.ends_at,
                    )
        assert set(held) <= self.days
        for day_id in self.days:
            staff_day: StaffDay = self.service.repository.get(day_id)
            assert staff_day.slots == held.get(day_id, {})

    @invariant()
    def replaying_the_recorded_events_gives_the_live_state(self) -> None:
        for appointment_id in self.expected:
            state: Any = None
            for event in self.service.events.get(appointment_id):
                state = event.mutate(state)
            loaded = self.service.get_appointment(appointment_id)
            assert _state(state) == _state(loaded)


def _state(appointment: Appointment) -> dict[str, Any]:
    return {k: v for k, v in vars(appointment).items() if k != "_pending_events"}


AppointmentGraph.TestCase.settings = SETTINGS
TestAppointmentGraph = AppointmentGraph.TestCase
