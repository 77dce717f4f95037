"""Repair tickets: a customer's device, its problem, and the repair's way through the shop.

    new → diagnosing → awaiting_parts ⇄ in_repair → ready_for_pickup → closed
    any open state → cancelled

A status change not in this graph is refused naming the ones allowed from where the
ticket is. Comments are public (the customer sees them in the portal) or internal; a
closed or cancelled ticket takes no more comments. The status timeline is kept on the
ticket, and every event carries `customer_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import ConflictError, InvalidTransitionError, RuleViolationError
from domain.relinking import Relinkable

__all__ = [
    "DEVICE_FIELDS",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "STATUSES",
    "TRANSITIONS",
    "Comment",
    "Device",
    "StatusChange",
    "Ticket",
]

STATUSES = (
    "new",
    "diagnosing",
    "awaiting_parts",
    "in_repair",
    "ready_for_pickup",
    "closed",
    "cancelled",
)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("diagnosing", "cancelled"),
    "diagnosing": ("awaiting_parts", "cancelled"),
    "awaiting_parts": ("in_repair", "cancelled"),
    "in_repair": ("awaiting_parts", "ready_for_pickup", "cancelled"),
    "ready_for_pickup": ("closed", "cancelled"),
    "closed": (),
    "cancelled": (),
}
"""Each status and the statuses it may go to (API.md)."""
FINAL_STATUSES = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)
OPEN_STATUSES = tuple(s for s in STATUSES if s not in FINAL_STATUSES)


@dataclass(frozen=True)
class Device:
    """The customer's device in for repair."""

    type: str
    """phone, laptop, alarm panel..."""
    make: str | None = None
    model: str | None = None
    serial: str | None = None


DEVICE_FIELDS = ("type", "make", "model", "serial")


@dataclass(frozen=True)
class Comment:
    comment_id: UUID
    text: str
    public: bool
    """Public comments are shown to the customer; internal ones only to staff."""
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class StatusChange:
    """One step of the timeline."""

    status: str
    previous_status: str | None
    note: str | None
    """The staff's note: never shown to the customer."""
    at: datetime
    by: str
    customer_note: str | None = None
    """What the shop tells the customer with this step ("waiting for the screen, due
    Friday"): shown in the portal, unlike `note`."""


class Ticket(Relinkable, TracedAggregate):
    """A repair job for one customer's device."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        number: int | None
        """The ticket number people say ("repair 1042"), from a sequence; None for a ticket
        opened before tickets had numbers."""
        subject: str
        problem: str
        device: Device
        status: str
        comments: list[Comment]
        timeline: list[StatusChange]
        """Every status the ticket had, oldest first, starting with `new`."""

    class Opened(TracedAggregate.Created):
        class_version = 2
        """v2 added `number`; the library upcasts stored v1 events on reading them."""
        customer_id: UUID
        number: int | None
        subject: str
        problem: str
        device: Device

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["number"] = None

        def apply(self, ticket: Ticket) -> None:
            ticket.customer_id, ticket.number = self.customer_id, self.number
            ticket.subject, ticket.problem, ticket.device = self.subject, self.problem, self.device
            ticket.status = "new"
            ticket.comments = []
            ticket.timeline = [StatusChange("new", None, None, self.timestamp, self.actor)]

    class StatusChanged(TracedAggregate.Event):
        """Version 2 split what a status change says: version 1 carried one `note`, read
        by staff only, so a shop could not tell the customer why the repair moved on (or
        stalled) without a separate comment. Now `note` stays the staff's and
        `customer_note` is the customer's."""

        customer_id: UUID
        previous_status: str
        status: str
        note: str | None
        """For staff only (as in version 1)."""
        customer_note: str | None
        """Shown to the customer."""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # A version 1 note was written for staff eyes only: it must not become the
            # customer's by being upcast, so old steps tell the customer nothing.
            state["customer_note"] = None

        def apply(self, ticket: Ticket) -> None:
            ticket.status = self.status
            ticket.timeline.append(
                StatusChange(
                    self.status,
                    self.previous_status,
                    self.note,
                    self.timestamp,
                    self.actor,
                    self.customer_note,
                )
            )

    class Commented(TracedAggregate.Event):
        customer_id: UUID
        comment_id: UUID
        text: str
        public: bool

        def apply(self, ticket: Ticket) -> None:
            ticket.comments.append(
                Comment(self.comment_id, self.text, self.public, self.timestamp, self.actor)
            )

    # ---- merges of its customer --------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def open(
        cls, *, customer_id: UUID, number: int, subject: str, problem: str, device: Device
    ) -> Ticket:
        """Open a ticket for a device; subject, problem and device type must not be blank."""
        for name, value in (("subject", subject), ("problem", problem)):
            if not value or not value.strip():
                raise RuleViolationError(name, f"a ticket needs a {name}")
        if not device.type or not device.type.strip():
            raise RuleViolationError("device.type", "the device needs a type")
        return cls._create(
            cls.Opened,
            id=uuid4(),
            customer_id=customer_id,
            number=number,
            subject=subject.strip(),
            problem=problem.strip(),
            device=device,
        )

    def change_status(
        self, status: str, note: str | None = None, customer_note: str | None = None
    ) -> None:
        """Move along the graph; anything else is refused naming the allowed statuses.
        `note` is for staff, `customer_note` for the customer."""
        if status not in STATUSES:
            raise RuleViolationError("status", f"unknown status; statuses: {list(STATUSES)}")
        allowed = TRANSITIONS[self.status]
        if status not in allowed:
            raise InvalidTransitionError(self.status, status, list(allowed))
        self.trigger_event(
            self.StatusChanged,
            customer_id=self.customer_id,
            previous_status=self.status,
            status=status,
            note=_text_or_none(note),
            customer_note=_text_or_none(customer_note),
        )

    def comment(self, text: str, *, public: bool) -> UUID:
        if self.status in FINAL_STATUSES:
            raise ConflictError(
                f"the ticket is {self.status}: it takes no comments", field="status"
            )
        if not text or not text.strip():
            raise RuleViolationError("text", "a comment needs text")
        comment_id = uuid4()
        self.trigger_event(
            self.Commented,
            customer_id=self.customer_id,
            comment_id=comment_id,
            text=text.strip(),
            public=public,
        )
        return comment_id

    @property
    def allowed_transitions(self) -> tuple[str, ...]:
        return TRANSITIONS[self.status]

    def public_comments(self) -> list[Comment]:
        return [c for c in self.comments if c.public]


def _text_or_none(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None
