"""Interactions logged with a customer: calls, visits, emails (seed 001: the Calls tab).

What a CRM logs about a conversation that happened elsewhere: its kind, which way it
went, a summary, when it happened and which staff member had it. Each logged interaction
is an aggregate of its own (written once, never changed), carrying `customer_id`. A time
in the future is refused (beyond a small skew between clocks): a log records what
happened, not a plan (appointments are for those).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from domain.base import TracedAggregate
from domain.errors import RuleViolationError
from domain.relinking import Relinkable

__all__ = ["CLOCK_SKEW", "DIRECTIONS", "INTERACTION_KINDS", "Interaction"]

INTERACTION_KINDS = ("call", "visit", "email", "sms", "other")
DIRECTIONS = ("inbound", "outbound")
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future `at` may be: the caller's clock may run ahead of ours."""


class Interaction(Relinkable, TracedAggregate):
    """A call, visit, email... had with a customer."""

    if TYPE_CHECKING:
        customer_id: UUID
        kind: str
        direction: str
        """inbound: the customer reached out; outbound: the business did."""
        summary: str
        at: datetime
        staff_id: str

    class Logged(TracedAggregate.Created):
        customer_id: UUID
        kind: str
        direction: str
        summary: str
        at: datetime
        staff_id: str

        def apply(self, interaction: Interaction) -> None:
            interaction.customer_id, interaction.kind = self.customer_id, self.kind
            interaction.direction, interaction.summary = self.direction, self.summary
            interaction.at, interaction.staff_id = self.at, self.staff_id

    # ---- merges of its customer ------------------------------------------------------------

    class Relinked(Relinkable.Relinked):
        pass

    @classmethod
    def log(
        cls,
        *,
        customer_id: UUID,
        kind: str,
        direction: str,
        summary: str,
        at: datetime,
        staff_id: str,
        now: datetime,
    ) -> Interaction:
        """Log an interaction that happened (not later than now, give or take the skew)."""
        if kind not in INTERACTION_KINDS:
            raise RuleViolationError("kind", f"kinds: {list(INTERACTION_KINDS)}")
        if direction not in DIRECTIONS:
            raise RuleViolationError("direction", f"directions: {list(DIRECTIONS)}")
        if not summary.strip():
            raise RuleViolationError("summary", "an interaction needs a summary")
        if at > now + CLOCK_SKEW:
            raise RuleViolationError("at", "an interaction cannot be logged in the future")
        if not staff_id.strip():
            raise RuleViolationError("staff_id", "an interaction needs the staff who had it")
        return cls._create(
            cls.Logged,
            id=uuid4(),
            customer_id=customer_id,
            kind=kind,
            direction=direction,
            summary=summary.strip(),
            at=at,
            staff_id=staff_id.strip(),
        )
