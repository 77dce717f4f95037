"""Repair tickets in memory: opening, the repair graph, comments and the timeline."""

from __future__ import annotations

import dataclasses
from uuid import UUID, uuid4

import pytest

from domain.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    RuleViolationError,
    VersionMismatchError,
)
from domain.service import CustomerService
from domain.tickets import Device, Ticket

PHONE = {"type": "phone", "make": "Fairphone", "model": "5", "serial": "FP5-0001"}


@pytest.fixture
def customer(service: CustomerService) -> UUID:
    return service.register_customer({"first_name": "Ann"}).aggregate_id


def open_ticket(service: CustomerService, customer: UUID) -> UUID:
    return service.open_ticket(customer, "Cracked screen", "Dropped it", PHONE).aggregate_id


def test_a_ticket_opens_new_with_its_device(service: CustomerService, customer: UUID) -> None:
    """Device, problem and subject are kept; the timeline starts with `new`."""
    ticket = service.get_ticket(open_ticket(service, customer))
    assert ticket.device == Device("phone", "Fairphone", "5", "FP5-0001")
    assert (ticket.status, ticket.subject, ticket.problem) == (
        "new",
        "Cracked screen",
        "Dropped it",
    )
    assert [step.status for step in ticket.timeline] == ["new"]


def test_tickets_are_numbered_in_order_from_the_service_s_sequence(
    service: CustomerService, customer: UUID
) -> None:
    """Each ticket takes the next number; the answer to opening it says which."""
    first = service.open_ticket(customer, "Cracked screen", "Dropped it", PHONE)
    second = service.open_ticket(customer, "Battery", "Drains", PHONE)
    assert (first.result["number"], second.result["number"]) == (1, 2)
    assert service.get_ticket(second.aggregate_id).number == 2


def test_a_ticket_stored_before_numbers_reads_back_with_none(
    service: CustomerService, customer: UUID
) -> None:
    """A v1 `Opened` (no number) is upcast by the library on reading: number None."""
    ticket_id = open_ticket(service, customer)
    [stored] = service.recorder.select_events(ticket_id, lte=1)
    state = service.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    del state["number"]
    v1 = dataclasses.replace(stored, state=service.mapper.transcoder.encode(state))
    opened = service.mapper.to_domain_event(v1)
    assert isinstance(opened, Ticket.Opened) and opened.number is None
    assert opened.mutate(None).number is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("subject", "problem", "device", "field"),
    [
        (" ", "x", PHONE, "subject"),
        ("x", "", PHONE, "problem"),
        ("x", "y", {"type": " "}, "device.type"),
        ("x", "y", {"type": "phone", "colour": "red"}, "device.colour"),
    ],
)
def test_blank_or_unknown_fields_are_refused(
    service: CustomerService,
    customer: UUID,
    subject: str,
    problem: str,
    device: dict[str, str],
    field: str,
) -> None:
    """A ticket needs a subject, a problem and a device type; a device has no other fields."""
    with pytest.raises(RuleViolationError) as refused:
        service.open_ticket(customer, subject, problem, device)
    assert refused.value.field == field


def test_unknown_and_deleted_customers_get_no_ticket(
    service: CustomerService, customer: UUID
) -> None:
    """An unknown customer is a bad field (422); a deleted one a conflict (409)."""
    with pytest.raises(RuleViolationError):
        open_ticket(service, uuid4())
    service.delete_customer(customer, expected_version=1)
    with pytest.raises(ConflictError) as refused:
        open_ticket(service, customer)
    assert refused.value.field == "customer_id"


def test_the_repair_walks_the_graph_and_the_timeline_records_it(
    service: CustomerService, customer: UUID
) -> None:
    """Parts can be awaited twice; each step is on the timeline with its note."""
    ticket_id = open_ticket(service, customer)
    steps = [
        "diagnosing",
        "awaiting_parts",
        "in_repair",
        "awaiting_parts",
        "in_repair",
        "ready_for_pickup",
        "closed",
    ]
    for version, status in enumerate(steps, start=1):
        service.change_ticket_status(ticket_id, status, f"to {status}", expected_version=version)
    ticket = service.get_ticket(ticket_id)
    assert [s.status for s in ticket.timeline] == ["new", *steps]
    assert [s.previous_status for s in ticket.timeline] == [None, "new", *steps[:-1]]
    assert ticket.timeline[-1].note == "to closed"


def test_a_transition_off_the_graph_names_the_allowed_ones(
    service: CustomerService, customer: UUID
) -> None:
    """new -> in_repair is not an edge: 409 listing diagnosing and cancelled."""
    ticket_id = open_ticket(service, customer)
    with pytest.raises(InvalidTransitionError) as refused:
        service.change_ticket_status(ticket_id, "in_repair", expected_version=1)
    assert refused.value.allowed == ["diagnosing", "cancelled"]
    with pytest.raises(RuleViolationError):
        service.change_ticket_status(ticket_id, "fixed", expected_version=1)


def test_final_states_are_final(service: CustomerService, customer: UUID) -> None:
    """From cancelled nothing is allowed, not even a comment."""
    ticket_id = open_ticket(service, customer)
    service.change_ticket_status(ticket_id, "cancelled", expected_version=1)
    with pytest.raises(InvalidTransitionError) as refused:
        service.change_ticket_status(ticket_id, "diagnosing", expected_version=2)
    assert refused.value.allowed == []
    with pytest.raises(ConflictError) as closed:
        service.comment_on_ticket(ticket_id, "too late", public=True)
    assert closed.value.field == "status"


def test_comments_are_public_or_internal(service: CustomerService, customer: UUID) -> None:
    """Both are kept in order; only public ones are listed for the customer."""
    ticket_id = open_ticket(service, customer)
    service.comment_on_ticket(ticket_id, "We'll call you", public=True)
    service.comment_on_ticket(ticket_id, "Customer dropped it twice", public=False)
    ticket = service.get_ticket(ticket_id)
    assert [c.public for c in ticket.comments] == [True, False]
    assert [c.text for c in ticket.public_comments()] == ["We'll call you"]
    with pytest.raises(RuleViolationError):
        service.comment_on_ticket(ticket_id, "  ", public=True)


def test_scope_and_versions(service: CustomerService, customer: UUID) -> None:
    """Another customer's scope finds nothing; a stale version is refused."""
    ticket_id = open_ticket(service, customer)
    other = service.register_customer({"first_name": "Eve"}).aggregate_id
    with pytest.raises(NotFoundError):
        service.get_ticket(ticket_id, customer_scope=other)
    with pytest.raises(NotFoundError):
        service.comment_on_ticket(ticket_id, "hi", public=True, customer_scope=other)
    with pytest.raises(VersionMismatchError):
        service.change_ticket_status(ticket_id, "diagnosing", expected_version=7)
    service.comment_on_ticket(ticket_id, "mine", public=True, customer_scope=customer)


def test_every_ticket_event_names_its_customer(service: CustomerService, customer: UUID) -> None:
    """The per-customer views and the history pick ticket events up by customer_id."""
    ticket_id = open_ticket(service, customer)
    service.change_ticket_status(ticket_id, "diagnosing", expected_version=1)
    service.comment_on_ticket(ticket_id, "hi", public=True)
    events = list(service.events.get(ticket_id))
    assert [type(e) for e in events] == [Ticket.Opened, Ticket.StatusChanged, Ticket.Commented]
    assert all(e.customer_id == customer for e in events)
