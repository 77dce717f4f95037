"""Pets, interactions, chat and satisfaction scores on the in-memory store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from domain.customers import Customer
from domain.errors import ConflictError, NotFoundError, RuleViolationError, VersionMismatchError
from domain.pets import Pet, Vet
from domain.service import CustomerService


def test_a_pet_is_added_with_its_vet_whose_phone_is_stored_in_e164(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """The vet's phone is normalised like the customer's phones."""
    customer = register()
    receipt = service.add_pet(
        customer.id,
        {"name": "Rex", "species": "dog", "vet": {"name": "Dr Who", "phone": "(415) 555-2671"}},
    )
    pet: Pet = service.repository.get(receipt.aggregate_id)
    assert pet.customer_id == customer.id
    assert pet.vet == Vet(name="Dr Who", phone="+14155552671")


def test_a_pet_needs_a_name_and_species_and_a_birthday_not_in_the_future(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """Each refusal names its field."""
    customer = register()
    for fields, field in (
        ({"species": "cat"}, "name"),
        ({"name": "Tom", "species": " "}, "species"),
        (
            {"name": "Tom", "species": "cat", "birthday": date.today() + timedelta(days=2)},
            "birthday",
        ),
        ({"name": "Tom", "species": "cat", "vet": {"phone": "12"}}, "vet.phone"),
        ({"name": "Tom", "species": "cat", "vet": {"fax": "1"}}, "vet.fax"),
    ):
        with pytest.raises(RuleViolationError) as refused:
            service.add_pet(customer.id, fields)
        assert refused.value.field == field


def test_a_merge_patch_changes_only_what_differs_and_merges_the_vet(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """`vet` merges field by field; an unchanged patch makes no event."""
    customer = register()
    pet_id = service.add_pet(
        customer.id, {"name": "Rex", "species": "dog", "vet": {"name": "Dr A"}}
    ).aggregate_id
    receipt = service.change_pet(
        customer.id, pet_id, {"vet": {"clinic": "Paws"}, "breed": "beagle"}, expected_version=1
    )
    assert receipt.version == 2
    pet: Pet = service.repository.get(pet_id)
    assert pet.vet == Vet(name="Dr A", clinic="Paws") and pet.breed == "beagle"
    assert (
        service.change_pet(customer.id, pet_id, {"breed": "beagle"}, expected_version=2).version
        == 2
    )
    with pytest.raises(VersionMismatchError):
        service.change_pet(customer.id, pet_id, {"breed": "pug"}, expected_version=1)


def test_another_customers_pet_and_a_removed_pet_are_not_found(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """A pet is reached only through its own customer, and not after removal."""
    owner, other = register(), register()
    pet_id = service.add_pet(owner.id, {"name": "Rex", "species": "dog"}).aggregate_id
    with pytest.raises(NotFoundError):
        service.remove_pet(other.id, pet_id, expected_version=1)
    service.remove_pet(owner.id, pet_id, expected_version=1)
    with pytest.raises(NotFoundError):
        service.change_pet(owner.id, pet_id, {"name": "Max"}, expected_version=2)


def test_records_are_refused_for_unknown_deleted_and_erased_customers(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """Unknown: not found; deleted or erased: a conflict."""
    with pytest.raises(NotFoundError):
        service.post_message(uuid4(), "hello", sender="staff")
    deleted, erased = register(), register()
    service.delete_customer(deleted.id, expected_version=1)
    service.erase_customer(erased.id, expected_version=1)
    for customer in (deleted, erased):
        with pytest.raises(ConflictError):
            service.log_interaction(
                customer.id, kind="call", direction="inbound", summary="s", staff_id="bob"
            )


def test_an_interaction_cannot_be_logged_in_the_future(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """Beyond the clock skew, `at` is refused; within it, accepted."""
    customer = register()
    now = datetime.now(UTC)
    service.log_interaction(
        customer.id,
        kind="visit",
        direction="outbound",
        summary="ok",
        staff_id="bob",
        at=now + timedelta(minutes=1),
    )
    with pytest.raises(RuleViolationError) as refused:
        service.log_interaction(
            customer.id,
            kind="visit",
            direction="outbound",
            summary="no",
            staff_id="bob",
            at=now + timedelta(hours=1),
        )
    assert refused.value.field == "at"


def test_a_ticket_takes_one_satisfaction_score_and_only_from_its_own_customer(
    service: CustomerService, register: Callable[..., Customer]
) -> None:
    """A second score for a ticket: 409; another customer's or no ticket: 422 on ticket_id."""
    owner, other = register(), register()
    ticket_id = service.open_ticket(owner.id, "Screen", "cracked", {"type": "phone"}).aggregate_id
    service.give_satisfaction(owner.id, 5, "great", ticket_id=ticket_id)
    with pytest.raises(ConflictError) as again:
        service.give_satisfaction(owner.id, 1, ticket_id=ticket_id)
    assert again.value.field == "ticket_id"
    for customer_id, asked in ((other.id, ticket_id), (owner.id, uuid4())):
        with pytest.raises(RuleViolationError) as refused:
            service.give_satisfaction(customer_id, 3, ticket_id=asked)
        assert refused.value.field == "ticket_id"
    with pytest.raises(RuleViolationError) as out_of_range:
        service.give_satisfaction(owner.id, 6)
    assert out_of_range.value.field == "score"
    # Scores without a ticket may be many.
    service.give_satisfaction(owner.id, 4)
    service.give_satisfaction(owner.id, 2)
