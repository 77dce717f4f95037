"""Values unique across customers: email, mobile phone, username and customer number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from domain.customers import Customer
from domain.errors import ConflictError, ImmutableFieldError, UniqueValueTakenError
from domain.service import CustomerService

Register = Callable[..., Customer]


def change(service: CustomerService, customer: Customer, **changes: Any) -> Customer:
    """Change the profile on top of the customer's current version and return the result."""
    current = service.get_customer(customer.id)
    service.change_profile(customer.id, changes, expected_version=current.version)
    return service.get_customer(customer.id)


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("email", "ann@example.com", "ANN@EXAMPLE.COM"),
        ("email", "Ann.Lee@example.com", "ann.lee@Example.com"),
        ("mobile_phone", "(415) 555-2671", "+1 415 555 2671"),
        ("username", "ann", "ann"),
        ("username", "ann", "ANN"),
        ("customer_number", 7, 7),
    ],
)
def test_a_unique_value_cannot_be_registered_twice(
    service: CustomerService, register: Register, field: str, first: Any, second: Any
) -> None:
    """A second registration with a value another customer holds is refused naming the field."""
    register(**{field: first})
    with pytest.raises(UniqueValueTakenError) as refused:
        register(first_name="Bob", **{field: second})
    assert refused.value.field == field
    assert isinstance(refused.value, ConflictError)


def test_the_landline_phone_is_not_unique(register: Register) -> None:
    """Two customers may share a landline (a switchboard, a family)."""
    register(phone="(212) 555-0100")
    assert register(first_name="Bob", phone="212-555-0100").profile.phone == "+12125550100"


def test_a_refused_registration_leaves_at_most_a_gap_in_customer_numbers(
    register: Register,
) -> None:
    """A refused registration creates no customer; the next one gets a later, unused number."""
    ann = register(email="ann@example.com")
    with pytest.raises(UniqueValueTakenError):
        register(first_name="Bob", email="ann@example.com")
    assert register(first_name="Cy").customer_number > ann.customer_number


@pytest.mark.parametrize(
    ("field", "value", "other"),
    [
        ("email", "ann@example.com", "ann@example.org"),
        ("mobile_phone", "(415) 555-2671", "(415) 555-2672"),
    ],
)
def test_a_value_released_by_a_profile_change_can_be_registered_by_another(
    service: CustomerService, register: Register, field: str, value: str, other: str
) -> None:
    """Once its holder changes it, an email or mobile phone is free for another customer."""
    ann = register(**{field: value})
    change(service, ann, **{field: other})
    bob = register(first_name="Bob", **{field: value})
    assert getattr(bob.profile, field) == getattr(ann.profile, field)


@pytest.mark.parametrize("field", ["email", "mobile_phone"])
def test_a_value_cleared_with_null_can_be_taken_by_another_through_a_change(
    service: CustomerService, register: Register, field: str
) -> None:
    """A value cleared by a merge-patch null is released and can be taken by a profile change."""
    value = {"email": "ann@example.com", "mobile_phone": "+14155552671"}[field]
    ann = register(**{field: value})
    bob = register(first_name="Bob")
    change(service, ann, **{field: None})
    assert getattr(change(service, bob, **{field: value}).profile, field) == value


def test_a_value_is_taken_back_by_its_former_holder(
    service: CustomerService, register: Register
) -> None:
    """A customer can return to an email it released, as long as nobody took it meanwhile."""
    ann = register(email="ann@example.com")
    change(service, ann, email="ann@example.org")
    assert change(service, ann, email="ann@example.com").profile.email == "ann@example.com"


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "ANN@example.com"), ("mobile_phone", "415-555-2671"), ("username", "Ann")],
)
def test_a_profile_change_cannot_take_a_value_another_customer_holds(
    service: CustomerService, register: Register, field: str, value: str
) -> None:
    """Changing to a value another customer holds is refused and changes nothing."""
    register(email="ann@example.com", mobile_phone="(415) 555-2671", username="ann")
    bob = register(first_name="Bob")
    with pytest.raises(UniqueValueTakenError) as refused:
        change(service, bob, **{field: value})
    assert refused.value.field == field
    assert service.get_customer(bob.id).version == bob.version


def test_a_change_of_email_case_keeps_the_reservation(
    service: CustomerService, register: Register
) -> None:
    """Changing only the case of one's own email is allowed and the value stays reserved."""
    ann = register(email="ann@example.com")
    assert change(service, ann, email="Ann@example.com").profile.email == "Ann@example.com"
    with pytest.raises(UniqueValueTakenError):
        register(first_name="Bob", email="ann@example.com")


def test_a_deleted_customer_keeps_its_values_reserved(
    service: CustomerService, register: Register
) -> None:
    """A soft-deleted customer still holds its email, so restoring it can never clash."""
    ann = register(email="ann@example.com")
    service.delete_customer(ann.id, expected_version=ann.version)
    with pytest.raises(UniqueValueTakenError):
        register(first_name="Bob", email="ann@example.com")


def test_a_username_can_be_set_once_when_absent(
    service: CustomerService, register: Register
) -> None:
    """A customer registered without a username can be given one later, which is reserved."""
    ann = register()
    assert change(service, ann, username="ann").profile.username == "ann"
    with pytest.raises(UniqueValueTakenError):
        register(first_name="Bob", username="ann")


@pytest.mark.parametrize("new", ["anne", None])
def test_a_username_once_set_cannot_be_changed_or_cleared(
    service: CustomerService, register: Register, new: str | None
) -> None:
    """Changing or clearing a username once set is an ImmutableFieldError."""
    ann = register(username="ann")
    with pytest.raises(ImmutableFieldError) as refused:
        change(service, ann, username=new)
    assert refused.value.field == "username"


def test_a_username_may_change_its_case_only(service: CustomerService, register: Register) -> None:
    """A username can be re-cased (it is the same login), keeping its single reservation."""
    ann = register(username="ann")
    changed = change(service, ann, username="Ann")
    assert changed.profile.username == "Ann"
    assert changed.version == ann.version + 1
    with pytest.raises(UniqueValueTakenError):
        register(first_name="Bob", username="ann")


def test_setting_the_same_username_again_is_no_change(
    service: CustomerService, register: Register
) -> None:
    """Sending the current username again is accepted and records nothing."""
    ann = register(username="ann")
    assert change(service, ann, username=" ann ").version == ann.version


@pytest.mark.parametrize("number", [5, 1])
def test_the_customer_number_cannot_be_changed(
    service: CustomerService, register: Register, number: int
) -> None:
    """A customer_number in a profile change is an ImmutableFieldError, even the same one."""
    ann = register()
    with pytest.raises(ImmutableFieldError) as refused:
        service.change_profile(ann.id, {"customer_number": number}, expected_version=1)
    assert refused.value.field == "customer_number"
