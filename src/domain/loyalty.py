"""Loyalty points: one ledger per customer, whose balance never goes below zero.

Staff award points (a positive entry) and take them when they are spent (a negative
one), each with a reason. The ledger is one aggregate per customer, its id derived from
the customer's (`loyalty_ledger_id`), so two desks taking points at once write to one
stream and the event store lets one of them go first: the second is decided again on the
new balance, and a debit the balance cannot cover is refused naming the balance. Every
event carries `customer_id`; an entry's reason is the customer's personal data.

A merge of customers moves the merged one's balance onto the survivor as one entry on each
ledger naming the merge (`PointsMoved`: the merged ledger goes to 0, the survivor's gains
it), so each ledger's entries still add up to its balance; the survivor's ledger remembers
what each merge brought, and undoing the merge takes exactly that back, or is refused when
the survivor's balance no longer covers it (`domain.merge_accounts`).
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
    "PointsSpentSinceMergeError",
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


class PointsSpentSinceMergeError(ConflictError):
    """An unmerge that would take back more points than the survivor has left."""

    def __init__(self, balance: int, brought: int, merged_id: UUID) -> None:
        super().__init__(
            f"balance is {balance}, cannot take back the {brought} points the merge brought "
            f"from customer {merged_id}: award the {brought - balance} spent since, then undo",
            field="loyalty",
        )
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


def _entry(event: LoyaltyLedger.PointsRecorded | LoyaltyLedger.PointsMoved) -> LoyaltyEntry:
    """The ledger's entry for an event that changed the balance."""
    return LoyaltyEntry(
        event.entry_id, event.points, event.reason, event.balance, event.timestamp, event.actor
    )


class LoyaltyLedger(TracedAggregate):
    """A customer's loyalty points: every entry, and the balance they add up to."""

    if TYPE_CHECKING:  # annotations at run time would make the library build a dataclass
        customer_id: UUID
        balance: int
        entries: list[LoyaltyEntry]
        """Oldest first."""
        brought: dict[tuple[UUID, UUID], int]
        """By (merge id, merged customer id): the points that merge moved here, while it
        stands."""

    class Opened(TracedAggregate.Created):
        customer_id: UUID

        def apply(self, ledger: LoyaltyLedger) -> None:
            ledger.customer_id, ledger.balance, ledger.entries = self.customer_id, 0, []
            ledger.brought = {}

    class PointsRecorded(TracedAggregate.Event):
        customer_id: UUID
        entry_id: UUID
        points: int
        reason: str
        balance: int

        def apply(self, ledger: LoyaltyLedger) -> None:
            ledger.balance = self.balance
            ledger.entries.append(_entry(self))

    class PointsMoved(TracedAggregate.Event):
        """A merge moved the balance from one ledger to another (`undone`: its undoing moved
        it back); one on each side, `points` negative on the giving one. Zero points (a
        merged customer without any) is no entry, but still the merge's mark on the stream."""

        customer_id: UUID
        entry_id: UUID
        points: int
        reason: str
        """Says which merge and which other customer: ids only, no personal data."""
        balance: int
        merge_id: UUID
        other_customer_id: UUID
        undone: bool

        def apply(self, ledger: LoyaltyLedger) -> None:
            ledger.balance = self.balance
            if self.points:
                ledger.entries.append(_entry(self))
            key = (self.merge_id, self.other_customer_id)
            if self.undone:
                ledger.brought.pop(key, None)
            elif self.points > 0:
                ledger.brought[key] = self.points

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

    def move_out(self, to_id: UUID, merge_id: UUID) -> int:
        """A merge takes the whole balance to the survivor `to_id`; returns the points."""
        points = self.balance
        self._moved(-points, f"moved to customer {to_id} by merge {merge_id}", merge_id, to_id)
        return points

    def move_in(self, points: int, from_id: UUID, merge_id: UUID) -> None:
        """The balance a merge brought from the merged customer `from_id`."""
        if points:
            self._moved(
                points, f"moved from customer {from_id} by merge {merge_id}", merge_id, from_id
            )

    def give_back(self, merged_id: UUID, merge_id: UUID) -> int:
        """Undoing a merge takes back exactly what it brought from `merged_id` (none: 0);
        refused when the balance no longer covers it. Returns the points."""
        points = self.brought.get((merge_id, merged_id), 0)
        if points > self.balance:
            raise PointsSpentSinceMergeError(self.balance, points, merged_id)
        if points:
            reason = f"given back to customer {merged_id}: merge {merge_id} undone"
            self._moved(-points, reason, merge_id, merged_id, undone=True)
        return points

    def take_back(self, points: int, survivor_id: UUID, merge_id: UUID) -> None:
        """The points given back by the survivor of a merge being undone."""
        if points:
            reason = f"given back by customer {survivor_id}: merge {merge_id} undone"
            self._moved(points, reason, merge_id, survivor_id, undone=True)

    def _moved(
        self, points: int, reason: str, merge_id: UUID, other_id: UUID, *, undone: bool = False
    ) -> None:
        self.trigger_event(
            self.PointsMoved,
            customer_id=self.customer_id,
            entry_id=uuid4(),
            points=points,
            reason=reason,
            balance=self.balance + points,
            merge_id=merge_id,
            other_customer_id=other_id,
            undone=undone,
        )
