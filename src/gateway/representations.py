"""How aggregates and events are shown to clients: the only place that turns them into JSON."""

from __future__ import annotations

import dataclasses

from domain.base import TracedAggregate, event_name
from domain.customers import Customer
from domain.values import InstalledSystem
from gateway.schemas import CustomerOut, EventOut, StandingMergeOut, SystemOut
from infrastructure.audit_log import event_payload

__all__ = ["customer_out", "event_out"]


def customer_out(customer: Customer) -> CustomerOut:
    """The customer as GET shows it; secrets stay sealed and are only flagged as present."""
    return CustomerOut(
        id=customer.id,
        customer_number=customer.customer_number,
        version=customer.version,
        registered_at=customer.created_on,
        updated_at=customer.modified_on,
        deleted=customer.deleted,
        blocked=customer.blocked,
        block_reason=customer.block_reason,
        erased=customer.erased,
        **customer.profile.as_dict(),
        notes=[dataclasses.asdict(n) for n in customer.notes_in_order()],
        contacts=[dataclasses.asdict(c) for c in customer.contacts.values()],
        addresses=[dataclasses.asdict(a) for a in customer.addresses.values()],
        systems=[_system_out(s) for s in customer.systems.values()],
        key_custody=dataclasses.asdict(customer.key_custody) if customer.key_custody else None,
        custom_prices=customer.custom_prices,
        credits=[dataclasses.asdict(c) for c in customer.credits],
        credit_balance=customer.credit_balance,
        consents=[dataclasses.asdict(c) for c in customer.consents],
        merges=[
            StandingMergeOut(merge_id=merge_id, merged_ids=list(merged))
            for merge_id, merged in customer.merges.items()
        ],
    )


def _system_out(system: InstalledSystem) -> SystemOut:
    fields = dataclasses.asdict(system)
    fields["has_secret"] = fields.pop("sealed_secret") is not None
    return SystemOut(**fields)


def event_out(event: TracedAggregate.Event, position: int) -> EventOut:
    """One stored event for the audit view: its envelope and its payload, secrets masked."""
    return EventOut(
        position=position,
        version=event.originator_version,
        type=event_name(event),
        at=event.timestamp,
        actor=event.actor,
        correlation_id=event.correlation_id,
        payload=event_payload(event),
    )
