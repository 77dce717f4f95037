"""Every command and query about loyalty points."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.errors import NotFoundError, VersionMismatchError
from domain.loyalty import LoyaltyLedger, loyalty_ledger_id
from domain.references import customer_of_part
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["LoyaltyCommands"]


class LoyaltyCommands(WritePath):
    """The loyalty part of the service."""

    def record_loyalty_points(
        self,
        customer_id: UUID,
        points: int,
        reason: str,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Award (positive) or take (negative) points; never below a zero balance.

        `expected_version` is the ledger's (0 before its first entry). Without it the entry
        applies to the latest balance: a concurrent debit is decided again on the new one.
        """

        def attempt() -> Change:
            existing = self._ledger(customer_id)
            # The customer after its ledger: a merge saved in between (it moved the balance
            # away) is seen as the tombstone it made, not as a balance of 0.
            customer_of_part(self, customer_id)
            ledger = existing or LoyaltyLedger.open(customer_id)
            seen = existing.version if existing else 0
            if expected_version is not None and expected_version != seen:
                raise VersionMismatchError(expected_version, seen)
            entry_id = ledger.record(points, reason)
            result = {
                "id": ledger.id,
                "version": ledger.version,
                "entry_id": entry_id,
                "balance": ledger.balance,
            }
            return Change(ledger.id, ledger.version, result, [ledger])

        return self.execute(attempt, idempotency, key=loyalty_ledger_id(customer_id))

    def _ledger(self, customer_id: UUID) -> LoyaltyLedger | None:
        try:
            ledger: LoyaltyLedger = self.repository.get(loyalty_ledger_id(customer_id))
        except AggregateNotFoundError:
            return None
        if not isinstance(ledger, LoyaltyLedger):
            raise NotFoundError("loyalty ledger", customer_id)
        return ledger
