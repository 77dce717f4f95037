"""Requests to tell the business's staff something, on `crm.notify.staff`.

The other side of the chat: a customer's message (from the portal) asks for a notice to
staff, which dashboards and the staff app consume to show "new chat message from Ada".
Unlike a customer's notifications it has no recipient: whoever watches the customer's
chat takes it. It names the customer (as it was when it wrote) and carries the message;
an erased customer has no readable name, so nobody is told.

Ids are derived from the causing event's id and the notice's kind: a republished event
republishes the same notice, and JetStream drops it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, Field

from domain.base import event_name
from domain.values import Profile
from projections.cloudevents import SUBJECT_PREFIX, CloudEvent, Outgoing, cloudevent_model, event_id
from projections.notification_variables import Lookups

__all__ = ["STAFF_NOTICES", "STAFF_SUBJECT", "StaffNotice", "staff_message_model", "staff_messages"]

STAFF_SUBJECT = f"{SUBJECT_PREFIX}.notify.staff"
_ID_NAMESPACE = UUID("0d7b4e19-6a2c-4f85-9e3d-b1c8a5f27e60")


class StaffNotice(BaseModel):
    """Something for the business's staff to look at, about one customer."""

    kind: Literal["chat_message"]
    customer_id: UUID
    customer_name: str = Field(description="First and last name, as the customer was then.")
    message_id: UUID
    text: str
    sent_at: datetime
    cause_id: UUID = Field(description="The CloudEvents id of the event behind it.")
    cause_type: str


@dataclass(frozen=True)
class _Notice:
    kind: Literal["chat_message"]
    fill: Callable[[Any, Profile], StaffNotice | None]


def _chat_message(event: Any, profile: Profile) -> StaffNotice | None:
    if event.sender != "customer":
        return None
    return StaffNotice(
        kind="chat_message",
        customer_id=event.customer_id,
        customer_name=" ".join(n for n in (profile.first_name, profile.last_name) if n),
        message_id=event.originator_id,
        text=event.text,
        sent_at=event.timestamp,
        cause_id=event_id(event),
        cause_type=f"{SUBJECT_PREFIX}.{event_name(event)}.v1",
    )


STAFF_NOTICES: dict[str, _Notice] = {"chat_message.posted": _Notice("chat_message", _chat_message)}
"""Event name → the notice to staff it asks for."""


@functools.cache
def staff_message_model() -> type[CloudEvent]:
    return cloudevent_model(
        "NotifyStaffEvent",
        "A notice for the business's staff (a customer wrote in the chat), as a CloudEvent.",
        f"{STAFF_SUBJECT}.v1",
        StaffNotice,
    )


def staff_messages(position: int, event: Any, lookups: Lookups) -> list[Outgoing]:
    """The notices to staff an event asks for (usually none)."""
    notice = STAFF_NOTICES.get(event_name(event))
    if notice is None:
        return []
    profile = lookups.profiles(event.customer_id, event.timestamp)
    if profile is None:
        return []
    filled = notice.fill(event, profile)
    if filled is None:
        return []
    message = staff_message_model()(
        id=uuid5(_ID_NAMESPACE, f"{filled.cause_id}:{notice.kind}"),
        type=f"{STAFF_SUBJECT}.v1",
        subject=str(event.customer_id),
        time=event.timestamp,
        position=position,
        aggregateversion=event.originator_version,
        actor=event.actor,
        correlationid=event.correlation_id,
        data=filled,
    )
    body = message.model_dump_json().encode()
    return [Outgoing(STAFF_SUBJECT, str(message.id), body, event.timestamp, "notification")]
