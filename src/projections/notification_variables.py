"""The variables of each notification template, and how each is filled from its event.

One pydantic model per template (the AsyncAPI document shows them), one `fill` function
per trigger: `fill(event, profile, lookups)` returns the variables, or None to send
nothing. Variables are chosen one by one, never a dump of the event: a staff note on a
ticket, an id number or a secret cannot slip into a message by being in an event.

Times are given three ways: the UTC instant (`starts_at`), the same instant on the
business's wall clock with that day's offset (`starts_at_local`, ISO 8601), and as a
person reads it there (`starts_at_text`: `Sun 30 Mar 2025, 11:00 CEST`), so a template
never converts a time zone itself and a daylight-saving change cannot shift it.

Portal links: the event holds the one-time token sealed with the service's key. The relay
opens it and seals it again with the notification key (`Lookups.seal_for_sender`), which
the notification consumer holds and the service's key never leaves the service: on NATS
the token exists only as `sealed_token`, which that consumer alone can open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from domain.timezones import in_zone, local_text
from domain.values import Profile

__all__ = [
    "AggregateLookup",
    "AppointmentCancelledVariables",
    "AppointmentRescheduledVariables",
    "AppointmentVariables",
    "ChatMessageVariables",
    "Lookups",
    "PortalLinkVariables",
    "ProfileLookup",
    "RegistrationVariables",
    "TicketStatusVariables",
    "appointment",
    "appointment_cancelled",
    "appointment_rescheduled",
    "chat_message",
    "portal_link",
    "registration",
    "ticket_status_changed",
]

ProfileLookup = Callable[[UUID, datetime], Profile | None]
"""A customer's profile as it was at a moment; None if unknown or erased."""
AggregateLookup = Callable[[UUID, int], Any]
"""An aggregate as it was at a version (a ticket's subject and device for its status)."""


def _no_aggregates(aggregate_id: UUID, version: int) -> Any:
    raise LookupError(f"no aggregate lookup configured (asked for {aggregate_id} v{version})")


def _no_sealing(sealed: str) -> str | None:
    raise LookupError("no notification key configured: a portal link cannot be sent")


@dataclass(frozen=True)
class Lookups:
    """What triggers read beyond the event: profiles, the time zone, the link sealing."""

    profiles: ProfileLookup
    time_zone: str = "UTC"
    seal_for_sender: Callable[[str], str | None] = _no_sealing
    """A token sealed with the service key → the same token sealed with the notification key;
    None when the service can no longer open it (its key is gone): no link is sent."""
    aggregate_at: AggregateLookup = _no_aggregates

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class RegistrationVariables(BaseModel):
    """Welcome a newly registered customer (no password: portal access comes by invite)."""

    first_name: str
    last_name: str | None
    company_name: str | None
    customer_number: int


def registration(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    if not profile.send_registration_email:
        return None
    return RegistrationVariables(
        first_name=profile.first_name,
        last_name=profile.last_name,
        company_name=profile.company_name,
        customer_number=event.customer_number,
    )


# ---- portal ---------------------------------------------------------------------------------


class PortalLinkVariables(BaseModel):
    """A one-time link to set the portal password (an invite, or a reset by an admin)."""

    first_name: str
    username: str | None = Field(
        description="The login besides the email, if the customer has one."
    )
    sealed_token: str = Field(
        description="The link's one-time token, sealed (Fernet) with CUSTOMERS_NOTIFICATION_KEY:"
        " the consumer opens it and builds the link whose page sends it to"
        " POST /v1/auth/set-password. Never the token in clear."
    )
    expires_at: datetime
    expires_at_local: datetime
    expires_at_text: str
    time_zone: str


def portal_link(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    sealed_token = lookups.seal_for_sender(event.sealed_token)
    if sealed_token is None:
        return None
    return PortalLinkVariables(
        first_name=profile.first_name,
        username=profile.username,
        sealed_token=sealed_token,
        expires_at=event.expires_at,
        expires_at_local=in_zone(event.expires_at, lookups.zone),
        expires_at_text=local_text(event.expires_at, lookups.zone),
        time_zone=lookups.time_zone,
    )


# ---- appointments ---------------------------------------------------------------------------


class AppointmentVariables(BaseModel):
    """An appointment booked or confirmed: when, with whom, in the business's time zone."""

    first_name: str
    appointment_id: UUID
    staff_id: str | None
    service_id: str | None
    starts_at: datetime
    ends_at: datetime
    starts_at_local: datetime
    ends_at_local: datetime
    starts_at_text: str
    ends_at_text: str
    time_zone: str


class AppointmentRescheduledVariables(AppointmentVariables):
    """An appointment moved: its new time, and the time it had."""

    previous_starts_at: datetime
    previous_starts_at_local: datetime
    previous_starts_at_text: str


class AppointmentCancelledVariables(AppointmentVariables):
    """An appointment cancelled, with the reason given."""

    reason: str


def _appointment_values(event: Any, profile: Profile, lookups: Lookups) -> dict[str, Any]:
    zone = lookups.zone
    return {
        "first_name": profile.first_name,
        "appointment_id": event.originator_id,
        "staff_id": event.staff_id,
        "service_id": event.service_id,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "starts_at_local": in_zone(event.starts_at, zone),
        "ends_at_local": in_zone(event.ends_at, zone),
        "starts_at_text": local_text(event.starts_at, zone),
        "ends_at_text": local_text(event.ends_at, zone),
        "time_zone": lookups.time_zone,
    }


def appointment(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    return AppointmentVariables(**_appointment_values(event, profile, lookups))


def appointment_rescheduled(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    return AppointmentRescheduledVariables(
        **_appointment_values(event, profile, lookups),
        previous_starts_at=event.previous_starts_at,
        previous_starts_at_local=in_zone(event.previous_starts_at, lookups.zone),
        previous_starts_at_text=local_text(event.previous_starts_at, lookups.zone),
    )


def appointment_cancelled(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    return AppointmentCancelledVariables(
        **_appointment_values(event, profile, lookups), reason=event.reason
    )


# ---- tickets --------------------------------------------------------------------------------


class TicketStatusVariables(BaseModel):
    """A repair moved on: the device, the status it left and the one it is in now.

    The staff note of the change is not here: customers do not see staff notes. The note
    written for the customer (`customer_note`) is."""

    first_name: str
    ticket_id: UUID
    ticket_number: int | None
    subject: str
    device_type: str
    device_make: str | None
    device_model: str | None
    previous_status: str
    status: str
    customer_note: str | None
    """What the shop tells the customer with this step; null when it said nothing."""
    changed_at: datetime
    changed_at_local: datetime
    changed_at_text: str
    time_zone: str


def ticket_status_changed(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    ticket = lookups.aggregate_at(event.originator_id, event.originator_version)
    return TicketStatusVariables(
        first_name=profile.first_name,
        ticket_id=event.originator_id,
        ticket_number=ticket.number,
        subject=ticket.subject,
        device_type=ticket.device.type,
        device_make=ticket.device.make,
        device_model=ticket.device.model,
        previous_status=event.previous_status,
        status=event.status,
        customer_note=event.customer_note,
        changed_at=event.timestamp,
        changed_at_local=in_zone(event.timestamp, lookups.zone),
        changed_at_text=local_text(event.timestamp, lookups.zone),
        time_zone=lookups.time_zone,
    )


# ---- chat -----------------------------------------------------------------------------------


class ChatMessageVariables(BaseModel):
    """The business wrote in the customer's chat: the message, to read or answer in the portal."""

    first_name: str
    message_id: UUID
    text: str
    sent_at: datetime
    sent_at_local: datetime
    sent_at_text: str
    time_zone: str


def chat_message(event: Any, profile: Profile, lookups: Lookups) -> BaseModel | None:
    # The customer's own messages notify staff (`projections.staff_notifications`), not it.
    if event.sender != "staff":
        return None
    return ChatMessageVariables(
        first_name=profile.first_name,
        message_id=event.originator_id,
        text=event.text,
        sent_at=event.timestamp,
        sent_at_local=in_zone(event.timestamp, lookups.zone),
        sent_at_text=local_text(event.timestamp, lookups.zone),
        time_zone=lookups.time_zone,
    )
