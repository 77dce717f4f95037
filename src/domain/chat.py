"""Chat between the business and a customer (seed 002: the Chat tab; the portal posts too).

Each message is an aggregate of its own, written once: a busy conversation never makes
one stream to load and race on, and the conversation is the customer's messages in log
order (the `conversations` read model). A message says who wrote it: `staff` (the actor
is the staff member) or the `customer` (from the portal); each notifies the other side
(`projections.notifications`). Every event carries `customer_id`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import RuleViolationError
from domain.relinking import Relinkable

__all__ = ["MAX_MESSAGE_LENGTH", "SENDERS", "ChatMessage"]

SENDERS = ("staff", "customer")
MAX_MESSAGE_LENGTH = 5000


class ChatMessage(Relinkable, TracedAggregate):
    """One chat message between the business and a customer."""

    if TYPE_CHECKING:
        customer_id: UUID
        sender: str
        text: str

    class Posted(TracedAggregate.Created):
        customer_id: UUID
        sender: str
        """`staff` or `customer`: which side wrote it (the actor says who exactly)."""
        text: str

        def apply(self, message: ChatMessage) -> None:
            message.customer_id, message.sender, message.text = (
                self.customer_id,
                self.sender,
                self.text,
            )

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def post(cls, *, customer_id: UUID, sender: str, text: str) -> ChatMessage:
        if sender not in SENDERS:
            raise RuleViolationError("sender", f"senders: {list(SENDERS)}")
        if not text.strip():
            raise RuleViolationError("text", "a message needs text")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise RuleViolationError("text", f"at most {MAX_MESSAGE_LENGTH} characters")
        return cls._create(
            cls.Posted, id=uuid4(), customer_id=customer_id, sender=sender, text=text.strip()
        )
