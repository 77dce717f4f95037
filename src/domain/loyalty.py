"""Loyalty points: one ledger per customer, whose balance never goes below zero.

Staff award points (a positive entry) and take them when they are spent (a negative
one), each with a reason. The ledger is one aggregate per customer, its id derived from
the customer's (`loyalty_ledger_id`), so two desks taking points at once write to one
stream and the event store lets one of them go first: the second is decided again on the
new balance, and a debit the balance cannot cover is refused naming the balance. Every
event carries `customer_id`; an entry's reason is the customer's personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4, uuid5

from domain.base import TracedAggregate
from domain.errors import ConflictError, RuleViolationError

__all__ = [
    "MAX_POINTS",
    "InsufficientPointsError",
    "LoyaltyEntry",
    "LoyaltyLedger",
    "loyalty_ledger_id",
]

MAX_POINTS = 1_000_000
"""The most points one entry may award or take: a typo of three zeros is refused."""

_NAMESPACE = UUID("8a4e2c17-5b3f-4d9a-b6e1-0c7f3a9d2e58")


def loyalty_ledger_id(customer_id: UUID) -> UUID:
    """The id of a customer's ledger: every writer of that customer meets on one stream."""
    return uuid5(_NAMESPACE, str(customer_id))


class InsufficientPointsError(ConflictError):
    """A debit larger than the balance."""

    def __init__(self, balance: int, taken: int) -> None:
        super().__init__(f"balance is {balance}, cannot take {taken}", field="points")
        self.balance = balance


@dataclass(frozen=True)
class LoyaltyEntry:
    entry_id: UUID
    points: int
    """Positive: awarded; negative: taken (spent)."""
    reason: str
    balance: int
    """The balance after this entry."""
    recorded_at: datetime
    recorded_by: str


class LoyaltyLedger(TracedAggregate):
    """A customer's loyalty points: every entry, and the balance they add up to."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        balance: int
        entries: list[LoyaltyEntry]
        """Oldest first."""

    class Opened(TracedAggregate.Created):
        customer_id: UUID

        def apply(self, ledger: LoyaltyLedger) -> None:
            ledger.customer_id, ledger.balance, ledger.entries = self.customer_id, 0, []

    class PointsRecorded(TracedAggregate.Event):
        customer_id: UUID
        entry_id: UUID
        points: int
        reason: str
        balance: int

        def apply(self, ledger: LoyaltyLedger) -> None:
            ledger.balance = self.balance
            ledger.entries.append(
                LoyaltyEntry(
                    self.entry_id,
                    self.points,
                    self.reason,
                    self.balance,
                    self.timestamp,
                    self.actor,
                )
            )

    @classmethod
    def open(cls, customer_id: UUID) -> LoyaltyLedger:
        return cls._create(cls.Opened, id=loyalty_ledger_id(customer_id), customer_id=customer_id)

    def record(self, points: int, reason: str) -> UUID:
        """Award (positive) or take (negative) points; the balance may not go below zero."""
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise RuleViolationError("points", "points must be a non-zero whole number")
        if abs(points) > MAX_POINTS:
            raise RuleViolationError("points", f"at most {MAX_POINTS:,} points per entry")
        if not reason or not reason.strip():
            raise RuleViolationError("reason", "an entry needs a reason")
        if self.balance + points < 0:
            raise InsufficientPointsError(self.balance, -points)
        entry_id = uuid4()
        self.trigger_event(
            self.PointsRecorded,
            customer_id=self.customer_id,
            entry_id=entry_id,
            points=points,
            reason=reason.strip(),
            balance=self.balance + points,
        )
        return entry_id
