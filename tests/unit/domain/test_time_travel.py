"""Reading a customer as it was: at a version, at a moment; unknown ids are not found."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.customers import Customer
from domain.errors import NotFoundError
from domain.reservations import reservation_id
from domain.service import CustomerService

Register = Callable[..., Customer]


@pytest.fixture
def ann(service: CustomerService, register: Register) -> Customer:
    """Ann at version 4: registered, renamed, a note added, then blocked."""
    ann = register(last_name="Lee")
    service.change_profile(ann.id, {"last_name": "Li"}, expected_version=1)
    service.add_note(ann.id, "gate code 1234", urgent=True)
    service.block_customer(ann.id, "unpaid", expected_version=3)
    return service.get_customer(ann.id)


def test_a_customer_at_a_version_is_its_state_then(service: CustomerService, ann: Customer) -> None:
    """get_customer(version=n) rebuilds the customer from its first n events."""
    at_1 = service.get_customer(ann.id, version=1)
    at_3 = service.get_customer(ann.id, version=3)
    assert (at_1.version, at_1.profile.last_name, at_1.notes, at_1.blocked) == (1, "Lee", {}, False)
    assert (at_3.version, at_3.profile.last_name, len(at_3.notes), at_3.blocked) == (
        3,
        "Li",
        1,
        False,
    )
    assert service.get_customer(ann.id).blocked is True


def test_a_version_after_the_latest_is_not_found(service: CustomerService, ann: Customer) -> None:
    """Asking for a version the customer has not reached yet is a NotFoundError."""
    with pytest.raises(NotFoundError):
        service.get_customer(ann.id, version=ann.version + 1)


def test_a_customer_as_of_a_moment_is_its_state_then(
    service: CustomerService, ann: Customer
) -> None:
    """get_customer(as_of=t) rebuilds the customer from the events recorded up to t."""
    moments = [e.timestamp for e in service.customer_events(ann.id)]
    for version, moment in enumerate(moments, start=1):
        assert service.get_customer(ann.id, as_of=moment).version == version
    then = service.get_customer(ann.id, as_of=moments[1])
    assert (then.profile.last_name, then.notes) == ("Li", {})
    assert service.get_customer(ann.id, as_of=moments[-1] + timedelta(days=1)).blocked is True


def test_a_customer_as_of_a_moment_matches_the_same_version(
    service: CustomerService, ann: Customer
) -> None:
    """The state as of an event's time equals the state at that event's version."""
    third = list(service.customer_events(ann.id))[2]
    as_of = service.get_customer(ann.id, as_of=third.timestamp)
    at_version = service.get_customer(ann.id, version=3)
    assert {k: v for k, v in vars(as_of).items() if k != "_pending_events"} == {
        k: v for k, v in vars(at_version).items() if k != "_pending_events"
    }


def test_a_customer_before_its_registration_is_not_found(
    service: CustomerService, ann: Customer
) -> None:
    """Asking for a moment before the customer was registered is a NotFoundError."""
    with pytest.raises(NotFoundError):
        service.get_customer(ann.id, as_of=ann.created_on - timedelta(seconds=1))


READS: dict[str, Callable[[CustomerService, UUID], object]] = {
    "now": lambda s, c: s.get_customer(c),
    "at a version": lambda s, c: s.get_customer(c, version=1),
    "as of a moment": lambda s, c: s.get_customer(c, as_of=datetime.now(UTC)),
    "its events": lambda s, c: list(s.customer_events(c)),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_an_unknown_customer_is_not_found(service: CustomerService, read: str) -> None:
    """An unknown id is a NotFoundError, whatever point in time is asked for."""
    with pytest.raises(NotFoundError):
        READS[read](service, uuid4())


def test_an_id_that_is_not_a_customer_is_not_found(
    service: CustomerService, register: Register
) -> None:
    """The id of another kind of aggregate (a reservation) is not found as a customer."""
    register(email="ann@example.com")
    not_a_customer = reservation_id("email", "ann@example.com")
    with pytest.raises(NotFoundError):
        service.get_customer(not_a_customer)
    with pytest.raises(NotFoundError):
        list(service.customer_events(not_a_customer))
