"""A record saved for a customer while a merge takes it away still ends up on the survivor.

A booking or a ticket reads its customer, then saves; a merge looks up the customer's
records, then saves. Whichever order the two saves come in, no record is left on the
tombstone. Each test puts the merge (or the booking) exactly in the other command's gap.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from tests.unit.domain.records import KINDS, new_record

from domain.appointments import Appointment
from domain.customers import Customer
from domain.errors import MergedCustomerError
from domain.merge_commands import LINKED_KINDS
from domain.relinking import Relinkable
from domain.service import CustomerService, Receipt
from domain.tickets import Ticket

Register = Callable[..., Customer]


def merge(service: CustomerService, survivor: UUID, merged: UUID) -> Receipt:
    versions = {i: service.get_customer(i).version for i in (survivor, merged)}
    return service.merge_customers(survivor, [merged], expected_versions=versions)


def book(service: CustomerService, customer_id: UUID) -> UUID:
    start = datetime.now(UTC) + timedelta(days=1)
    return service.book_appointment(customer_id, start, start + timedelta(hours=1)).aggregate_id


def test_a_booking_that_read_the_customer_before_a_merge_follows_it(
    service: CustomerService, register: Register, monkeypatch: Any
) -> None:
    """The merge commits between the booking's read and its save: the booking moves."""
    survivor, merged = register(), register()
    checked = service.staff_clashes

    def merge_in_the_gap(appointment: Appointment) -> Any:
        monkeypatch.setattr(service, "staff_clashes", checked)
        merge(service, survivor.id, merged.id)
        return checked(appointment)

    monkeypatch.setattr(service, "staff_clashes", merge_in_the_gap)
    appointment = service.repository.get(book(service, merged.id))
    assert isinstance(appointment, Appointment) and appointment.customer_id == survivor.id


def test_a_ticket_opened_while_its_customer_was_merged_follows_it(
    service: CustomerService, register: Register
) -> None:
    survivor, merged = register(), register()
    numbers = service.next_ticket_number

    def merge_in_the_gap() -> int:
        service.next_ticket_number = numbers
        merge(service, survivor.id, merged.id)
        return numbers()

    service.next_ticket_number = merge_in_the_gap
    receipt = service.open_ticket(merged.id, "screen", "cracked", {"type": "phone"})
    ticket = service.repository.get(receipt.aggregate_id)
    assert isinstance(ticket, Ticket) and ticket.customer_id == survivor.id


def test_a_booking_saved_after_the_merge_looked_is_swept_to_the_survivor(
    service: CustomerService, register: Register
) -> None:
    """The booking commits between the merge's look-up of records and its save."""
    survivor, merged = register(), register()
    look_up = service.linked_records
    booked: list[UUID] = []

    def book_in_the_gap(customer_id: UUID) -> set[UUID]:
        found = look_up(customer_id)
        if customer_id == merged.id and not booked:
            booked.append(book(service, merged.id))
        return found

    service.linked_records = book_in_the_gap
    merge(service, survivor.id, merged.id)
    appointment = service.repository.get(booked[0])
    assert isinstance(appointment, Appointment) and appointment.customer_id == survivor.id


def test_every_kind_a_merge_moves_is_made_by_the_tests() -> None:
    """Each kind is made by `new_record`; portal accounts by their own tests (an invite
    needs a login), `test_merge_portal`."""
    names = sorted(name for name, _ in LINKED_KINDS.values())
    assert sorted([*KINDS, "portal_accounts"]) == names


@pytest.mark.parametrize("kind", KINDS)
def test_a_record_that_read_its_customer_before_a_merge_follows_it(
    service: CustomerService, register: Register, monkeypatch: Any, kind: str
) -> None:
    """The merge commits right after the record's command read the customer: the record
    is saved on the tombstone, then moves to the survivor."""
    survivor, merged = register(), register()
    load = service.load

    def load_then_merge(aggregate_id: UUID, kind: type[Any], expected: int | None) -> Any:
        found = load(aggregate_id, kind, expected)
        if aggregate_id == merged.id and kind is Customer:
            monkeypatch.setattr(service, "load", load)
            merge(service, survivor.id, merged.id)
        return found

    monkeypatch.setattr(service, "load", load_then_merge)
    record = service.repository.get(new_record(service, merged.id, kind).aggregate_id)
    assert service.load is load  # the merge did run in the gap
    assert isinstance(record, Relinkable) and record.customer_id == survivor.id


@pytest.mark.parametrize("kind", KINDS)
def test_a_record_saved_after_the_merge_looked_is_swept_to_the_survivor(
    service: CustomerService, register: Register, kind: str
) -> None:
    survivor, merged = register(), register()
    look_up = service.linked_records
    saved: list[UUID] = []

    def save_in_the_gap(customer_id: UUID) -> set[UUID]:
        found = look_up(customer_id)
        if customer_id == merged.id and not saved:
            saved.append(new_record(service, merged.id, kind).aggregate_id)
        return found

    service.linked_records = save_in_the_gap
    receipt = merge(service, survivor.id, merged.id)
    record = service.repository.get(saved[0])
    assert isinstance(record, Relinkable) and record.customer_id == survivor.id
    assert saved[0] not in receipt.result["moved"][str(merged.id)][kind]  # found by the sweep


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("appointments", "tickets")])
def test_a_tombstone_takes_no_new_record(
    service: CustomerService, register: Register, kind: str
) -> None:
    survivor, merged = register(), register()
    merge(service, survivor.id, merged.id)
    with pytest.raises(MergedCustomerError) as refused:
        new_record(service, merged.id, kind)
    assert refused.value.survivor_id == survivor.id
