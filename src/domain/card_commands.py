"""Every command about stored cards. The customer is the one the path names, so a card of
another customer's wallet is simply not found."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.cards import CardWallet, card_wallet_id
from domain.customers import Customer
from domain.errors import NotFoundError, VersionMismatchError
from domain.references import customer_of_part
from domain.write_path import Change, Idempotency, Receipt, WritePath

__all__ = ["CardCommands"]


class CardCommands(WritePath):
    """The stored-cards part of the service; `clock` is set by the service."""

    clock: Callable[[], datetime]

    def add_card(
        self,
        customer_id: UUID,
        *,
        provider: str,
        token: str,
        brand: str,
        last4: str,
        exp_month: int,
        exp_year: int,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Store a payment provider's token for one of the customer's cards (at most two).

        `expected_version` is the wallet's (0 before its first card)."""

        def attempt() -> Change:
            existing = self._wallet(customer_id)
            # The customer after its wallet: a merge saved in between is seen as the
            # tombstone it made, not as an emptied wallet.
            customer_of_part(self, customer_id)
            wallet = existing or CardWallet.open(customer_id)
            _check_version(expected_version, existing.version if existing else 0)
            card_id = wallet.add_card(
                provider=provider,
                token=token,
                brand=brand,
                last4=last4,
                exp_month=exp_month,
                exp_year=exp_year,
                now=self.clock(),
            )
            return _changed(wallet, card_id=card_id)

        return self.execute(attempt, idempotency, key=card_wallet_id(customer_id))

    def remove_card(
        self,
        customer_id: UUID,
        card_id: UUID,
        *,
        expected_version: int,
        idempotency: Idempotency | None = None,
    ) -> Receipt:
        """Forget a stored card (the provider's token with it). Allowed for an erased
        customer too: removing what is left of a card is never refused."""

        def attempt() -> Change:
            self.load(customer_id, Customer, None)
            wallet = self._wallet(customer_id)
            if wallet is None:
                raise NotFoundError("card", card_id)
            _check_version(expected_version, wallet.version)
            wallet.remove_card(card_id)
            return _changed(wallet)

        return self.execute(attempt, idempotency, key=card_wallet_id(customer_id))

    def _wallet(self, customer_id: UUID) -> CardWallet | None:
        try:
            wallet: CardWallet = self.repository.get(card_wallet_id(customer_id))
        except AggregateNotFoundError:
            return None
        return wallet


def _check_version(expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise VersionMismatchError(expected, actual)


def _changed(wallet: CardWallet, **result: UUID) -> Change:
    return Change(
        wallet.id, wallet.version, {"id": wallet.id, "version": wallet.version, **result}, [wallet]
    )
