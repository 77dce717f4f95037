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

Nothing secret travels: variables are chosen, never a dump of the event
(`projections.notification_variables`). A portal link's token travels sealed with the
notification key, which only the relay and the notification consumer hold, never in clear;
an erased customer has no readable address, so nobody is notified.

Ids are derived from the causing event's id, the template and the channel: a republished
event republishes the same requests under the same ids, and JetStream drops them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, Field, create_model

from domain.base import event_name
from domain.values import NOTIFICATION_CHANNELS, Profile
from projections import notification_variables as variables
from projections.cloudevents import (
    SUBJECT_PREFIX,
    CloudEvent,
    Outgoing,
    cloudevent_model,
    event_id,
    literal,
)
from projections.notification_variables import Lookups, ProfileLookup
from projections.staff_notifications import staff_messages

__all__ = [
    "CHANNEL_SUBJECTS",
    "TRIGGERS",
    "Category",
    "Channel",
    "Lookups",
    "ProfileLookup",
    "Trigger",
    "notification_message_models",
    "notification_messages",
    "recipients",
]

Channel = Literal["email", "sms"]
Category = Literal["transactional", "marketing"]

CHANNEL_SUBJECTS: dict[str, str] = {
    c: f"{SUBJECT_PREFIX}.notify.{c}" for c in NOTIFICATION_CHANNELS
}
_MARKETING_CONSENT = {"email": "newsletter", "sms": "promotional_sms"}
_ID_NAMESPACE = UUID("8b2e4d61-0f3a-4c59-b7e1-5a9d2c6f4e08")


def _originator(event: Any) -> UUID:
    return event.originator_id  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Trigger:
    """An event type that asks for a message to the customer."""

    template: str
    variables: type[BaseModel]
    fill: Callable[[Any, Profile, Lookups], BaseModel | None]
    """The variables for one event, or None to send nothing for it."""
    category: Category = "transactional"
    customer: Callable[[Any], UUID] = _originator
    """Whose channels and addresses to use (an appointment names its customer)."""
    profile_in_event: Callable[[Any], Profile] | None = None
    """For an event that carries the profile itself (registration): no lookup."""


def _customer_id(event: Any) -> UUID:
    return event.customer_id  # type: ignore[no-any-return]


TRIGGERS: dict[str, Trigger] = {
    "customer.registered": Trigger(
        "registration",
        variables.RegistrationVariables,
        variables.registration,
        profile_in_event=lambda e: e.profile,
    ),
    "portal_account.invited": Trigger(
        "portal_invite",
        variables.PortalLinkVariables,
        variables.portal_link,
        customer=_customer_id,
    ),
    "portal_account.password_reset_requested": Trigger(
        "password_reset",
        variables.PortalLinkVariables,
        variables.portal_link,
        customer=_customer_id,
    ),
    "appointment.booked": Trigger(
        "appointment_booked",
        variables.AppointmentVariables,
        variables.appointment,
        customer=_customer_id,
    ),
    "appointment.confirmed": Trigger(
        "appointment_confirmed",
        variables.AppointmentVariables,
        variables.appointment,
        customer=_customer_id,
    ),
    "appointment.rescheduled": Trigger(
        "appointment_rescheduled",
        variables.AppointmentRescheduledVariables,
        variables.appointment_rescheduled,
        customer=_customer_id,
    ),
    "appointment.cancelled": Trigger(
        "appointment_cancelled",
        variables.AppointmentCancelledVariables,
        variables.appointment_cancelled,
        customer=_customer_id,
    ),
    "ticket.status_changed": Trigger(
        "ticket_status_changed",
        variables.TicketStatusVariables,
        variables.ticket_status_changed,
        customer=_customer_id,
    ),
    "chat_message.posted": Trigger(
        "chat_message",
        variables.ChatMessageVariables,
        variables.chat_message,
        customer=_customer_id,
    ),
}
"""Event name → the message it asks for. Every trigger is transactional: a customer needs
these to use the service, so marketing consent does not gate them."""


class _Request(BaseModel):
    """What to tell whom: the consumer renders `template` with `variables` and sends it."""

    channel: Channel
    recipient: str = Field(description="An email address, or a mobile number in E.164.")
    category: Category
    customer_id: UUID
    cause_id: UUID = Field(
        description="The CloudEvents id of the event that asked for it (portal account"
        " events are internal: their id is never published)."
    )
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
    union: Any = functools.reduce(operator.or_, _request_models().values())
    requests = Annotated[union, Field(discriminator="template")]
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


def notification_messages(position: int, event: Any, lookups: Lookups) -> list[Outgoing]:
    """The notification requests an event asks for (usually none): to the customer on
    `crm.notify.email|sms`, to staff on `crm.notify.staff`."""
    return _customer_messages(position, event, lookups) + staff_messages(position, event, lookups)


def _customer_messages(position: int, event: Any, lookups: Lookups) -> list[Outgoing]:
    trigger = TRIGGERS.get(event_name(event))
    if trigger is None:
        return []
    customer_id = trigger.customer(event)
    if trigger.profile_in_event is not None:
        profile: Profile | None = trigger.profile_in_event(event)
    else:
        profile = lookups.profiles(customer_id, event.timestamp)
    if profile is None:
        return []
    filled = trigger.fill(event, profile, lookups)
    if filled is None:
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
                variables=filled,
            ),
        )
        body = message.model_dump_json().encode()
        messages.append(Outgoing(subject, str(message.id), body, event.timestamp, "notification"))
    return messages


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
