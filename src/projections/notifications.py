"""Requests to tell a person something, derived from events, for `crm.notify.email` / `.sms`.

Each trigger is one entry of `TRIGGERS`: the event that asks for a message, the template
to render, and the template's variables (a pydantic model, so the AsyncAPI document shows
them). The channels are the customer's `notification_channels`, each needing an address.

Consent: `newsletter` and `promotional_sms` are *marketing* consents. They gate marketing
messages (email and SMS respectively) and nothing else: registration, portal invites,
password resets and appointment and ticket updates are transactional, sent over the
customer's channels whatever the marketing choices, as the law allows for messages a
customer needs to use the service. Registration also honours `send_registration_email`
(false: no registration message on any channel, e.g. for imported customers).

Nothing secret travels: variables are chosen, never a dump of the event. A password-reset
token will be sealed for the sender (issue 4), never in clear; an erased customer has no
readable address, so nobody is notified.

Ids are derived from the causing event's id, the template and the channel: a republished
event republishes the same requests under the same ids, and JetStream drops them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, Field, create_model

from domain.base import event_name
from domain.values import NOTIFICATION_CHANNELS, Profile
from projections.cloudevents import (
    SUBJECT_PREFIX,
    CloudEvent,
    Outgoing,
    cloudevent_model,
    event_id,
    literal,
)

__all__ = [
    "CHANNEL_SUBJECTS",
    "TRIGGERS",
    "Category",
    "Channel",
    "ProfileLookup",
    "Trigger",
    "notification_message_models",
    "notification_messages",
    "recipients",
]

Channel = Literal["email", "sms"]
Category = Literal["transactional", "marketing"]
ProfileLookup = Callable[[UUID, datetime], Profile | None]
"""A customer's profile as it was at a moment; None if unknown or erased."""

CHANNEL_SUBJECTS: dict[str, str] = {
    c: f"{SUBJECT_PREFIX}.notify.{c}" for c in NOTIFICATION_CHANNELS
}
_MARKETING_CONSENT = {"email": "newsletter", "sms": "promotional_sms"}
_ID_NAMESPACE = UUID("8b2e4d61-0f3a-4c59-b7e1-5a9d2c6f4e08")


class RegistrationVariables(BaseModel):
    """Welcome a newly registered customer (no password: portal access comes by invite)."""

    first_name: str
    last_name: str | None
    company_name: str | None
    customer_number: int


def _registration(event: Any, profile: Profile) -> BaseModel | None:
    if not profile.send_registration_email:
        return None
    return RegistrationVariables(
        first_name=profile.first_name,
        last_name=profile.last_name,
        company_name=profile.company_name,
        customer_number=event.customer_number,
    )


def _originator(event: Any) -> UUID:
    return event.originator_id  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Trigger:
    """An event type that asks for a message to the customer."""

    template: str
    variables: type[BaseModel]
    fill: Callable[[Any, Profile], BaseModel | None]
    """The variables for one event, or None to send nothing for it."""
    category: Category = "transactional"
    customer: Callable[[Any], UUID] = _originator
    """Whose channels and addresses to use (an appointment names its customer)."""
    profile_in_event: Callable[[Any], Profile] | None = None
    """For an event that carries the profile itself (registration): no lookup."""


TRIGGERS: dict[str, Trigger] = {
    "customer.registered": Trigger(
        "registration", RegistrationVariables, _registration, profile_in_event=lambda e: e.profile
    ),
    # Waiting for issue 4, one entry each; its events already carry `customer_id`:
    #   "appointment.booked" / ".confirmed" / ".rescheduled" / ".cancelled":
    #       Trigger("appointment_<kind>", AppointmentVariables(starts_at, ends_at, staff_id,
    #       service_id, previous_starts_at, reason), _appointment, customer=lambda e: e.customer_id)
    #   "ticket.status_changed": Trigger("ticket_status_changed", TicketVariables(...), ...)
    #   "portal_account.invited" / ".password_reset_requested": Trigger("portal_invite" /
    #       "password_reset", ...): the event holds the token sealed with the service key;
    #       the request must carry it sealed for the sender (a key of its own), never in clear.
}


class _Request(BaseModel):
    """What to tell whom: the consumer renders `template` with `variables` and sends it."""

    channel: Channel
    recipient: str = Field(description="An email address, or a mobile number in E.164.")
    category: Category
    customer_id: UUID
    cause_id: UUID = Field(description="The CloudEvents id of the event that asked for it.")
    cause_type: str


@functools.cache
def _request_models() -> dict[str, type[_Request]]:
    models = {}
    for trigger in TRIGGERS.values():
        fields: dict[str, Any] = {
            "template": (literal(trigger.template), ...),
            "variables": (trigger.variables, ...),
        }
        models[trigger.template] = create_model(
            f"{_pascal(trigger.template)}Request",
            __base__=_Request,
            __doc__=trigger.variables.__doc__,
            **fields,
        )
    return models


@functools.cache
def notification_message_models() -> dict[str, type[CloudEvent]]:
    """The CloudEvent model of each channel's subject (for messages and the AsyncAPI)."""
    requests: Any = functools.reduce(operator.or_, _request_models().values())
    return {
        channel: cloudevent_model(
            f"Notify{channel.capitalize()}Event",
            f"A request to send a {channel} message, as a CloudEvent.",
            f"{subject}.v1",
            requests,
        )
        for channel, subject in CHANNEL_SUBJECTS.items()
    }


def recipients(profile: Profile, category: Category) -> list[tuple[str, str]]:
    """(channel, address) pairs to use, in channel order; channels without an address drop."""
    chosen = []
    for channel in NOTIFICATION_CHANNELS:
        if channel not in profile.notification_channels:
            continue
        if category == "marketing" and not getattr(profile, _MARKETING_CONSENT[channel]):
            continue
        address = profile.email if channel == "email" else profile.mobile_phone
        if address:
            chosen.append((channel, address))
    return chosen


def notification_messages(position: int, event: Any, profiles: ProfileLookup) -> list[Outgoing]:
    """The notification requests an event asks for (usually none)."""
    trigger = TRIGGERS.get(event_name(event))
    if trigger is None:
        return []
    customer_id = trigger.customer(event)
    if trigger.profile_in_event is not None:
        profile: Profile | None = trigger.profile_in_event(event)
    else:
        profile = profiles(customer_id, event.timestamp)
    if profile is None:
        return []
    variables = trigger.fill(event, profile)
    if variables is None:
        return []
    cause_id = event_id(event)
    request_model = _request_models()[trigger.template]
    messages = []
    for channel, address in recipients(profile, trigger.category):
        subject = CHANNEL_SUBJECTS[channel]
        message = notification_message_models()[channel](
            id=uuid5(_ID_NAMESPACE, f"{cause_id}:{trigger.template}:{channel}"),
            type=f"{subject}.v1",
            subject=str(customer_id),
            time=event.timestamp,
            position=position,
            aggregateversion=event.originator_version,
            actor=event.actor,
            correlationid=event.correlation_id,
            data=request_model(
                channel=channel,
                recipient=address,
                category=trigger.category,
                customer_id=customer_id,
                cause_id=cause_id,
                cause_type=f"{SUBJECT_PREFIX}.{event_name(event)}.v1",
                template=trigger.template,
                variables=variables,
            ),
        )
        body = message.model_dump_json().encode()
        messages.append(Outgoing(subject, str(message.id), body, event.timestamp, "notification"))
    return messages


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
