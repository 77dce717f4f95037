"""Event versioning: a ticket status change stored in its version 1 shape still loads,
replays, feeds the read models and the relay, and verifies in the hash chain."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from domain.service import CustomerService
from domain.tickets import Ticket
from infrastructure.audit_log import verify_chain
from infrastructure.database import drop_schema
from infrastructure.eventstore import build_service, migrate_event_store, recorder
from infrastructure.settings import Settings
from projections.catalog import open_read_model
from projections.cloudevents import event_message
from projections.rebuild import catch_up

# Byte for byte what the code before `class_version = 2` stored for Ticket.StatusChanged
# (captured from a real save): no class_version, one staff-only `note`.
_V1_STATE = (
    '{{"timestamp":{{"_type_":"datetime_iso","_data_":"{at}"}},"actor":"bob@shop",'
    '"correlation_id":"req-1","customer_id":{{"_type_":"uuid_hex","_data_":"{customer}"}},'
    '"previous_status":"new","status":"diagnosing","note":"screen from supplier B, 40 EUR"}}'
)


@dataclass
class Store:
    service: CustomerService
    settings: Settings


@pytest.fixture
def store(make_settings: Any, database_url: str) -> Iterator[Store]:
    """A service on a fresh schema of its own (the test writes rows around the service)."""
    settings = make_settings(database_url=database_url, db_schema=f"v_{secrets.token_hex(5)}")
    migrate_event_store(settings)
    service = build_service(settings)
    yield Store(service, settings)
    service.close()
    drop_schema(database_url, settings.db_schema)


def _ticket_with_a_v1_status_change(store: Store, at: datetime) -> tuple[UUID, UUID]:
    """A ticket opened by the service, then its version 2 written as the old code wrote it."""
    service = store.service
    customer_id = service.register_customer({"first_name": "Ada"}).aggregate_id
    ticket_id = service.open_ticket(customer_id, "Cracked screen", "dropped", {"type": "phone"})
    state = _V1_STATE.format(at=at.isoformat(), customer=customer_id.hex).encode()
    # The bytes go in as they are, past the mapper and the domain: exactly what the old
    # code's recorder stored (and so with their hash chain links, as it would have).
    recorder(service).insert_events(
        [StoredEvent(ticket_id.aggregate_id, 2, "domain.tickets:Ticket.StatusChanged", state)]
    )
    return customer_id, ticket_id.aggregate_id


def test_a_version_1_status_change_loads_with_its_note_kept_for_staff(store: Store) -> None:
    """The old event upcasts: its note stays the staff's note, the customer's note is
    empty (an old note was never meant for the customer), and the ticket replays."""
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    _, ticket_id = _ticket_with_a_v1_status_change(store, at)
    ticket = store.service.get_ticket(ticket_id)
    assert ticket.status == "diagnosing" and ticket.version == 2
    step = ticket.timeline[1]
    assert (step.status, step.previous_status, step.at, step.by) == (
        "diagnosing",
        "new",
        at,
        "bob@shop",
    )
    assert step.note == "screen from supplier B, 40 EUR" and step.customer_note is None
    # Replaying the stored events one by one gives the same state.
    events = list(store.service.events.get(ticket_id))
    assert isinstance(events[1], Ticket.StatusChanged) and events[1].customer_note is None
    replayed: Any = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed.timeline == ticket.timeline


def test_new_status_changes_are_stored_as_version_2_after_old_ones(store: Store) -> None:
    """After an old step, a new one carries both notes and is stored with class_version 2."""
    _, ticket_id = _ticket_with_a_v1_status_change(store, datetime(2025, 3, 1, tzinfo=UTC))
    store.service.change_ticket_status(
        ticket_id,
        "awaiting_parts",
        "ordered from B",
        customer_note="Waiting for the screen, due Friday",
        expected_version=2,
    )
    ticket = store.service.get_ticket(ticket_id)
    assert [s.customer_note for s in ticket.timeline] == [
        None,
        None,
        "Waiting for the screen, due Friday",
    ]
    with psycopg.connect(str(store.settings.database_url)) as connection:
        row = connection.execute(
            sql.SQL(
                "SELECT convert_from(state, 'UTF8') FROM {} WHERE originator_id = %s"
                " AND originator_version = 3"
            ).format(sql.Identifier(store.settings.db_schema, "crm_events")),
            (ticket_id,),
        ).fetchone()
    assert row is not None
    stored = json.loads(row[0])
    # Both notes are the customer's personal data: stored encrypted with its data key.
    assert stored["class_version"] == 2 and "customer_note" in stored
    assert "Waiting" not in row[0] and "_personal" in stored


def test_read_models_relay_and_hash_chain_take_the_old_event(store: Store) -> None:
    """The tickets and history read models process the old event without parking it, the
    relay can publish it, and the hash chain verifies."""
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    _, ticket_id = _ticket_with_a_v1_status_change(store, at)
    head = store.service.recorder.max_notification_id() or 0
    for name in ("tickets", "history"):
        model = open_read_model(store.settings, name)
        try:
            model.migrate()
            assert catch_up(store.service, model) == head
            assert model.parked_positions() == []
        finally:
            model.datastore.close()
    with psycopg.connect(str(store.settings.database_url)) as connection:
        row = connection.execute(
            sql.SQL("SELECT status, status_changed_at, version FROM {} WHERE id = %s").format(
                sql.Identifier(f"{store.settings.db_schema}_tickets", "tickets")
            ),
            (ticket_id,),
        ).fetchone()
    assert row == ("diagnosing", at, 2)
    (notification,) = store.service.recorder.select_notifications(start=head, limit=1)
    message = event_message(head, store.service.mapper.to_domain_event(notification))
    assert message is not None
    data = json.loads(message.body)["data"]
    assert data["note"] == "screen from supplier B, 40 EUR" and data["customer_note"] is None
    chained = recorder(store.service)
    assert chained.chain_key is not None
    assert verify_chain(chained, chained.chain_key).ok
