"""What a merge does to the merged customers' loyalty ledgers and card wallets, and its undoing.

A ledger and a wallet are one aggregate per customer, their ids derived from the
customer's, so they cannot be relinked like a record: the merge writes on both sides.

- Loyalty: the merged customer's whole balance moves to the survivor, as one entry on each
  ledger naming the merge (`LoyaltyLedger.PointsMoved`): the merged ledger goes to 0, the
  survivor's gains it, and each ledger's entries still add up to its balance. Undoing the
  merge takes back exactly what it brought; when the survivor has spent some of it since,
  the unmerge is refused (409 naming `loyalty` and the balance): giving back less would
  silently short the other customer, so a person decides (award the points, then undo).
- Cards: the merged customer's cards move to the survivor, oldest first, while the
  survivor has room under the limit of two; a card the survivor holds already (same
  provider and token: one person's card saved twice) and one without room stay on the
  merged customer's wallet, and the merge's answer names each with why
  (`cards_not_moved`): no payment method is dropped. Undoing the merge moves back the cards
  it brought that are still on the survivor (one removed since stays removed).
- Races: the merge always writes on the merged customer's ledger and wallet (opening them
  when it has none), in its one atomic save; a debit or a card saved there meanwhile meets
  it on the same stream, so one of the two is decided again on the other's result: the
  merge moves the new balance and cards, or the late command is refused (409 naming the
  survivor) like every change to a tombstone.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.cards import CardWallet, card_wallet_id
from domain.loyalty import LoyaltyLedger, loyalty_ledger_id

__all__ = ["AccountsMove"]


class AccountsMove:
    """The ledgers and wallets one merge (or unmerge) attempt reads, changes and saves."""

    def __init__(self, repository: Any) -> None:
        self._repository = repository
        self._ledgers: dict[UUID, LoyaltyLedger] = {}
        self._wallets: dict[UUID, CardWallet] = {}

    def merge(self, survivor_id: UUID, merged_id: UUID, merge_id: UUID) -> dict[str, Any]:
        """Move the merged customer's points and the cards that fit; returns what moved."""
        points = self._ledger(merged_id).move_out(survivor_id, merge_id)
        if points:
            self._ledger(survivor_id).move_in(points, merged_id, merge_id)
        moved, stayed = self._wallet(merged_id).move_out(self._wallet(survivor_id), merge_id)
        return {
            "loyalty_points": points,
            "cards": moved,
            "cards_not_moved": [{"card_id": i, "reason": r} for i, r in stayed.items()],
        }

    def unmerge(self, survivor_id: UUID, merged_id: UUID, merge_id: UUID) -> dict[str, Any]:
        """Take back from the survivor what the merge brought from the merged customer."""
        points = self._ledger(survivor_id).give_back(merged_id, merge_id)
        if points:
            self._ledger(merged_id).take_back(points, survivor_id, merge_id)
        moved, _ = self._wallet(survivor_id).move_out(
            self._wallet(merged_id), merge_id, undone=True
        )
        return {"loyalty_points": points, "cards": moved, "cards_not_moved": []}

    def to_save(self) -> list[Aggregate]:
        """The ledgers and wallets with events to save (one opened for nothing is not)."""
        return [
            aggregate
            for aggregate in (*self._ledgers.values(), *self._wallets.values())
            if any(not isinstance(e, Aggregate.Created) for e in aggregate.pending_events)
        ]

    def _ledger(self, customer_id: UUID) -> LoyaltyLedger:
        if customer_id not in self._ledgers:
            self._ledgers[customer_id] = self._get(
                loyalty_ledger_id(customer_id), LoyaltyLedger
            ) or LoyaltyLedger.open(customer_id)
        return self._ledgers[customer_id]

    def _wallet(self, customer_id: UUID) -> CardWallet:
        if customer_id not in self._wallets:
            self._wallets[customer_id] = self._get(
                card_wallet_id(customer_id), CardWallet
            ) or CardWallet.open(customer_id)
        return self._wallets[customer_id]

    def _get(self, aggregate_id: UUID, kind: type[Any]) -> Any:
        try:
            found = self._repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None
