"""The base every aggregate here shares: each event records who caused it and why.

The actor and correlation id are dataclass fields with factories that read the request
context (`domain.context`), so they are filled when an event is created and read back
from storage like any other field: no mapper tricks, and replay never re-reads the context.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any

from eventsourcing.domain import Aggregate

from domain.context import current_actor, current_correlation_id

__all__ = ["TracedAggregate", "event_name", "qualname_event_name"]


class TracedAggregate(Aggregate):
    """An aggregate whose events carry their actor and correlation id."""

    class Event(Aggregate.Event):
        actor: str = field(default_factory=current_actor, kw_only=True)
        """Who caused the event: the JWT subject, or `system`."""
        correlation_id: str = field(default_factory=current_correlation_id, kw_only=True)
        """The request (X-Request-ID) that caused the event."""

    class Created(Event, Aggregate.Created):
        pass


def event_name(event: Any) -> str:
    """The public name of an event, as in NATS subjects: `Customer.ProfileChanged` →
    `customer.profile_changed`."""
    return qualname_event_name(type(event).__qualname__)


def qualname_event_name(qualname: str) -> str:
    """The public name of an event class from its qualified name (`Ticket.Opened`), e.g.
    for a stored topic that no longer resolves to a class."""
    aggregate, _, kind = qualname.rpartition(".")
    return f"{_snake(aggregate)}.{_snake(kind)}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
