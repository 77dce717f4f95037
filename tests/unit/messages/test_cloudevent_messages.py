"""Domain events as CloudEvents: envelope, stable ids, masked secrets, internal events skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from domain.base import TracedAggregate, event_name
from domain.customers import Customer
from domain.invoices import Invoice
from domain.loyalty import LoyaltyLedger
from domain.payments import Payment
from domain.reservations import Reservation
from projections.cloudevents import (
    INTERNAL_AGGREGATES,
    PUBLIC_AGGREGATES,
    UnknownEventError,
    domain_aggregates,
    event_contracts,
    event_id,
    event_message,
    public_aggregates,
)

Log = list[tuple[int, Any]]


def test_every_customer_event_becomes_a_valid_cloudevent(
    full_life: str, read_log: Callable[[], Log], validate: Callable[..., None]
) -> None:
    """Each public event of a full customer life (with its invoices and payments, and the
    ledger entries of its merge) is a CloudEvent its AsyncAPI schema accepts."""
    published = []
    for position, event in read_log():
        message = event_message(position, event)
        public = Customer.Event | Invoice.Event | Payment.Event | LoyaltyLedger.Event
        if not isinstance(event, public):
            assert message is None
            continue
        assert message is not None
        body = json.loads(message.body)
        validate(message.subject, body)
        assert message.subject == f"crm.{event_name(event)}"
        assert message.msg_id == body["id"] == str(event_id(event))
        assert body["specversion"] == "1.0" and body["source"] == "/customers"
        assert body["type"] == f"crm.{event_name(event)}.v1"
        assert body["subject"] == str(event.originator_id)
        assert (body["position"], body["aggregateversion"]) == (position, event.originator_version)
        assert (body["actor"], body["correlationid"]) == (event.actor, event.correlation_id)
        if not isinstance(event, LoyaltyLedger.Event):
            published.append(event_name(event))
    customer_events = {
        n for n in event_contracts() if n.startswith(("customer.", "invoice.", "payment."))
    }
    assert set(published) == customer_events, "the life covers every customer event type"


def test_no_secret_is_published_not_even_sealed(
    full_life: str, read_log: Callable[[], Log]
) -> None:
    """Installed and changed systems show `has_secret`; the secret never appears in any form."""
    bodies: dict[str, list[bytes]] = {}
    for position, event in read_log():
        message = event_message(position, event)
        if message is not None:
            bodies.setdefault(message.subject, []).append(message.body)
            assert b"sealed_secret" not in message.body
            assert full_life.encode() not in message.body
            assert b"gAAAA" not in message.body  # the prefix of every Fernet token
    installed = json.loads(bodies["crm.customer.system_installed"][0])
    assert installed["data"]["system"]["has_secret"] is True
    changed = json.loads(bodies["crm.customer.system_changed"][0])
    assert changed["data"]["changes"] == {"has_secret": True}
    merged = json.loads(bodies["crm.customer.merged"][0])
    assert [s["has_secret"] for s in merged["data"]["systems"]] == [True]


def test_a_republished_event_carries_the_same_id(
    full_life: str, read_log: Callable[[], Log]
) -> None:
    """The id derives from aggregate and version: building the message twice gives one id."""
    position, event = read_log()[0]
    first, again = event_message(position, event), event_message(position, event)
    assert first is not None and again is not None
    assert (first.msg_id, first.body) == (again.msg_id, again.body)
    public = Customer.Event | Invoice.Event | Payment.Event | LoyaltyLedger.Event
    assert len({m.msg_id for p, e in read_log() if (m := event_message(p, e))}) == len(
        [e for _, e in read_log() if isinstance(e, public)]
    )


def test_reservations_and_idempotency_records_are_not_published(
    read_log: Callable[[], Log], service: Any
) -> None:
    """Internal events give no message (the relay still steps over their positions)."""
    service.register_customer({"first_name": "Ann", "email": "ann@example.com"})
    internal = [(p, e) for p, e in read_log() if isinstance(e, Reservation.Event)]
    assert internal
    assert all(event_message(p, e) is None for p, e in internal)


def test_an_event_of_an_unclassified_aggregate_is_refused() -> None:
    """An aggregate that is neither public nor internal stops the relay instead of vanishing."""

    class Stray(TracedAggregate):
        class Happened(TracedAggregate.Created):
            pass

    stray = Stray._create(Stray.Happened, id=uuid4())
    with pytest.raises(UnknownEventError):
        event_message(1, stray.collect_events()[0])


def test_every_aggregate_of_the_domain_is_public_or_internal() -> None:
    """A new aggregate must be classified (published or not) before its events reach the relay."""
    for aggregate in domain_aggregates():
        name = aggregate.__name__
        assert name in PUBLIC_AGGREGATES + INTERNAL_AGGREGATES, f"{name}: public or internal?"
    assert Customer in public_aggregates()
