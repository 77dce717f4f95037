"""Domain events as CloudEvents 1.0 in structured JSON: the public messages on NATS.

Each public event type has a pydantic model of its `data`, derived from the event's own
fields (less the envelope: aggregate id, version, time, actor, correlation id), so an
event added to a public aggregate is published and documented with no change here. The
same models build every message and the AsyncAPI document (`projections.asyncapi`): the
two cannot disagree. Installed systems are published as HTTP shows them, `has_secret`
instead of the sealed secret, which never leaves the service, not even sealed.

Which aggregates are public is a list of names here; any other aggregate's event stops the
relay (UnknownEventError) rather than vanish, and a test holds every domain aggregate to
one list or the other.

Message ids are derived, not drawn: uuid5 of (aggregate id, version). A republish after a
crash carries the id of the first publish, and JetStream drops it as a duplicate.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import re
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict, Field, create_model

import domain
from domain.base import TracedAggregate, event_name
from domain.values import InstalledSystem

__all__ = [
    "CONTENT_TYPE",
    "INTERNAL_AGGREGATES",
    "PUBLIC_AGGREGATES",
    "SOURCE",
    "STREAM",
    "SUBJECT_PREFIX",
    "CloudEvent",
    "EventContract",
    "Outgoing",
    "UnknownEventError",
    "cloudevent_model",
    "domain_aggregates",
    "event_contracts",
    "event_id",
    "event_message",
    "is_public",
    "literal",
    "public_aggregates",
    "public_values",
]

PUBLIC_AGGREGATES = (
    "Customer",
    "Appointment",
    "Ticket",
    "Pet",
    "Interaction",
    "ChatMessage",
    "SatisfactionScore",
    "CustomerFile",
    "LoyaltyLedger",
    "Package",
    "Invoice",
    "Payment",
)
"""Aggregates (by class name) whose events are published, in the AsyncAPI's order."""
INTERNAL_AGGREGATES = (
    "Reservation",
    "IdempotentRequest",
    "PortalAccount",
    "StaffDay",
    "CardWallet",
)
"""Bookkeeping and credentials: never published as events, though the relay steps over
them (and a trigger may still ask for a notification, e.g. a portal invite). Stored cards
are payment providers' tokens: what a charge is made with stays off the bus."""

SOURCE = "/customers"
"""CloudEvents `source`: with `id`, what a consumer deduplicates on."""
SUBJECT_PREFIX = "crm"
STREAM = "CRM"
"""The JetStream stream on `crm.>` that stores every message."""
CONTENT_TYPE = "application/cloudevents+json"
"""The NATS `Content-Type` header of every message (structured content mode)."""

_ID_NAMESPACE = UUID("3c1f7a52-8d4e-4b6a-9f2d-7e5a1c0b8d93")
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
    | {"actor", "correlation_id"}
)
# The library's own bases, present on every aggregate: not events anyone triggers.
_BASE_EVENT_NAMES = frozenset({"Event", "Created"})


class UnknownEventError(Exception):
    """An event of an aggregate that is neither public nor internal: classify it first."""


class CloudEvent(BaseModel):
    """The envelope of every message: CloudEvents 1.0 attributes and this service's extensions."""

    # Open to additions: consumers validating against the document must accept new fields.
    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(
        description="Derived from the aggregate id and version: stable across republishes."
    )
    source: Literal["/customers"] = "/customers"
    type: str = Field(description="`crm.<aggregate>.<event>.v1`")
    subject: str = Field(description="The aggregate's id.")
    time: datetime = Field(description="When the event happened (RFC 3339).")
    datacontenttype: Literal["application/json"] = "application/json"
    position: int = Field(ge=1, description="The event's position in the global log.")
    aggregateversion: int = Field(ge=1, description="The aggregate's version after the event.")
    actor: str = Field(description="Who caused the event: a JWT subject, or `system`.")
    correlationid: str = Field(description="The request (X-Request-ID) that caused it.")
    data: Any


@dataclass(frozen=True)
class Outgoing:
    """One message, ready for JetStream."""

    subject: str
    msg_id: str
    """`Nats-Msg-Id`: the CloudEvents id."""
    body: bytes
    event_time: datetime
    """When the event behind it happened: the start of the relay's lag."""
    kind: Literal["event", "notification"] = "event"


@dataclass(frozen=True)
class EventContract:
    """What one event type looks like on NATS."""

    name: str
    """`customer.registered`: the subject is `crm.` + name."""
    event_class: type[Any]
    fields: tuple[str, ...]
    message_model: type[CloudEvent]

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.name}"

    @property
    def type(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.name}.v1"


def event_id(event: Any) -> UUID:
    """The stable id of an event: one aggregate's version happens once."""
    return uuid5(_ID_NAMESPACE, f"{event.originator_id}:{event.originator_version}")


def is_public(event: Any) -> bool:
    """Whether `event` is published; raises UnknownEventError for an unclassified one."""
    aggregate = type(event).__qualname__.split(".")[0]
    if aggregate in PUBLIC_AGGREGATES:
        return True
    if aggregate in INTERNAL_AGGREGATES:
        return False
    raise UnknownEventError(f"{event_name(event)}: add {aggregate} to a list in {__name__}")


def event_message(position: int, event: Any) -> Outgoing | None:
    """The CloudEvent of a public event (None for an internal one)."""
    if not is_public(event):
        return None
    contract = event_contracts().get(event_name(event))
    if contract is None:
        raise UnknownEventError(f"{event_name(event)} is not an event class of its aggregate")
    message = contract.message_model(
        id=event_id(event),
        type=contract.type,
        subject=str(event.originator_id),
        time=event.timestamp,
        position=position,
        aggregateversion=event.originator_version,
        actor=event.actor,
        correlationid=event.correlation_id,
        data=public_values({name: getattr(event, name) for name in contract.fields}),
    )
    return Outgoing(
        contract.subject, str(message.id), message.model_dump_json().encode(), event.timestamp
    )


@functools.cache
def event_contracts() -> dict[str, EventContract]:
    """Every public event type by name, with the model of its message."""
    contracts: dict[str, EventContract] = {}
    for aggregate in public_aggregates():
        for attribute in sorted(dir(aggregate)):
            candidate = getattr(aggregate, attribute)
            if (
                isinstance(candidate, type)
                and issubclass(candidate, aggregate.Event)
                and candidate.__name__ not in _BASE_EVENT_NAMES
            ):
                contract = _contract(candidate)
                contracts[contract.name] = contract
    return contracts


def public_aggregates() -> list[type[Aggregate]]:
    """The classes named in PUBLIC_AGGREGATES, found in the domain package."""
    found = {a.__name__: a for a in domain_aggregates()}
    return [found[name] for name in PUBLIC_AGGREGATES if name in found]


def domain_aggregates() -> list[type[TracedAggregate]]:
    """Every aggregate class the domain package defines (its modules are imported first)."""
    for module in pkgutil.iter_modules(domain.__path__):
        importlib.import_module(f"domain.{module.name}")
    return [a for a in _subclasses(TracedAggregate) if a.__module__.startswith("domain.")]


def _subclasses(cls: type[TracedAggregate]) -> list[type[TracedAggregate]]:
    direct = cls.__subclasses__()
    return direct + [s for d in direct for s in _subclasses(d)]


def _contract(event_class: type[Any]) -> EventContract:
    # event_name reads only the type of what it is given: a bare instance is enough.
    name = event_name(object.__new__(event_class))
    hints = typing.get_type_hints(event_class)
    fields = tuple(
        f.name for f in dataclasses.fields(event_class) if f.name not in _ENVELOPE_FIELDS
    )
    data_fields: dict[str, Any] = {f: (_PUBLISHED_AS.get(hints[f], hints[f]), ...) for f in fields}
    data_model = create_model(
        f"{_pascal(name)}Data", __doc__=f"The `data` of {name}.", **data_fields
    )
    message_model = cloudevent_model(
        f"{_pascal(name)}Event",
        f"A {name} event as a CloudEvent.",
        f"{SUBJECT_PREFIX}.{name}.v1",
        data_model,
    )
    return EventContract(name, event_class, fields, message_model)


def cloudevent_model(name: str, doc: str, event_type: str, data: Any) -> type[CloudEvent]:
    """A CloudEvent model whose `type` is `event_type` and whose `data` is `data`."""
    fields: dict[str, Any] = {"type": (literal(event_type), ...), "data": (data, ...)}
    return create_model(name, __base__=CloudEvent, __doc__=doc, **fields)


def literal(value: str) -> Any:
    """`Literal[value]` for a value known only at run time."""
    return cast(Any, Literal)[value]


def public_values(value: Any) -> Any:
    """Plain JSON-shaped values with every sealed secret replaced by `has_secret`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        public = {k: public_values(v) for k, v in value.items() if k != "sealed_secret"}
        if "sealed_secret" in value:
            public["has_secret"] = value["sealed_secret"] is not None
        return public
    if isinstance(value, list | tuple):
        return [public_values(v) for v in value]
    return value


def _published_system() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(InstalledSystem):
        if f.name == "sealed_secret":
            fields["has_secret"] = (bool, ...)
        else:
            hint = typing.get_type_hints(InstalledSystem)[f.name]
            fields[f.name] = (hint, ... if f.default is dataclasses.MISSING else f.default)
    return create_model(
        "PublishedSystem",
        __doc__="Equipment at the customer's: whether a secret is held, never the secret.",
        **fields,
    )


_PUBLISHED_SYSTEM = _published_system()
_PUBLISHED_AS: dict[Any, Any] = {
    InstalledSystem: _PUBLISHED_SYSTEM,
    list[InstalledSystem]: list[_PUBLISHED_SYSTEM],  # type: ignore[valid-type]
}
"""Domain types shown otherwise on NATS."""


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", name))
