"""Appointments in memory: booking, the status graph, the clock, and staff overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.appointments import Appointment, AppointmentStartedError
from domain.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.schedules import StaffDay, StaffUnavailableError, staff_day_id
from domain.sealing import SecretSealer
from domain.service import CustomerService
from domain.timezones import business_zone, in_zone, local_text

START = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> CustomerService:
    return CustomerService(sealer=SecretSealer(SecretSealer.generate_key()), clock=clock)


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    return service.register_customer(
        {"first_name": "Ann", "preferred_staff_id": "pat"}
    ).aggregate_id


def book(service: CustomerService, customer: UUID, hours: float = 1, **kw: Any) -> UUID:
    """An appointment starting `hours` after START, lasting an hour unless told."""
    starts = kw.pop("starts_at", START + timedelta(hours=hours))
    ends = kw.pop("ends_at", starts + HOUR)
    return service.book_appointment(customer, starts, ends, **kw).aggregate_id


def get(service: CustomerService, appointment_id: UUID) -> Appointment:
    return service.get_appointment(appointment_id)


# ---- booking --------------------------------------------------------------------------------


def test_booking_without_staff_forwards_to_the_preferred_staff(
    service: CustomerService, customer: UUID
) -> None:
    """Without a named staff member, the customer's preferred staff member gets the request."""
    appointment = get(service, book(service, customer))
    assert (appointment.staff_id, appointment.staff_source) == ("pat", "preferred_staff")
    assert appointment.status == "requested" and appointment.reschedules == 0


def test_a_named_staff_member_wins_and_nobody_is_assigned_without_either(
    service: CustomerService, customer: UUID
) -> None:
    """A named staff member is kept; a customer without a preferred one gets nobody yet."""
    named = get(service, book(service, customer, staff_id="sam"))
    assert (named.staff_id, named.staff_source) == ("sam", "request")
    other = service.register_customer({"first_name": "Bo"}).aggregate_id
    unassigned = get(service, book(service, other))
    assert (unassigned.staff_id, unassigned.staff_source) == (None, "none")


@pytest.mark.parametrize(
    ("starts", "ends", "field"),
    [
        (START + 2 * HOUR, START + HOUR, "ends_at"),
        (START + 2 * HOUR, START + 2 * HOUR, "ends_at"),
        (START - HOUR, START + HOUR, "starts_at"),
        (START, START + HOUR, "starts_at"),
        (START + HOUR, START + HOUR + timedelta(days=8), "ends_at"),
        (datetime(2025, 3, 11, 9), datetime(2025, 3, 11, 10), "starts_at"),
    ],
    ids=["end-before-start", "zero-length", "in-the-past", "starting-now", "too-long", "naive"],
)
def test_times_that_make_no_appointment_are_refused_naming_the_field(
    service: CustomerService, customer: UUID, starts: datetime, ends: datetime, field: str
) -> None:
    """End before start, a past start, a week-plus length or a time without offset: 422."""
    with pytest.raises(RuleViolationError) as refused:
        service.book_appointment(customer, starts, ends)
    assert refused.value.field == field


def test_unknown_and_deleted_customers_cannot_book(
    service: CustomerService, customer: UUID
) -> None:
    """An unknown customer is a bad field (422); a deleted one a conflict (409)."""
    with pytest.raises(RuleViolationError) as unknown:
        book(service, uuid4())
    assert unknown.value.field == "customer_id"
    service.delete_customer(customer, expected_version=1)
    with pytest.raises(ConflictError) as deleted:
        book(service, customer)
    assert deleted.value.field == "customer_id"


def test_times_are_stored_as_utc_instants(service: CustomerService, customer: UUID) -> None:
    """A time given with an offset is the same instant in UTC."""
    berlin = business_zone("Europe/Berlin")
    starts = datetime(2025, 3, 10, 12, 0, tzinfo=berlin)
    appointment = get(service, book(service, customer, starts_at=starts))
    assert appointment.starts_at == datetime(2025, 3, 10, 11, 0, tzinfo=UTC)
    assert appointment.starts_at.utcoffset() == timedelta(0)


# ---- the status graph -------------------------------------------------------------------------


def test_the_graph_refuses_transitions_it_does_not_have(
    service: CustomerService, customer: UUID
) -> None:
    """Completing a request, or anything after a final state, answers the allowed moves."""
    appointment_id = book(service, customer)
    with pytest.raises(InvalidTransitionError) as refused:
        service.complete_appointment(appointment_id, expected_version=1)
    assert refused.value.allowed == ["confirmed", "cancelled"]
    service.cancel_appointment(appointment_id, "customer ill", expected_version=1)
    for command in (service.confirm_appointment, service.complete_appointment):
        with pytest.raises(InvalidTransitionError) as final:
            command(appointment_id, expected_version=2)
        assert final.value.allowed == []
    with pytest.raises(ConflictError) as moved:
        service.reschedule_appointment(
            appointment_id, START + 5 * HOUR, START + 6 * HOUR, expected_version=2
        )
    assert moved.value.field == "status"


def test_cancelling_needs_a_reason(service: CustomerService, customer: UUID) -> None:
    """A blank reason is refused; the reason is kept."""
    appointment_id = book(service, customer)
    with pytest.raises(RuleViolationError) as blank:
        service.cancel_appointment(appointment_id, "  ", expected_version=1)
    assert blank.value.field == "reason"
    service.cancel_appointment(appointment_id, "car broke down", expected_version=1)
    appointment = get(service, appointment_id)
    assert (appointment.status, appointment.cancel_reason) == ("cancelled", "car broke down")


def test_confirming_needs_someone_and_may_reassign(service: CustomerService) -> None:
    """An unassigned request needs a staff_id to be confirmed; a named one reassigns it."""
    nobody = service.register_customer({"first_name": "Bo"}).aggregate_id
    appointment_id = book(service, nobody)
    with pytest.raises(ConflictError) as refused:
        service.confirm_appointment(appointment_id, expected_version=1)
    assert refused.value.field == "staff_id"
    service.confirm_appointment(appointment_id, expected_version=1, staff_id="kim")
    assert get(service, appointment_id).staff_id == "kim"


def test_a_stale_version_is_refused(service: CustomerService, customer: UUID) -> None:
    """If-Match of an older version: VersionMismatchError (412), nothing changes."""
    appointment_id = book(service, customer)
    service.confirm_appointment(appointment_id, expected_version=1)
    with pytest.raises(VersionMismatchError):
        service.cancel_appointment(appointment_id, "late", expected_version=1)
    assert get(service, appointment_id).status == "confirmed"


# ---- the clock ----------------------------------------------------------------------------------


def test_rescheduling_counts_and_stops_once_the_start_has_passed(
    service: CustomerService, customer: UUID, clock: Clock
) -> None:
    """Each move counts (the calendar SEQUENCE); once the start passed, moving is a 409."""
    appointment_id = book(service, customer, hours=2)
    service.reschedule_appointment(
        appointment_id, START + 3 * HOUR, START + 4 * HOUR, expected_version=1
    )
    # The same time again is no move: nothing recorded, nothing counted.
    same = service.reschedule_appointment(
        appointment_id, START + 3 * HOUR, START + 4 * HOUR, expected_version=2
    )
    assert same.version == 2 and get(service, appointment_id).reschedules == 1
    clock.now = START + 3 * HOUR
    with pytest.raises(AppointmentStartedError) as started:
        service.reschedule_appointment(
            appointment_id, START + 5 * HOUR, START + 6 * HOUR, expected_version=2
        )
    assert started.value.field == "starts_at"


def test_a_move_into_the_past_is_refused(
    service: CustomerService, customer: UUID, clock: Clock
) -> None:
    """Until the start, the new time must still be in the future."""
    appointment_id = book(service, customer, hours=5)
    clock.now = START + 2 * HOUR
    with pytest.raises(RuleViolationError) as refused:
        service.reschedule_appointment(
            appointment_id, START + HOUR, START + 9 * HOUR, expected_version=1
        )
    assert refused.value.field == "starts_at"


def test_a_no_show_only_after_the_start(
    service: CustomerService, customer: UUID, clock: Clock
) -> None:
    """Nobody can miss an appointment that has not started yet."""
    appointment_id = book(service, customer)
    service.confirm_appointment(appointment_id, expected_version=1)
    with pytest.raises(ConflictError) as early:
        service.mark_appointment_no_show(appointment_id, expected_version=2)
    assert early.value.field == "starts_at"
    clock.now = START + HOUR + timedelta(minutes=15)
    service.mark_appointment_no_show(appointment_id, expected_version=2)
    assert get(service, appointment_id).status == "no_show"


# ---- staff overlaps ---------------------------------------------------------------------------


def test_a_request_may_overlap_but_its_confirmation_may_not(
    service: CustomerService, customer: UUID
) -> None:
    """Booking reports the clash; confirming it is refused naming the holder; nothing saved."""
    first = book(service, customer, hours=1)
    service.confirm_appointment(first, expected_version=1)
    second = service.book_appointment(customer, START + 1.5 * HOUR, START + 3 * HOUR)
    assert second.result["conflicts"] == [str(first)]
    with pytest.raises(StaffUnavailableError) as refused:
        service.confirm_appointment(second.aggregate_id, expected_version=1)
    assert refused.value.clashes == [first] and refused.value.field == "starts_at"
    assert get(service, second.aggregate_id).status == "requested"


def test_back_to_back_is_no_overlap_and_other_staff_are_free(
    service: CustomerService, customer: UUID
) -> None:
    """[9, 10) and [10, 11) do not overlap; another staff member's time is theirs."""
    first = book(service, customer, hours=1)
    service.confirm_appointment(first, expected_version=1)
    after = book(service, customer, hours=2)
    service.confirm_appointment(after, expected_version=1)
    overlapping = book(service, customer, hours=1, staff_id="sam")
    service.confirm_appointment(overlapping, expected_version=1)


def test_cancelling_frees_the_time(service: CustomerService, customer: UUID) -> None:
    """A cancelled appointment holds no time: another can be confirmed in it."""
    first = book(service, customer)
    service.confirm_appointment(first, expected_version=1)
    service.cancel_appointment(first, "moved away", expected_version=2)
    second = book(service, customer)
    service.confirm_appointment(second, expected_version=1)


def test_a_confirmed_appointment_moves_its_held_time(
    service: CustomerService, customer: UUID
) -> None:
    """Moving a confirmed appointment frees its old time and cannot land on another's."""
    first, second = book(service, customer, hours=1), book(service, customer, hours=3)
    service.confirm_appointment(first, expected_version=1)
    service.confirm_appointment(second, expected_version=1)
    with pytest.raises(StaffUnavailableError):
        service.reschedule_appointment(
            first, START + 3.5 * HOUR, START + 5 * HOUR, expected_version=2
        )
    assert get(service, first).starts_at == START + HOUR
    service.reschedule_appointment(first, START + 5 * HOUR, START + 6 * HOUR, expected_version=2)
    third = book(service, customer, hours=1)
    service.confirm_appointment(third, expected_version=1)


def test_overlaps_across_midnight_are_found(service: CustomerService, customer: UUID) -> None:
    """An appointment over midnight holds time on both days it touches."""
    late = START.replace(hour=22)
    overnight = book(service, customer, starts_at=late, ends_at=late + 4 * HOUR)
    service.confirm_appointment(overnight, expected_version=1)
    early = START.replace(hour=1) + timedelta(days=1)
    next_morning = book(service, customer, starts_at=early, ends_at=early + HOUR)
    with pytest.raises(StaffUnavailableError):
        service.confirm_appointment(next_morning, expected_version=1)
    day: StaffDay = service.repository.get(staff_day_id("pat", early.date()))
    assert list(day.slots) == [overnight]


# ---- customers and events -----------------------------------------------------------------------


def test_a_customer_scope_hides_other_customers_appointments(
    service: CustomerService, customer: UUID
) -> None:
    """Under another customer's scope the appointment does not exist, whatever the version."""
    appointment_id = book(service, customer)
    other = service.register_customer({"first_name": "Eve"}).aggregate_id
    with pytest.raises(NotFoundError):
        service.get_appointment(appointment_id, customer_scope=other)
    with pytest.raises(NotFoundError):
        service.cancel_appointment(
            appointment_id, "mine now", expected_version=99, customer_scope=other
        )
    service.cancel_appointment(appointment_id, "ill", expected_version=1, customer_scope=customer)


def test_every_appointment_event_names_its_customer(
    service: CustomerService, customer: UUID, clock: Clock
) -> None:
    """The per-customer views and the history pick appointment events up by customer_id."""
    appointment_id = book(service, customer)
    service.confirm_appointment(appointment_id, expected_version=1)
    service.reschedule_appointment(
        appointment_id, START + 2 * HOUR, START + 3 * HOUR, expected_version=2
    )
    clock.now = START + 2 * HOUR
    service.complete_appointment(appointment_id, expected_version=3)
    events = list(service.events.get(appointment_id))
    assert [type(e).__name__ for e in events] == ["Booked", "Confirmed", "Rescheduled", "Completed"]
    assert all(e.customer_id == customer for e in events)


def test_local_times_follow_daylight_saving(service: CustomerService) -> None:
    """09:00 UTC is 10:00 in Berlin before the spring change and 11:00 after it."""
    before = datetime(2025, 3, 29, 9, 0, tzinfo=UTC)
    after = before + timedelta(days=2)
    assert in_zone(before, "Europe/Berlin").hour == 10
    assert in_zone(after, "Europe/Berlin").hour == 11
    assert local_text(before, "Europe/Berlin") == "Sat 29 Mar 2025, 10:00 CET"
    assert local_text(after, "Europe/Berlin") == "Mon 31 Mar 2025, 11:00 CEST"
    assert local_text(datetime(2025, 11, 2, 14, 0, tzinfo=UTC), "America/New_York").endswith(
        "09:00 EST"
    )
